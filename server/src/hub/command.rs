//! Messages to the dispatcher, and frames from it to agent sessions.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use switchyard_agent::protocol::{TaskRef, Welcome};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use uuid::Uuid;

use super::DrainError;
use crate::config::settings::HubSettings;
use crate::domain::{AgentHealth, AgentRecord, Task, TaskOutcome};
use crate::store::StoreError;

/// What the dispatcher sends to a session's writer.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A serialized hub message (serialized once, sent as is).
    Frame(String),
    /// Close the socket with this WebSocket close code and reason.
    Close { code: u16, reason: String },
}

impl Outbound {
    /// A normal close (1000).
    pub fn close(reason: impl Into<String>) -> Self {
        Outbound::Close {
            code: 1000,
            reason: reason.into(),
        }
    }
}

/// A task an agent resumed after reconnecting.
#[derive(Debug, Clone)]
pub(crate) struct ResumedTask {
    pub task_id: Uuid,
    pub attempt: i32,
    pub capability: String,
    /// Whether the store already has it running (else it still needs `start`).
    pub running: bool,
}

/// A capability as the dispatcher needs it.
#[derive(Debug, Clone)]
pub(crate) struct CapabilityLimits {
    pub max_concurrency: u32,
    pub input_schema: Option<Arc<jsonschema::Validator>>,
}

/// A session that completed `hello`, for the dispatcher to welcome.
pub(crate) struct Registration {
    pub record: AgentRecord,
    pub session_id: Uuid,
    /// The session's timings (see `HubHandle::for_session`).
    pub timings: Arc<HubSettings>,
    pub capabilities: HashMap<String, CapabilityLimits>,
    pub resume: Vec<TaskRef>,
    /// Resumed tasks the agent held through another node of the cluster,
    /// as the store has them: this node takes them over.
    pub adopt: Vec<crate::domain::Task>,
    pub out: mpsc::Sender<Outbound>,
    pub reply: oneshot::Sender<(Welcome, Vec<ResumedTask>)>,
}

pub(crate) enum Command {
    /// A session completed `hello` and the agent is registered in the store.
    Register(Registration),
    /// Pending tasks found in the store (another node of the cluster made
    /// them ready): queued unless this node already tracks them.
    Discovered(Vec<Task>),
    /// Another node assigned these tasks: forget those only queued here.
    TakenElsewhere(Vec<Uuid>),
    /// A configuration reload changed the hub's timings.
    Reconfigure(Arc<HubSettings>),
    /// The session queued its `welcome` frame (see `AgentEntry::welcomed`).
    Welcomed {
        agent_id: Uuid,
        session_id: Uuid,
    },
    /// Any frame from the agent: it is alive.
    Seen {
        agent_id: Uuid,
        session_id: Uuid,
    },
    Heartbeat {
        agent_id: Uuid,
        session_id: Uuid,
        health: AgentHealth,
        load: f64,
        at: DateTime<Utc>,
    },
    /// The session recorded an accept.
    Started {
        agent_id: Uuid,
        task: Task,
    },
    /// The agent sent `complete` or `fail` for an attempt it holds: its slot
    /// is free now, while the write is still being committed (credit-based
    /// flow control: the agent's slots stay full, commits are off its path).
    Released {
        agent_id: Uuid,
        task_id: Uuid,
        attempt: i32,
    },
    /// A released attempt's write was refused as transient: the agent still
    /// holds the task and sends its result again.
    Reheld {
        agent_id: Uuid,
        task_id: Uuid,
        attempt: i32,
    },
    /// The session recorded a progress.
    LeaseExtended {
        agent_id: Uuid,
        task_id: Uuid,
        attempt: i32,
    },
    /// A task transition was recorded (complete, fail, decline, or a hub decision).
    Finished {
        agent_id: Option<Uuid>,
        task_id: Uuid,
        outcome: TaskOutcome,
        success: Option<bool>,
    },
    /// The agent sent a message about an attempt it does not hold.
    Refused {
        agent_id: Uuid,
    },
    Drain {
        agent_id: Uuid,
        reply: Option<oneshot::Sender<Result<(), DrainError>>>,
    },
    /// Which of these tasks the dispatcher does not track.
    Untracked {
        task_ids: Vec<Uuid>,
        reply: oneshot::Sender<Vec<Uuid>>,
    },
    Disconnected {
        agent_id: Uuid,
        session_id: Uuid,
        clean: bool,
    },
    /// Jobs were created (or released): queue their pending tasks.
    JobsCreated(Vec<Uuid>),
    TasksReady(Vec<Task>),
    TasksCancelled {
        task_ids: Vec<Uuid>,
        reason: String,
    },
    /// An assignment was recorded (or refused) by the store.
    AssignDone {
        task_id: Uuid,
        agent_id: Uuid,
        attempt: i32,
        result: Result<(), StoreError>,
    },
    /// Tasks of jobs just created, with the first-stage input when the
    /// handler built it.
    CreatedReady(Vec<(Task, Option<serde_json::Value>)>),
    /// The inputs of tasks being assigned were read: `(task, agent, input
    /// or why it could not be read)`.
    InputsReady(Vec<(Uuid, Uuid, Result<serde_json::Value, String>)>),
    /// A hub-decided failure (timeout, lost agent) was recorded (or refused).
    HubFailDone {
        task_id: Uuid,
        holder: Option<Uuid>,
        result: Result<TaskOutcome, StoreError>,
    },
    /// The store's current view of a task, after a refused hub decision.
    Reconcile(Vec<Task>),
    /// Reloaded at start-up.
    Recovered(Vec<Task>, Instant),
}
