//! [`AgentHandle`]: controls a spawned agent and observes its state.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::AgentError;
use crate::protocol::AgentHealth;
use crate::runner::Control;

/// What the handles see of a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Status {
    pub(crate) agent_id: Option<Uuid>,
    pub(crate) connected: bool,
    pub(crate) last_error: Option<AgentError>,
    /// Set once, when the run ends.
    pub(crate) finished: Option<Result<(), AgentError>>,
}

/// State shared by a run and its handles.
pub(crate) struct Shared {
    pub(crate) status: watch::Sender<Status>,
    pub(crate) health: Mutex<AgentHealth>,
    pub(crate) control: mpsc::UnboundedSender<Control>,
    /// Parent of every task's cancellation token; fired by `kill`.
    pub(crate) kill: CancellationToken,
    pub(crate) killed: AtomicBool,
}

impl Shared {
    pub(crate) fn health(&self) -> AgentHealth {
        *self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the end of the run (the first outcome wins).
    pub(crate) fn finish(&self, result: Result<(), AgentError>) {
        self.status.send_modify(|s| {
            s.connected = false;
            if s.finished.is_none() {
                s.finished = Some(result);
            }
        });
    }
}

/// Controls a spawned agent. Cheap to clone; dropping it leaves the agent
/// running.
#[derive(Clone)]
pub struct AgentHandle {
    pub(crate) shared: std::sync::Arc<Shared>,
    pub(crate) abort: AbortHandle,
}

impl fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.shared.status.borrow();
        f.debug_struct("AgentHandle")
            .field("agent_id", &status.agent_id)
            .field("connected", &status.connected)
            .field("finished", &status.finished)
            .finish()
    }
}

impl AgentHandle {
    /// Waits until the agent holds a session (a `welcome` was received) and
    /// returns its agent id. Returns at once while connected; after a
    /// disconnect it waits for the next `welcome`. Errors when the agent
    /// stopped: with the permanent error that stopped it (e.g.
    /// [`AgentError::Unauthorized`]) or [`AgentError::Stopped`].
    pub async fn wait_connected(&self) -> Result<Uuid, AgentError> {
        let mut rx = self.shared.status.subscribe();
        let status = rx
            .wait_for(|s| s.connected || s.finished.is_some())
            .await
            .map_err(|_| AgentError::Stopped)?;
        match (&status.finished, status.agent_id) {
            (None, Some(id)) => Ok(id),
            (Some(Err(e)), _) => Err(e.clone()),
            _ => Err(AgentError::Stopped),
        }
    }

    /// The agent id the hub gave this agent in its last `welcome`.
    pub fn agent_id(&self) -> Option<Uuid> {
        self.shared.status.borrow().agent_id
    }

    /// Whether the agent holds a session right now.
    pub fn is_connected(&self) -> bool {
        self.shared.status.borrow().connected
    }

    /// The last connection error (retried or permanent), for diagnostics.
    pub fn last_error(&self) -> Option<AgentError> {
        self.shared.status.borrow().last_error.clone()
    }

    /// Drains gracefully: sends `drain` (the hub pushes no more tasks), lets
    /// the running tasks finish and waits for the hub's `ack` of their
    /// results, then closes the connection. Returns when the agent has
    /// stopped (at once if it already had). While disconnected it keeps
    /// reconnecting to deliver the results of tasks the hub still lists.
    pub async fn drain(&self) {
        let _ = self.shared.control.send(Control::Drain);
        let _ = self.join().await;
    }

    /// Stops abruptly, like a crash: fires every task's cancellation token,
    /// aborts the agent's task and its handlers and drops the socket without
    /// a close frame. Nothing more is sent to the hub.
    pub fn kill(&self) {
        self.shared.killed.store(true, Ordering::SeqCst);
        self.shared.finish(Ok(()));
        self.shared.kill.cancel();
        self.abort.abort();
    }

    /// Sets the health the next heartbeats report (one is sent at once
    /// while connected).
    pub fn set_health(&self, health: AgentHealth) {
        *self
            .shared
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = health;
        let _ = self.shared.control.send(Control::HealthChanged);
    }

    /// Waits until the agent has stopped: `Ok` after [`drain`](Self::drain)
    /// or [`kill`](Self::kill), the permanent error that stopped it
    /// otherwise (e.g. [`AgentError::Unauthorized`]).
    pub async fn join(&self) -> Result<(), AgentError> {
        let mut rx = self.shared.status.subscribe();
        let status = rx
            .wait_for(|s| s.finished.is_some())
            .await
            .map_err(|_| AgentError::Stopped)?;
        status.finished.clone().unwrap_or(Err(AgentError::Stopped))
    }

    /// Whether the agent has stopped.
    pub fn is_finished(&self) -> bool {
        self.shared.status.borrow().finished.is_some()
    }
}
