//! One run of an agent: connect, `hello`/`welcome`, the session loop, and
//! reconnecting with backoff while keeping the local tasks.

mod tasks;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{Instrument, debug, info, warn};
use uuid::Uuid;

use crate::agent::Config;
use crate::connection::{self, Backoff, Incoming, PERMANENT_HELLO_ERRORS, WsStream};
use crate::context::TaskEvent;
use crate::error::{AgentError, TaskError};
use crate::handle::Shared;
use crate::protocol::{
    AgentMessage, Drain, ErrorMessage, Heartbeat, Hello, HubMessage, PROTOCOL_VERSION, TaskRef,
    Welcome,
};
use tasks::LocalTask;

/// `error` codes naming a task that mean the hub no longer gives this agent
/// that attempt: the task is dropped locally.
pub const TASK_GONE_ERRORS: &[&str] = &["stale_attempt", "unknown_task"];

/// `error` codes that refuse a message only for now; every other code
/// naming a task whose result was sent drops the task (e.g. `invalid_output`).
pub const TRANSIENT_ERRORS: &[&str] = &["rate_limited", "internal", "unavailable"];

/// What a handle asks of the run.
#[derive(Debug)]
pub(crate) enum Control {
    Drain,
    HealthChanged,
}

/// Why a session ended.
#[derive(Debug)]
enum SessionEnd {
    /// Drained: all work delivered, socket closed. The run ends.
    Drained,
    /// The connection broke (or was given up on); reconnect with backoff.
    Lost(String),
    /// The hub sent `shutdown`; reconnect after its delay, to one of the
    /// other nodes it named if any.
    Shutdown(Option<Duration>, Vec<String>),
}

struct Runner {
    config: Arc<Config>,
    shared: Arc<Shared>,
    control: mpsc::UnboundedReceiver<Control>,
    events_tx: mpsc::Sender<TaskEvent>,
    events_rx: mpsc::Receiver<TaskEvent>,
    tasks: HashMap<Uuid, LocalTask>,
    handlers: JoinSet<Result<serde_json::Value, TaskError>>,
    handler_tasks: HashMap<tokio::task::Id, TaskRef>,
    draining: bool,
    started: Instant,
    lease: Duration,
    /// Where the hub can be reached: the configured URL, the fallbacks, and
    /// the nodes hubs named since; `hubs[current]` is tried next.
    hubs: Vec<String>,
    current: usize,
}

/// Runs the agent until drained, killed (aborted) or refused for good.
pub(crate) async fn run(
    config: Arc<Config>,
    shared: Arc<Shared>,
    control: mpsc::UnboundedReceiver<Control>,
) {
    let span = tracing::info_span!("agent", name = %config.name);
    let (events_tx, events_rx) = mpsc::channel(256);
    let runner = Runner {
        config,
        shared: Arc::clone(&shared),
        control,
        events_tx,
        events_rx,
        tasks: HashMap::new(),
        handlers: JoinSet::new(),
        handler_tasks: HashMap::new(),
        draining: false,
        started: Instant::now(),
        lease: Duration::from_secs(60),
        hubs: Vec::new(),
        current: 0,
    };
    // Records an outcome even if the run panics; `kill` records its own first.
    let guard = FinishGuard(Arc::clone(&shared));
    let result = runner.run().instrument(span).await;
    if let Err(e) = &result {
        warn!(error = %e, "agent stopped");
    }
    shared.finish(result);
    drop(guard);
}

struct FinishGuard(Arc<Shared>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        if self.0.killed.load(Ordering::SeqCst) {
            self.0.finish(Ok(()));
        } else {
            self.0.finish(Err(AgentError::Protocol(
                "the agent task ended unexpectedly".into(),
            )));
        }
    }
}

impl Runner {
    async fn run(mut self) -> Result<(), AgentError> {
        let mut backoff = Backoff::new(self.config.backoff.0, self.config.backoff.1);
        let configured: Vec<String> = std::iter::once(self.config.url.clone())
            .chain(self.config.fallback_urls.iter().cloned())
            .collect();
        self.learn(&configured);
        loop {
            if self.draining && self.tasks.is_empty() {
                return Ok(());
            }
            let delay = match self.handshake().await {
                Ok((ws, welcome)) => {
                    backoff.reset();
                    self.learn(&welcome.hubs);
                    match self.session(ws, welcome).await {
                        SessionEnd::Drained => return Ok(()),
                        SessionEnd::Lost(reason) => {
                            warn!(%reason, "disconnected from the hub; reconnecting");
                            self.set_last_error(AgentError::Connection(reason));
                            self.rotate();
                            backoff.next_delay()
                        }
                        SessionEnd::Shutdown(after, hubs) => {
                            let elsewhere = self.learn(&hubs);
                            if let Some(next) = elsewhere.into_iter().find(|&i| i != self.current) {
                                self.current = next;
                            }
                            // Jitter on top of the hub's delay: the node's
                            // agents must not all arrive in one millisecond.
                            after.unwrap_or_default() + backoff.next_delay()
                        }
                    }
                }
                Err(e) if e.is_permanent() => return Err(e),
                Err(e) => {
                    self.rotate();
                    let delay = backoff.next_delay();
                    warn!(error = %e, retry_in = ?delay, "cannot connect to the hub");
                    self.set_last_error(e);
                    delay
                }
            };
            self.shared.status.send_modify(|s| s.connected = false);
            self.pause(delay).await;
        }
    }

    /// Adds hub URLs (base URLs or full ones) not known yet; returns the
    /// positions of all of them in [`Self::hubs`].
    fn learn(&mut self, urls: &[String]) -> Vec<usize> {
        let mut at = Vec::new();
        for url in urls {
            let Ok(url) = connection::normalize_url(url) else {
                warn!(%url, "ignoring a hub URL that is not ws:// or http://");
                continue;
            };
            let i = match self.hubs.iter().position(|h| *h == url) {
                Some(i) => i,
                None => {
                    debug!(%url, "learned a hub node");
                    self.hubs.push(url);
                    self.hubs.len() - 1
                }
            };
            at.push(i);
        }
        at
    }

    /// Tries the next known node after a failure.
    fn rotate(&mut self) {
        if !self.hubs.is_empty() {
            self.current = (self.current + 1) % self.hubs.len();
        }
    }

    fn set_last_error(&self, e: AgentError) {
        self.shared.status.send_modify(|s| s.last_error = Some(e));
    }

    /// Connects, sends `hello`, and waits for `welcome`.
    async fn handshake(&mut self) -> Result<(WsStream, Welcome), AgentError> {
        let url = self.hubs.get(self.current).unwrap_or(&self.config.url);
        let request = connection::build_request(url, &self.config.token)?;
        let mut ws = connection::open(request, self.config.connect_timeout).await?;
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            name: self.config.name.clone(),
            version: self.config.version.clone(),
            capabilities: self.config.capabilities.clone(),
            labels: self.config.labels.clone(),
            resume: self.tasks.values().map(LocalTask::task).collect(),
        };
        connection::send(&mut ws, &AgentMessage::Hello(hello)).await?;
        let deadline = Instant::now() + self.config.connect_timeout;
        let mut refusal: Option<ErrorMessage> = None;
        loop {
            let frame = tokio::time::timeout_at(deadline, ws.next())
                .await
                .map_err(|_| AgentError::Protocol("no `welcome` in time after `hello`".into()))?;
            match connection::decode(frame) {
                Incoming::Message(msg) => match *msg {
                    HubMessage::Welcome(welcome) => return Ok((ws, welcome)),
                    HubMessage::Error(e) => {
                        warn!(code = %e.code, message = %e.message, "the hub refused hello");
                        if PERMANENT_HELLO_ERRORS.contains(&e.code.as_str()) {
                            return Err(AgentError::Refused {
                                code: e.code,
                                message: e.message,
                            });
                        }
                        refusal = Some(e);
                    }
                    HubMessage::Shutdown(s) => {
                        return Err(AgentError::Connection(format!(
                            "the hub is shutting down: {}",
                            s.reason
                        )));
                    }
                    other => warn!(message = ?other, "ignoring a message before `welcome`"),
                },
                Incoming::Nothing => {}
                Incoming::Closed(reason) => {
                    return Err(match refusal {
                        Some(e) => AgentError::Connection(format!(
                            "the hub refused hello: {}: {}",
                            e.code, e.message
                        )),
                        None => AgentError::Connection(format!("before `welcome`: {reason}")),
                    });
                }
            }
        }
    }

    /// Runs one session until it ends.
    async fn session(&mut self, mut ws: WsStream, welcome: Welcome) -> SessionEnd {
        info!(agent_id = %welcome.agent_id, session_id = %welcome.session_id, resumed = welcome.resumed.len(), "connected to the hub");
        self.lease = Duration::from_millis(welcome.lease_ms.max(1));
        let interval = self
            .config
            .heartbeat_override
            .unwrap_or(Duration::from_millis(welcome.heartbeat_interval_ms))
            .max(Duration::from_millis(10));
        self.shared.status.send_modify(|s| {
            s.connected = true;
            s.agent_id = Some(welcome.agent_id);
            s.last_error = None;
        });
        let mut heartbeat = tokio::time::interval(interval);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut housekeeping = tokio::time::interval(Duration::from_millis(200));
        housekeeping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let end = 'session: {
            if let Err(end) = self.resume(&mut ws, &welcome.resumed).await {
                break 'session end;
            }
            if self.draining
                && let Err(end) = self.send(&mut ws, AgentMessage::Drain(Drain {})).await
            {
                break 'session end;
            }
            loop {
                if let Err(end) = self.step(&mut ws, &mut heartbeat, &mut housekeeping).await {
                    break 'session end;
                }
            }
        };
        if matches!(end, SessionEnd::Drained | SessionEnd::Shutdown(..)) {
            let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
        }
        end
    }

    /// Keeps the tasks the hub still gives us (re-sending their items, then
    /// their result) and drops the others.
    async fn resume(&mut self, ws: &mut WsStream, resumed: &[TaskRef]) -> Result<(), SessionEnd> {
        let resumed: HashSet<TaskRef> = resumed.iter().copied().collect();
        let ids: Vec<Uuid> = self.tasks.keys().copied().collect();
        for id in ids {
            let task = self.tasks[&id].task();
            if !resumed.contains(&task) {
                warn!(task_id = %id, attempt = task.attempt, "the hub did not resume the task: dropping it");
                self.drop_task(id);
                continue;
            }
            let (items, result) = {
                let t = &self.tasks[&id];
                (t.items.clone(), t.result.clone())
            };
            for item in items {
                self.send(ws, AgentMessage::Item(item)).await?;
            }
            if let Some(result) = result {
                self.send(ws, result).await?;
                if let Some(t) = self.tasks.get_mut(&id) {
                    t.result_sent_at = Some(Instant::now());
                }
            }
        }
        Ok(())
    }

    /// One turn of the session loop.
    async fn step(
        &mut self,
        ws: &mut WsStream,
        heartbeat: &mut tokio::time::Interval,
        housekeeping: &mut tokio::time::Interval,
    ) -> Result<(), SessionEnd> {
        if self.draining && self.tasks.is_empty() {
            info!("drained");
            return Err(SessionEnd::Drained);
        }
        tokio::select! {
            frame = ws.next() => match connection::decode(frame) {
                Incoming::Message(msg) => self.on_hub_message(ws, *msg).await?,
                Incoming::Nothing => {}
                Incoming::Closed(reason) => return Err(SessionEnd::Lost(reason)),
            },
            Some(event) = self.events_rx.recv() => {
                if let Some(msg) = self.on_event(event) {
                    self.send(ws, msg).await?;
                }
            }
            Some(joined) = self.handlers.join_next_with_id(), if !self.handlers.is_empty() => {
                // Items the handler queued before returning go out first.
                for msg in self.drain_events() {
                    self.send(ws, msg).await?;
                }
                if let Some(id) = self.on_handler_done(joined)
                    && let Some(result) = self.finish_task(id)
                {
                    self.send(ws, result).await?;
                }
            }
            _ = heartbeat.tick() => self.send(ws, self.heartbeat()).await?,
            Some(control) = self.control.recv() => match control {
                Control::Drain if !self.draining => {
                    info!(running = self.tasks.len(), "draining");
                    self.draining = true;
                    self.send(ws, AgentMessage::Drain(Drain {})).await?;
                }
                Control::Drain => {}
                Control::HealthChanged => self.send(ws, self.heartbeat()).await?,
            },
            _ = housekeeping.tick() => self.housekeeping(ws).await?,
        }
        Ok(())
    }

    /// Waits `delay` before reconnecting, still collecting handler results.
    async fn pause(&mut self, delay: Duration) {
        let wake = Instant::now() + delay;
        loop {
            if self.draining && self.tasks.is_empty() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => return,
                Some(event) = self.events_rx.recv() => { self.on_event(event); }
                Some(joined) = self.handlers.join_next_with_id(), if !self.handlers.is_empty() => {
                    // Offline: record items and the result; `resume` sends them.
                    self.drain_events();
                    self.on_handler_done(joined);
                }
                Some(control) = self.control.recv() => {
                    if let Control::Drain = control {
                        self.draining = true;
                    }
                }
            }
        }
    }

    async fn send(&self, ws: &mut WsStream, msg: AgentMessage) -> Result<(), SessionEnd> {
        if self.shared.killed.load(Ordering::SeqCst) {
            return Err(SessionEnd::Lost("killed".into()));
        }
        connection::send(ws, &msg)
            .await
            .map_err(|e| SessionEnd::Lost(e.to_string()))
    }

    fn heartbeat(&self) -> AgentMessage {
        let capacity: usize = self.config.handlers.values().map(|(_, max)| *max).sum();
        let running = self.tasks.values().filter(|t| t.is_running()).count();
        AgentMessage::Heartbeat(Heartbeat {
            timestamp: chrono::Utc::now(),
            status: self.shared.health(),
            uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            load: if capacity == 0 {
                0.0
            } else {
                running as f64 / capacity as f64
            },
            metrics: Default::default(),
        })
    }

    async fn on_hub_message(
        &mut self,
        ws: &mut WsStream,
        msg: HubMessage,
    ) -> Result<(), SessionEnd> {
        match msg {
            HubMessage::Task(task) => self.on_task(ws, task).await?,
            HubMessage::Cancel(c) => {
                if self.owns(c.task_id, c.attempt) {
                    info!(task_id = %c.task_id, attempt = c.attempt, reason = %c.reason, "task cancelled by the hub");
                    self.drop_task(c.task_id);
                }
            }
            HubMessage::Ack(ack) => match ack.of.as_str() {
                "complete" | "fail" if self.owns(ack.task_id, ack.attempt) => {
                    if self.tasks[&ack.task_id].result.is_some() {
                        debug!(task_id = %ack.task_id, of = %ack.of, "result acknowledged");
                        self.tasks.remove(&ack.task_id);
                    }
                }
                _ => debug!(task_id = %ack.task_id, of = %ack.of, item_id = ?ack.item_id, "ack"),
            },
            HubMessage::Error(e) => self.on_error(e),
            HubMessage::Shutdown(s) => {
                info!(reason = %s.reason, reconnect_after_ms = ?s.reconnect_after_ms, "the hub asked us to go away");
                return Err(SessionEnd::Shutdown(
                    s.reconnect_after_ms.map(Duration::from_millis),
                    s.hubs,
                ));
            }
            HubMessage::Welcome(_) => warn!("ignoring a second `welcome`"),
        }
        Ok(())
    }
}
