//! The dispatcher's view of agents and in-flight tasks.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

use super::LiveAgent;
use super::command::{CapabilityLimits, Outbound};
use crate::domain::{AgentHealth, AgentSessionState};

/// One agent as the dispatcher sees it.
pub(crate) struct AgentEntry {
    pub id: Uuid,
    pub name: String,
    pub session_id: Uuid,
    /// The session's writer; `None` while no session is open.
    pub out: Option<mpsc::Sender<Outbound>>,
    /// The session has queued its `welcome`: tasks may follow it (a task
    /// pushed before the welcome would reach an agent that does not know
    /// its session yet).
    pub welcomed: bool,
    pub state: AgentSessionState,
    pub health: AgentHealth,
    pub capabilities: HashMap<String, CapabilityLimits>,
    /// Running count per capability.
    pub running: HashMap<String, u32>,
    /// Tasks this agent holds (assigning, assigned, running or orphaned).
    pub tasks: HashSet<Uuid>,
    pub trust: f64,
    pub load: f64,
    pub last_seen: Instant,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// Changed since the last snapshot was written.
    /// The timings this agent's session was welcomed with: its liveness,
    /// leases and accept deadlines go by them, whatever a reload changes.
    pub timings: std::sync::Arc<crate::config::settings::HubSettings>,
    pub dirty: bool,
}

impl AgentEntry {
    pub fn capacity(&self) -> u32 {
        self.capabilities.values().map(|c| c.max_concurrency).sum()
    }

    pub fn in_flight(&self) -> u32 {
        self.tasks.len() as u32
    }

    /// Whether a new task of `capability` may be pushed to this agent now.
    pub fn can_take(&self, capability: &str) -> bool {
        self.state == AgentSessionState::Connected
            && self.welcomed
            && self.out.is_some()
            && self.capabilities.get(capability).is_some_and(|c| {
                self.running.get(capability).copied().unwrap_or(0) < c.max_concurrency
            })
    }

    fn load_ratio(&self) -> f64 {
        f64::from(self.in_flight()) / f64::from(self.capacity().max(1))
    }

    /// Sends a frame; a full or closed channel means the agent is not reading:
    /// the caller treats it as lost.
    pub fn push(&self, frame: String) -> bool {
        match &self.out {
            Some(out) => out.try_send(Outbound::Frame(frame)).is_ok(),
            None => false,
        }
    }

    pub fn hold(&mut self, task: Uuid, capability: &str) {
        if self.tasks.insert(task) {
            *self.running.entry(capability.to_owned()).or_default() += 1;
        }
    }

    pub fn release(&mut self, task: Uuid, capability: &str) {
        if self.tasks.remove(&task)
            && let Some(n) = self.running.get_mut(capability)
        {
            *n = n.saturating_sub(1);
        }
    }

    /// Moves trust towards 1 on success and towards 0 on a failure, a timeout
    /// or a refused stale message (an exponentially weighted average).
    pub fn record_outcome(&mut self, success: bool) {
        const WEIGHT: f64 = 0.05;
        let target = if success { 1.0 } else { 0.0 };
        self.trust = (self.trust * (1.0 - WEIGHT) + target * WEIGHT).clamp(0.0, 1.0);
        self.dirty = true;
    }

    pub fn live(&self) -> LiveAgent {
        let mut capabilities: Vec<String> = self.capabilities.keys().cloned().collect();
        capabilities.sort();
        LiveAgent {
            id: self.id,
            name: self.name.clone(),
            session_state: self.state,
            health: self.health,
            in_flight: self.in_flight(),
            capacity: self.capacity(),
            trust_score: self.trust,
            load: self.load,
            last_heartbeat_at: self.last_heartbeat_at,
            capabilities,
        }
    }
}

/// Picks the agent for the next task of `capability`: active before degraded,
/// then least loaded, then most trusted, then fewest tasks, then by id so the
/// choice is deterministic.
pub(crate) fn pick(agents: &HashMap<Uuid, AgentEntry>, capability: &str) -> Option<Uuid> {
    agents
        .values()
        .filter(|a| a.can_take(capability))
        .min_by(|a, b| {
            (a.health == AgentHealth::Degraded)
                .cmp(&(b.health == AgentHealth::Degraded))
                .then(a.load_ratio().total_cmp(&b.load_ratio()))
                .then(b.trust.total_cmp(&a.trust))
                .then(a.in_flight().cmp(&b.in_flight()))
                .then(a.id.cmp(&b.id))
        })
        .map(|a| a.id)
}

/// Where an in-flight task stands in memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SlotState {
    /// In its capability's ready queue.
    Queued,
    /// Backing off until then.
    Delayed(Instant),
    /// An assignment to this agent is being recorded.
    Assigning(Uuid),
    /// Pushed; the agent must accept by then.
    Assigned { agent: Uuid, accept_by: Instant },
    /// Accepted; the lease runs until then.
    Running { agent: Uuid, lease_until: Instant },
    /// Its agent was lost; it may resume until then.
    Orphaned {
        agent: Uuid,
        until: Instant,
        running: bool,
    },
    /// A hub decision (timeout, lost agent) is being recorded.
    Failing(Option<Uuid>),
    /// Its agent sent the result, which is being recorded; the agent's slot
    /// is already free (see `Command::Released`).
    Finishing,
}

impl SlotState {
    /// The agent holding the task, if any.
    pub fn holder(self) -> Option<Uuid> {
        match self {
            SlotState::Queued | SlotState::Delayed(_) => None,
            SlotState::Assigning(a) => Some(a),
            SlotState::Assigned { agent, .. }
            | SlotState::Running { agent, .. }
            | SlotState::Orphaned { agent, .. } => Some(agent),
            SlotState::Failing(a) => a,
            SlotState::Finishing => None,
        }
    }
}

/// An unfinished task in memory.
#[derive(Debug, Clone)]
pub(crate) struct TaskSlot {
    pub id: Uuid,
    pub job_id: Uuid,
    pub capability: String,
    pub priority: i16,
    pub attempt: i32,
    /// Its stage, and the item it works on (none at stage 0): what its
    /// input is read from.
    pub stage: i32,
    pub item_id: Option<Uuid>,
    pub state: SlotState,
    /// When it last became ready (for the dispatch latency metric).
    pub ready_since: Instant,
    /// When its agent accepted it (for the task duration metric).
    pub started_at: Option<Instant>,
}

impl TaskSlot {
    /// The slot of a stored task, in `state`, ready since `ready_since`.
    pub fn of(task: &crate::domain::Task, state: SlotState, ready_since: Instant) -> TaskSlot {
        TaskSlot {
            id: task.id,
            job_id: task.job_id,
            capability: task.capability.clone(),
            priority: task.priority,
            attempt: task.attempt,
            stage: task.stage,
            item_id: task.item_id,
            state,
            ready_since,
            started_at: None,
        }
    }
}
