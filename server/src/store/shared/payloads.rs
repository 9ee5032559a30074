//! What a state change tells the world: the tasks it creates, event
//! payloads, and the conflict messages of refused changes.
//! One definition for both backends, so their events and errors are identical.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::CANCELLABLE_JOB;
use crate::domain::{EventType, Job, JobStatus, NewEvent, NewItem, Task, TaskStatus};
use crate::store::StoreError;

/// A task to insert: the stage-0 task a queued job starts with, or the
/// next-stage task of an emitted item. Always `pending`, attempt 0, due now.
#[derive(Debug, Clone)]
pub(crate) struct NewTask {
    pub id: Uuid,
    pub job_id: Uuid,
    pub stage: i32,
    pub capability: String,
    pub item_id: Option<Uuid>,
    pub priority: i16,
    pub max_attempts: i32,
}

impl NewTask {
    /// The stage-0 task of a job; `None` for an empty pipeline (the HTTP
    /// layer refuses those).
    pub fn first(
        job_id: Uuid,
        pipeline: &[String],
        priority: i16,
        max_attempts: i32,
    ) -> Option<Self> {
        pipeline.first().map(|capability| NewTask {
            id: Uuid::now_v7(),
            job_id,
            stage: 0,
            capability: capability.clone(),
            item_id: None,
            priority,
            max_attempts,
        })
    }

    /// `task.created` (with `item_id` for tasks that work on an item).
    pub fn event(&self) -> NewEvent {
        let mut payload = json!({
            "job_id": self.job_id,
            "task_id": self.id,
            "stage": self.stage,
            "capability": self.capability,
        });
        if let Some(item_id) = self.item_id {
            payload["item_id"] = json!(item_id);
        }
        NewEvent {
            job_id: Some(self.job_id),
            kind: EventType::TaskCreated,
            payload,
        }
    }

    /// The task as stored at `at`, built without reading it back.
    pub fn to_task(&self, at: DateTime<Utc>) -> Task {
        Task {
            id: self.id,
            job_id: self.job_id,
            stage: self.stage,
            capability: self.capability.clone(),
            status: TaskStatus::Pending,
            item_id: self.item_id,
            priority: self.priority,
            attempt: 0,
            failures: 0,
            max_attempts: self.max_attempts,
            agent_id: None,
            lease_until: None,
            next_run_at: at,
            error: None,
            created_at: at,
            updated_at: at,
        }
    }
}

/// `job.created`.
pub(crate) fn job_created_event(job: &Job) -> NewEvent {
    NewEvent {
        job_id: Some(job.id),
        kind: EventType::JobCreated,
        payload: json!({
            "job_id": job.id,
            "status": job.status.as_str(),
            "priority": job.priority,
            "created_by": job.created_by,
        }),
    }
}

/// The event type of a job entering `to`; `None` for `waiting`, which a job
/// only ever starts in.
pub(crate) fn job_event_type(to: JobStatus) -> Option<EventType> {
    match to {
        JobStatus::Waiting => None,
        JobStatus::Queued => Some(EventType::JobQueued),
        JobStatus::Running => Some(EventType::JobStarted),
        JobStatus::Completed => Some(EventType::JobCompleted),
        JobStatus::Failed => Some(EventType::JobFailed),
        JobStatus::Cancelled => Some(EventType::JobCancelled),
    }
}

/// A `job.*` status event.
pub(crate) fn job_status_event(
    kind: EventType,
    job_id: Uuid,
    to: JobStatus,
    reason: Option<&str>,
) -> NewEvent {
    NewEvent {
        job_id: Some(job_id),
        kind,
        payload: json!({ "job_id": job_id, "status": to.as_str(), "reason": reason }),
    }
}

/// `task.cancelled`.
pub(crate) fn task_cancelled_event(job_id: Uuid, task_id: Uuid) -> NewEvent {
    NewEvent {
        job_id: Some(job_id),
        kind: EventType::TaskCancelled,
        payload: json!({ "job_id": job_id, "task_id": task_id, "status": TaskStatus::Cancelled.as_str() }),
    }
}

/// `item.created`.
pub(crate) fn item_created_event(item: &NewItem) -> NewEvent {
    NewEvent {
        job_id: Some(item.job_id),
        kind: EventType::ItemCreated,
        payload: json!({
            "job_id": item.job_id,
            "item_id": item.id,
            "stage": item.stage,
            "source_task_id": item.source_task_id,
        }),
    }
}

/// "a", "a or b", "a, b or c".
fn or_list(statuses: &[JobStatus]) -> String {
    let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    match names.split_last() {
        None => "nothing".to_owned(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// The conflict of a `transition_job` whose job is not in `from`.
pub(crate) fn transition_conflict(
    id: Uuid,
    current: &str,
    from: &[JobStatus],
    to: JobStatus,
) -> StoreError {
    StoreError::Conflict {
        message: format!(
            "job {id} is {current}; only {} jobs can become {to}",
            or_list(from)
        ),
    }
}

/// The conflict of a `transition_job` to a status no job can move to.
pub(crate) fn invalid_target(id: Uuid, to: JobStatus) -> StoreError {
    StoreError::Conflict {
        message: format!("job {id} cannot move to {to}: a job is only {to} when created"),
    }
}

/// The conflict of a `cancel_job` on a finished job.
pub(crate) fn cancel_conflict(id: Uuid, current: &str) -> StoreError {
    StoreError::Conflict {
        message: format!(
            "job {id} is already {current}; only {} jobs can be cancelled",
            or_list(&CANCELLABLE_JOB)
        ),
    }
}
