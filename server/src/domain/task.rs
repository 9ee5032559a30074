//! Tasks: one unit of work for one capability, pushed to one agent.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::status::TaskStatus;

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Task {
    pub id: Uuid,
    pub job_id: Uuid,
    /// 0-based index into the job's pipeline.
    pub stage: i32,
    pub capability: String,
    pub status: TaskStatus,
    /// The item this task works on (stages after the first).
    pub item_id: Option<Uuid>,
    pub priority: i16,
    /// Starts at 0 and is incremented each time the task is handed out: the
    /// fencing token every agent message about the task must carry.
    pub attempt: i32,
    /// Failed attempts so far (declines do not count).
    pub failures: i32,
    pub max_attempts: i32,
    pub agent_id: Option<Uuid>,
    pub lease_until: Option<DateTime<Utc>>,
    pub next_run_at: DateTime<Utc>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An agent finished an attempt: everything it changes, applied in one transaction.
#[derive(Debug, Clone)]
pub struct TaskCompletion {
    pub task_id: Uuid,
    pub attempt: i32,
    pub agent_id: Uuid,
    pub output: serde_json::Value,
    /// Decides the task's input item (stages after the first).
    pub verdict: switchyard_agent::protocol::Verdict,
    pub reason: Option<String>,
    pub usage: switchyard_agent::protocol::Usage,
    /// Items the attempt emitted, `(item_id, data)`, in emission order.
    pub items: Vec<(Uuid, serde_json::Value)>,
}

/// An attempt failed (reported by the agent, or decided by the hub: accept
/// timeout, lease expiry, agent lost).
#[derive(Debug, Clone)]
pub struct TaskFailure {
    pub task_id: Uuid,
    pub attempt: i32,
    /// The agent that must hold the attempt; `None` when the hub decides.
    pub agent_id: Option<Uuid>,
    pub error: String,
    /// How to retry, if retrying is allowed; `None` fails the task for good.
    /// The store retries only while `failures + 1 < max_attempts`, and sets
    /// `next_run_at = now + retry.delay(failures + 1, random)`.
    pub retry: Option<super::RetryPolicy>,
}

/// What a task transition changed beyond the task itself.
#[derive(Debug, Clone, Default)]
pub struct TaskOutcome {
    /// The task after the change.
    pub task: Option<Task>,
    /// Tasks that became ready (next-stage tasks, first tasks of jobs whose
    /// dependencies just completed, a retried task): the dispatcher queues them.
    pub ready: Vec<Task>,
    /// Jobs whose status changed, after the change.
    pub jobs: Vec<super::Job>,
}
