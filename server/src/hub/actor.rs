//! The dispatcher task: owns queues, agents and in-flight tasks.
//!
//! It never awaits the store inline: store calls run in spawned tasks that
//! report back with a command, so one slow commit never stalls dispatch.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::HubHandle;
use super::command::Command;
use super::inputs::InputCache;
use super::queue::ReadyQueue;
use super::registry::{AgentEntry, SlotState, TaskSlot};
use crate::config::settings::HubSettings;
use crate::domain::{Task, TaskOutcome, TaskStatus};
use crate::store::{DynStore, StoreError};

pub(crate) struct Dispatcher {
    pub store: DynStore,
    pub handle: HubHandle,
    pub settings: Arc<HubSettings>,
    /// To itself, for the results of spawned store calls.
    pub tx: mpsc::UnboundedSender<Command>,
    rx: mpsc::UnboundedReceiver<Command>,
    pub agents: HashMap<Uuid, AgentEntry>,
    pub tasks: HashMap<Uuid, TaskSlot>,
    pub queues: HashMap<String, ReadyQueue>,
    /// Backing-off tasks by due time.
    pub delayed: BTreeSet<(Instant, Uuid)>,
    /// Capabilities whose queue or agents changed since the last dispatch.
    pub dirty: HashSet<String>,
    pub seq: u64,
    pub epoch: Instant,
    pub last_snapshot: Instant,
    /// Tasks handed out in this pass whose input is still to be read, read
    /// together once the pass ends: `(task, agent, job, item)`.
    pub inputs_wanted: Vec<(Uuid, Uuid, Uuid, Option<Uuid>)>,
    /// Tasks handed out in this pass whose input was held in memory.
    pub inputs_held: Vec<(Uuid, Uuid, serde_json::Value)>,
    /// With other nodes alive, tasks whose assignment is not durable yet:
    /// `(agent, job, item)`, pushed once the store confirms it.
    pub awaiting_commit: HashMap<Uuid, (Uuid, Uuid, Option<Uuid>)>,
    /// First-stage inputs of tasks of jobs just created.
    pub inputs: InputCache,
    /// The timings changed: the tick interval is to be worked out again.
    pub retick: bool,
    /// When the per-agent gauges were last set.
    pub agent_gauges_at: Instant,
    /// Whether recovery takes the tasks held by agents (false when other
    /// nodes were alive at start: see `on_recovered`).
    pub recover_held: bool,
}

impl Dispatcher {
    pub fn new(
        store: DynStore,
        handle: HubHandle,
        tx: mpsc::UnboundedSender<Command>,
        rx: mpsc::UnboundedReceiver<Command>,
    ) -> Self {
        let now = Instant::now();
        Self {
            store,
            settings: handle.settings.clone(),
            handle,
            tx,
            rx,
            agents: HashMap::new(),
            tasks: HashMap::new(),
            queues: HashMap::new(),
            delayed: BTreeSet::new(),
            dirty: HashSet::new(),
            seq: 0,
            epoch: now,
            last_snapshot: now,
            inputs_wanted: Vec::new(),
            inputs_held: Vec::new(),
            awaiting_commit: HashMap::new(),
            inputs: InputCache::default(),
            retick: false,
            agent_gauges_at: now,
            recover_held: true,
        }
    }

    /// The timings `agent_id` was welcomed with (the dispatcher's own for
    /// an agent it does not know).
    pub fn timings_of(&self, agent_id: Uuid) -> &HubSettings {
        self.agents
            .get(&agent_id)
            .map_or(&self.settings, |agent| &agent.timings)
    }

    /// How often timers are checked: a fraction of the shortest configured
    /// interval, so short test settings stay accurate and defaults stay cheap.
    fn tick_interval(&self) -> Duration {
        let s = &self.settings;
        let shortest = [
            s.heartbeat_interval,
            s.accept_timeout,
            s.lease,
            s.reconnect_grace.max(Duration::from_millis(20)),
        ]
        .into_iter()
        .min()
        .unwrap_or(Duration::from_secs(1));
        (shortest / 4).clamp(Duration::from_millis(5), Duration::from_millis(100))
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        self.recover();
        let mut tick = tokio::time::interval(self.tick_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(command) = self.rx.recv() => {
                    self.handle_command(command);
                    // Drain whatever else is waiting before dispatching once.
                    while let Ok(command) = self.rx.try_recv() {
                        self.handle_command(command);
                    }
                    self.dispatch_dirty();
                    if std::mem::take(&mut self.retick) {
                        tick = tokio::time::interval(self.tick_interval());
                        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    }
                }
                _ = tick.tick() => {
                    self.on_tick();
                    self.dispatch_dirty();
                }
            }
        }
        self.on_shutdown().await;
    }

    fn recover(&self) {
        let store = self.store.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            match store.open_tasks().await {
                Ok(tasks) => {
                    let _ = tx.send(Command::Recovered(tasks, Instant::now()));
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not reload unfinished tasks; they run after the next restart")
                }
            }
        });
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Register(registration) => self.on_register(registration),
            Command::Reconfigure(settings) => {
                self.settings = settings;
                self.retick = true;
            }
            Command::Seen {
                agent_id,
                session_id,
            } => self.on_seen(agent_id, session_id),
            Command::Welcomed {
                agent_id,
                session_id,
            } => self.on_welcomed(agent_id, session_id),
            Command::Heartbeat {
                agent_id,
                session_id,
                health,
                load,
                at,
            } => self.on_heartbeat(agent_id, session_id, health, load, at),
            Command::Started { agent_id, task } => self.on_started(agent_id, task),
            Command::LeaseExtended {
                agent_id,
                task_id,
                attempt,
            } => self.on_lease_extended(agent_id, task_id, attempt),
            Command::Released {
                agent_id,
                task_id,
                attempt,
            } => self.on_released(agent_id, task_id, attempt),
            Command::Reheld {
                agent_id,
                task_id,
                attempt,
            } => self.on_reheld(agent_id, task_id, attempt),
            Command::Finished {
                agent_id,
                task_id,
                outcome,
                success,
            } => self.on_finished(agent_id, task_id, outcome, success),
            Command::Refused { agent_id } => {
                if let Some(agent) = self.agents.get_mut(&agent_id) {
                    agent.record_outcome(false);
                }
            }
            Command::Drain { agent_id, reply } => self.on_drain(agent_id, reply),
            Command::Untracked { task_ids, reply } => {
                let untracked = task_ids
                    .into_iter()
                    .filter(|id| !self.tasks.contains_key(id))
                    .collect();
                let _ = reply.send(untracked);
            }
            Command::Disconnected {
                agent_id,
                session_id,
                clean,
            } => self.on_disconnected(agent_id, session_id, clean),
            Command::JobsCreated(job_ids) => self.load_job_tasks(job_ids),
            Command::Discovered(mut tasks) => {
                // Another node's work: its own node hands it out first; this
                // one takes what is still pending after STEAL_DELAY (and
                // forgets what the log says was taken meanwhile).
                let after = chrono::Utc::now() + super::STEAL_DELAY;
                for task in &mut tasks {
                    if !self.tasks.contains_key(&task.id) {
                        task.next_run_at = task.next_run_at.max(after);
                        self.enqueue(task);
                    }
                }
            }
            Command::TakenElsewhere(task_ids) => {
                for task_id in task_ids {
                    let waiting = self.tasks.get(&task_id).is_some_and(|s| {
                        matches!(s.state, SlotState::Queued | SlotState::Delayed(_))
                    });
                    if waiting {
                        self.forget(task_id);
                    }
                }
            }
            Command::TasksReady(tasks) => {
                for task in tasks {
                    self.enqueue(&task);
                }
            }
            Command::CreatedReady(tasks) => {
                for (task, input) in tasks {
                    self.enqueue(&task);
                    if let Some(input) = input {
                        self.inputs.offer(task.id, input);
                    }
                }
            }
            Command::TasksCancelled { task_ids, reason } => self.on_cancelled(task_ids, &reason),
            Command::AssignDone {
                task_id,
                agent_id,
                attempt,
                result,
            } => self.on_assign_done(task_id, agent_id, attempt, result),
            Command::InputsReady(inputs) => {
                for (task_id, agent_id, result) in inputs {
                    self.on_input_ready(task_id, agent_id, result);
                }
            }
            Command::HubFailDone {
                task_id,
                holder,
                result,
            } => self.on_hub_fail_done(task_id, holder, result),
            Command::Reconcile(tasks) => {
                for task in tasks {
                    self.reconcile(task);
                }
            }
            Command::Recovered(tasks, at) => self.on_recovered(tasks, at),
        }
    }

    /// Runs a store call off the dispatcher and feeds its result back as a command.
    pub fn spawn_store<T, F>(
        &self,
        call: F,
        then: impl FnOnce(Result<T, StoreError>) -> Command + Send + 'static,
    ) where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let result = call.await;
            let _ = tx.send(then(result));
        });
    }

    fn load_job_tasks(&self, job_ids: Vec<Uuid>) {
        let store = self.store.clone();
        self.spawn_store(async move { store.pending_tasks(&job_ids).await }, move |result| match result {
            Ok(tasks) => Command::TasksReady(tasks),
            Err(e) => {
                tracing::error!(error = %e, "could not load new jobs' tasks; they are picked up at the next restart");
                Command::TasksReady(Vec::new())
            }
        });
    }

    /// Lets go of a task held by an agent (if any) and forgets or re-queues it.
    pub fn release_holder(&mut self, task_id: Uuid) {
        let Some(slot) = self.tasks.get(&task_id) else {
            return;
        };
        if let Some(agent_id) = slot.state.holder()
            && let Some(agent) = self.agents.get_mut(&agent_id)
        {
            let capability = slot.capability.clone();
            agent.release(task_id, &capability);
            agent.dirty = true;
            self.dirty.insert(capability);
            let caps: Vec<String> = agent.capabilities.keys().cloned().collect();
            self.dirty.extend(caps);
            self.publish_agent(agent_id);
        }
    }

    pub fn forget(&mut self, task_id: Uuid) {
        // An input still held (the task was cancelled before it was handed out).
        let _ = self.inputs.take(task_id);
        if let Some(slot) = self.tasks.remove(&task_id) {
            if let Some(queue) = self.queues.get_mut(&slot.capability) {
                queue.remove(task_id);
            }
            if let SlotState::Delayed(at) = slot.state {
                self.delayed.remove(&(at, task_id));
            }
        }
    }

    /// A recorded transition: update memory from the store's answer.
    fn on_finished(
        &mut self,
        agent_id: Option<Uuid>,
        task_id: Uuid,
        outcome: TaskOutcome,
        success: Option<bool>,
    ) {
        if let (Some(agent_id), Some(success)) = (agent_id, success)
            && let Some(agent) = self.agents.get_mut(&agent_id)
        {
            agent.record_outcome(success);
        }
        if let Some(slot) = self.tasks.get(&task_id) {
            let labels = [("capability", slot.capability.clone())];
            if let Some(started) = slot.started_at
                && let Some(task) = &outcome.task
                && task.status.is_terminal()
            {
                metrics::histogram!("switchyard_task_duration_seconds", &labels)
                    .record(started.elapsed().as_secs_f64());
            }
        }
        if let Some(task) = &outcome.task {
            match task.status {
                TaskStatus::Succeeded => self.handle.throughput.finished(Utc::now(), true),
                TaskStatus::Failed => self.handle.throughput.finished(Utc::now(), false),
                _ => {}
            }
            metrics::counter!("switchyard_task_transitions_total", "capability" => task.capability.clone(), "status" => task.status.as_str()).increment(1);
            self.reconcile(task.clone());
        }
        for task in &outcome.ready {
            self.enqueue(task);
        }
    }

    /// Brings a slot in line with the store's view of the task.
    pub fn reconcile(&mut self, task: Task) {
        match task.status {
            s if s.is_terminal() => {
                self.release_holder(task.id);
                self.forget(task.id);
            }
            TaskStatus::Pending => {
                self.release_holder(task.id);
                self.enqueue(&task);
            }
            TaskStatus::Assigned | TaskStatus::Running => {
                // Held by an agent in the store; memory follows when the slot agrees on the attempt.
                if let Some(slot) = self.tasks.get_mut(&task.id)
                    && slot.attempt != task.attempt
                {
                    slot.attempt = task.attempt;
                }
            }
            _ => {}
        }
    }

    /// Publishes an agent's live view for the REST API.
    pub fn publish_agent(&self, agent_id: Uuid) {
        if let Some(agent) = self.agents.get(&agent_id) {
            self.handle.live.insert(agent_id, agent.live());
        }
    }

    /// Milliseconds since the dispatcher started, for queue ordering.
    pub fn now_ms(&self, at: Instant) -> i64 {
        i64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(i64::MAX)
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}
