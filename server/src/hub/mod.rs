//! The in-memory core: who is connected, what is ready, who gets what.
//!
//! One task, the dispatcher ([`actor::Dispatcher`]), owns the ready queues,
//! the agent registry and the in-flight task table; everything else talks to
//! it through [`HubHandle`] (an unbounded command channel), so nothing is
//! locked across an await. Each agent connection is a [`session`] task that
//! writes the agent's own transitions to the store (the store's conditional
//! updates are the fence) and then tells the dispatcher what changed.
//!
//! The dispatcher decides in memory and records through the store: an
//! assignment is persisted before the task frame is pushed, so nothing is
//! promised to an agent that a crash could forget.

mod actor;
mod assign;
mod command;
mod inputs;
mod lifecycle;
pub mod queue;
mod registry;
pub mod schema;
pub mod session;
pub mod throughput;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub(crate) use command::Command;
pub use command::Outbound;

use crate::config::settings::HubSettings;
use crate::domain::{AgentHealth, AgentSessionState, Task};
use crate::store::DynStore;

/// How long a task another node made ready waits before this node hands it
/// out: its own node goes first, so two nodes rarely race for one task.
pub const STEAL_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// What the REST API and dashboards see of a live agent; kept current by the dispatcher.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, schemars::JsonSchema)]
pub struct LiveAgent {
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = String)]
    pub session_state: AgentSessionState,
    #[schema(value_type = String)]
    pub health: AgentHealth,
    pub in_flight: u32,
    pub capacity: u32,
    pub trust_score: f64,
    pub load: f64,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub capabilities: Vec<String>,
}

/// One capability's ready queue, as last measured by the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema, schemars::JsonSchema)]
pub struct QueueStats {
    /// Tasks ready and waiting for an agent.
    pub depth: u64,
    /// How long the oldest of them has waited, in seconds.
    pub oldest_seconds: f64,
}

/// Why an agent could not be drained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrainError {
    #[error("agent {0} is not known to this hub")]
    NotFound(Uuid),
    #[error("agent {0} is not connected; only connected agents can be drained")]
    NotConnected(Uuid),
}

/// A cheap, cloneable handle to the dispatcher.
#[derive(Clone)]
pub struct HubHandle {
    tx: mpsc::UnboundedSender<Command>,
    /// Live agents by id, for reads that must not wait on the dispatcher.
    pub live: Arc<DashMap<Uuid, LiveAgent>>,
    /// Ready-queue statistics per capability, refreshed on every dispatcher tick.
    pub queues: Arc<DashMap<String, QueueStats>>,
    /// Compiled input schemas per capability, for submit-time validation.
    pub schemas: Arc<schema::SchemaRegistry>,
    /// Tasks finished and dispatched over time, for charts.
    pub throughput: Arc<throughput::Throughput>,
    /// The timings this handle's holder goes by: the dispatcher's at start,
    /// a session's own from when it connected (see [`Self::for_session`]).
    pub settings: Arc<HubSettings>,
    /// This node of the cluster: the other nodes' URLs go to agents in
    /// `welcome` and `shutdown`.
    pub node: Arc<crate::cluster::Node>,
}

impl HubHandle {
    /// Starts the dispatcher: reloads unfinished tasks from the store, then
    /// serves commands until `shutdown` fires.
    ///
    /// `recover_held`: whether the tasks agents held when the hub stopped
    /// are waited for (their agents reconnect here) and then taken back;
    /// false when other nodes of a cluster are alive, which may hold them.
    pub fn start(
        store: DynStore,
        settings: HubSettings,
        shutdown: CancellationToken,
        node: Arc<crate::cluster::Node>,
    ) -> (HubHandle, JoinHandle<()>) {
        let recover_held = !node.has_peers();
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = HubHandle {
            tx: tx.clone(),
            live: Arc::new(DashMap::new()),
            queues: Arc::new(DashMap::new()),
            schemas: Arc::new(schema::SchemaRegistry::default()),
            throughput: Arc::new(throughput::Throughput::default()),
            settings: Arc::new(settings),
            node,
        };
        let mut dispatcher = actor::Dispatcher::new(store, handle.clone(), tx, rx);
        dispatcher.recover_held = recover_held;
        let task = tokio::spawn(dispatcher.run(shutdown));
        (handle, task)
    }

    /// A handle for a session that connects now, with the timings in force:
    /// the session, its `welcome` and the dispatcher's view of its agent
    /// keep them for the whole session, whatever a reload changes later.
    pub fn for_session(&self, settings: HubSettings) -> HubHandle {
        HubHandle {
            settings: Arc::new(settings),
            ..self.clone()
        }
    }

    /// Reloaded timings: the dispatcher uses them for its own timers and
    /// for sessions that connect from now on.
    pub fn reconfigure(&self, settings: HubSettings) {
        self.send(Command::Reconfigure(Arc::new(settings)));
    }

    pub(crate) fn send(&self, command: Command) {
        // The dispatcher only stops at shutdown; a command sent after that has nothing to do.
        let _ = self.tx.send(command);
    }

    /// A job was created (or released): queue its ready tasks.
    pub fn job_created(&self, job_id: Uuid) {
        self.send(Command::JobsCreated(vec![job_id]));
    }

    /// Pending tasks another node made ready; those this node already
    /// tracks are left as they are.
    /// Other nodes assigned these tasks (from the event log).
    pub fn taken_elsewhere(&self, task_ids: Vec<Uuid>) {
        if !task_ids.is_empty() {
            self.send(Command::TakenElsewhere(task_ids));
        }
    }

    pub fn discovered(&self, tasks: Vec<Task>) {
        if !tasks.is_empty() {
            self.send(Command::Discovered(tasks));
        }
    }

    /// Tasks became ready outside the dispatcher's knowledge.
    pub fn tasks_ready(&self, tasks: Vec<Task>) {
        if !tasks.is_empty() {
            self.send(Command::TasksReady(tasks));
        }
    }

    /// Tasks made ready by jobs just created, with the first-stage inputs
    /// the handler built (by job id): the dispatcher holds them, within a
    /// budget, so it can push those tasks without reading their input back.
    pub fn created_ready(
        &self,
        tasks: Vec<Task>,
        mut inputs: std::collections::HashMap<Uuid, serde_json::Value>,
    ) {
        let tasks: Vec<_> = tasks
            .into_iter()
            .map(|task| {
                let input = (task.stage == 0)
                    .then(|| inputs.remove(&task.job_id))
                    .flatten();
                (task, input)
            })
            .collect();
        if !tasks.is_empty() {
            self.send(Command::CreatedReady(tasks));
        }
    }

    /// Tasks were cancelled in the store: drop them and tell their agents.
    pub fn tasks_cancelled(&self, task_ids: Vec<Uuid>, reason: String) {
        self.send(Command::TasksCancelled { task_ids, reason });
    }

    /// Stops giving new work to an agent; its running work finishes.
    /// Of `task_ids`, those the dispatcher does not track (none if it is
    /// gone: then nothing can be said about them).
    pub async fn untracked(&self, task_ids: Vec<Uuid>) -> Vec<Uuid> {
        if task_ids.is_empty() {
            return task_ids;
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::Untracked { task_ids, reply });
        rx.await.unwrap_or_default()
    }

    pub async fn drain(&self, agent_id: Uuid) -> Result<(), DrainError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Drain {
            agent_id,
            reply: Some(reply),
        });
        rx.await.unwrap_or(Err(DrainError::NotFound(agent_id)))
    }
}
