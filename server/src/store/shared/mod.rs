//! What both backends share: row shapes, row → domain conversion, event
//! payloads and error messages.
//!
//! The two stores differ in SQL dialect and in how they bind some values
//! (arrays, timestamps), but they read the same columns into the same Rust
//! types, so the row structs here derive `sqlx::FromRow` generically and are
//! decoded by either driver. Keeping conversion, payloads and messages in one
//! place is what makes the two backends behave identically under the contract
//! suite.

mod agents;
mod dispatch;
mod fencing;
mod input;
mod payloads;
mod rows;

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

pub(crate) use agents::*;
pub(crate) use dispatch::*;
pub(crate) use fencing::*;
pub(crate) use input::*;
pub(crate) use payloads::*;
pub(crate) use rows::*;

use super::StoreError;
use crate::domain::{
    CreateJobOutcome, Item, ItemStatus, Job, JobStatus, NewItem, NewJob, TaskStatus,
};

/// Upper bound on a page, whatever the caller asks for.
pub(crate) const MAX_PAGE: u32 = 1000;

/// Rows per multi-row `INSERT` (keeps bind counts far below both backends' limits).
pub(crate) const INSERT_CHUNK: usize = 500;

/// The job states that can still be cancelled.
pub(crate) const CANCELLABLE_JOB: [JobStatus; 3] =
    [JobStatus::Waiting, JobStatus::Queued, JobStatus::Running];

/// The task states a cancellation stops.
pub(crate) const ACTIVE_TASK: [TaskStatus; 3] = [
    TaskStatus::Pending,
    TaskStatus::Assigned,
    TaskStatus::Running,
];

/// The current time, truncated to microseconds: Postgres stores microseconds,
/// so truncating up front makes what a write returns equal to what a later
/// read gives, on both backends.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A page size within `1..=MAX_PAGE`.
pub(crate) fn page_limit(limit: u32) -> u32 {
    limit.clamp(1, MAX_PAGE)
}

/// Labels as stored: a set, sorted.
pub(crate) fn normalized_labels(labels: &[String]) -> Vec<String> {
    let mut labels = labels.to_vec();
    labels.sort();
    labels.dedup();
    labels
}

/// Dependencies as stored: a set, sorted (UUIDv7, so oldest first).
pub(crate) fn normalized_deps(deps: &[Uuid]) -> Vec<Uuid> {
    let mut deps = deps.to_vec();
    deps.sort();
    deps.dedup();
    deps
}

/// The job a successful `create_job` stored, built without reading it back.
pub(crate) fn created_job(
    new: &NewJob,
    status: JobStatus,
    labels: Vec<String>,
    deps: Vec<Uuid>,
    at: DateTime<Utc>,
) -> Job {
    Job {
        id: new.id,
        status,
        status_reason: None,
        pipeline: new.pipeline.clone(),
        prompt: new.prompt.clone(),
        context: new.context.clone(),
        priority: new.priority,
        labels,
        depends_on: deps,
        idempotency_key: new.idempotency_key.clone(),
        created_by: new.created_by.clone(),
        document: new.document.as_ref().map(|d| d.meta.clone()),
        items: None,
        created_at: at,
        updated_at: at,
        started_at: None,
        finished_at: None,
        version: 1,
    }
}

/// The answer to a request whose idempotency key was seen before.
pub(crate) fn replay(
    existing: JobRow,
    new: &NewJob,
    attachments: Vec<AttachmentRow>,
) -> Result<CreateJobOutcome, StoreError> {
    if existing.request_hash == new.request_hash {
        let mut attachments = Attachments::from_rows(attachments);
        Ok(CreateJobOutcome::Existing(
            existing.into_job(&mut attachments)?,
        ))
    } else {
        Err(StoreError::IdempotencyMismatch {
            key: new.idempotency_key.clone().unwrap_or_default(),
            job_id: existing.id,
        })
    }
}

/// Is this the unique violation of a concurrent insert with the same idempotency key?
/// (Only then is re-reading by key the right recovery.)
pub(crate) fn is_unique_violation(err: &StoreError) -> bool {
    match err {
        StoreError::Database(e) => e
            .as_database_error()
            .is_some_and(|d| d.is_unique_violation()),
        _ => false,
    }
}

/// The item an `insert_items` stored, built without reading it back.
pub(crate) fn created_item(new: NewItem, at: DateTime<Utc>) -> Item {
    Item {
        id: new.id,
        job_id: new.job_id,
        source_task_id: new.source_task_id,
        stage: new.stage,
        status: ItemStatus::Pending,
        data: new.data,
        rejection_reason: None,
        last_error: None,
        retry_count: 0,
        created_at: at,
        updated_at: at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_statuses() {
        let id = Uuid::nil();
        let err = cancel_conflict(id, "completed").to_string();
        assert_eq!(
            err,
            format!(
                "job {id} is already completed; only waiting, queued or running jobs can be cancelled"
            )
        );
        let err = transition_conflict(id, "cancelled", &[JobStatus::Queued], JobStatus::Running)
            .to_string();
        assert_eq!(
            err,
            format!("job {id} is cancelled; only queued jobs can become running")
        );
    }

    #[test]
    fn now_is_microsecond_precise() {
        assert_eq!(now().timestamp_subsec_nanos() % 1000, 0);
    }
}
