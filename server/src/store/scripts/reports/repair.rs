//! The monitor's repairs, retry-failed and re-runs.
//!
//! Each is one transaction that locks the job row first (on Postgres, `FOR
//! NO KEY UPDATE`, the lock order of `finish.rs`; SQLite has one writer),
//! re-checks the condition it acts on, and appends its events last.

use serde_json::json;
use sqlx::types::Json;
use uuid::Uuid;

use super::super::items::{append_events, insert_tasks};
use super::super::jobs::{fetch_job, stop_job};
use crate::domain::{EventType, ItemStatus, Job, JobStatus, Task, TaskStatus};
use crate::store::StoreError;
use crate::store::driver::{Driver, RowLock, Texts, Ts, Uuids, query};
use crate::store::reports::{RetryOutcome, messages};
use crate::store::shared::{
    self, ACTIVE_TASK, CANCELLABLE_JOB, FINISHABLE_JOB, NewTask, TaskRow, task_columns,
};

/// Locks a job row; its status, or `NotFound("job")`.
async fn lock_job<D: Driver>(conn: &mut D::Conn, job_id: Uuid) -> Result<JobStatus, StoreError> {
    let status: Option<(String,)> = query::<D>(format!(
        "SELECT status FROM jobs WHERE id = $1{}",
        D::row_lock(RowLock::NoKeyUpdate)
    ))
    .bind(job_id)
    .fetch_optional(&mut *conn)
    .await?;
    let (status,) = status.ok_or(StoreError::NotFound("job"))?;
    shared::parse_status(&status, "job", job_id)
}

/// See [`crate::store::reports::ReportStore::requeue_item`].
pub(super) async fn requeue_item<D: Driver>(
    pool: &D::Pool,
    item_id: Uuid,
) -> Result<Option<Task>, StoreError> {
    let at = shared::now();
    let mut tx = D::begin(pool).await?;
    let job_id: Option<(Uuid,)> = query::<D>("SELECT job_id FROM items WHERE id = $1")
        .bind(item_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some((job_id,)) = job_id else {
        return Ok(None);
    };
    if !FINISHABLE_JOB.contains(&lock_job::<D>(&mut tx, job_id).await?) {
        return Ok(None);
    }
    let head: Option<(i32, Json<Vec<String>>, i16, i32)> = query::<D>(format!(
        "SELECT i.stage, j.pipeline, j.priority, j.max_attempts FROM items i \
         JOIN jobs j ON j.id = i.job_id WHERE i.id = $1 AND i.status = $2 \
         AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.item_id = i.id AND t.status {})",
        D::in_texts(3)
    ))
    .bind(item_id)
    .bind(ItemStatus::Validating.as_str())
    .bind(Texts::of(ACTIVE_TASK))
    .fetch_optional(&mut *tx)
    .await?;
    let Some((stage, pipeline, priority, max_attempts)) = head else {
        return Ok(None);
    };
    let next_stage = stage + 1;
    let Some(capability) = usize::try_from(next_stage)
        .ok()
        .and_then(|s| pipeline.0.get(s))
    else {
        return Ok(None);
    };
    let task = NewTask {
        id: Uuid::now_v7(),
        job_id,
        stage: next_stage,
        capability: capability.clone(),
        item_id: Some(item_id),
        priority,
        max_attempts,
    };
    query::<D>("UPDATE items SET status = $2, updated_at = $3 WHERE id = $1")
        .bind(item_id)
        .bind(ItemStatus::Pending.as_str())
        .bind(Ts(at))
        .execute(&mut *tx)
        .await?;
    insert_tasks::<D>(&mut tx, std::slice::from_ref(&task), at).await?;
    let mut event = task.event();
    event.payload["reason"] =
        json!("recovered by the monitor: the item was left validating with no live task");
    append_events::<D>(&mut tx, &[event], at).await?;
    D::commit(tx).await?;
    Ok(Some(task.to_task(at)))
}

/// See [`crate::store::reports::ReportStore::expire_job`].
pub(super) async fn expire_job<D: Driver>(
    pool: &D::Pool,
    job_id: Uuid,
    reason: String,
) -> Result<(Job, Vec<Uuid>), StoreError> {
    let at = shared::now();
    let mut tx = D::begin(pool).await?;
    let current = lock_job::<D>(&mut tx, job_id).await?;
    if !CANCELLABLE_JOB.contains(&current) {
        return Err(shared::transition_conflict(
            job_id,
            current.as_str(),
            &CANCELLABLE_JOB,
            JobStatus::Failed,
        ));
    }
    query::<D>(
        "UPDATE jobs SET status = $2, status_reason = $3, updated_at = $4, finished_at = $4, \
         version = version + 1 WHERE id = $1",
    )
    .bind(job_id)
    .bind(JobStatus::Failed.as_str())
    .bind(&reason)
    .bind(Ts(at))
    .execute(&mut *tx)
    .await?;
    let event = shared::job_status_event(
        EventType::JobFailed,
        job_id,
        JobStatus::Failed,
        Some(&reason),
    );
    stop_job::<D>(tx, job_id, event, at).await
}

/// See [`crate::store::reports::ReportStore::retry_failed`].
pub(super) async fn retry_failed<D: Driver>(
    pool: &D::Pool,
    job_id: Uuid,
    reason: String,
) -> Result<RetryOutcome, StoreError> {
    let at = shared::now();
    let mut tx = D::begin(pool).await?;
    let status = lock_job::<D>(&mut tx, job_id).await?;
    if matches!(status, JobStatus::Cancelled | JobStatus::Waiting) {
        return Err(StoreError::Conflict {
            message: messages::not_retryable(job_id, status),
        });
    }
    let rows: Vec<TaskRow> = query::<D>(concat!(
        "UPDATE tasks SET status = $2, failures = 0, error = NULL, agent_id = NULL, \
         lease_until = NULL, next_run_at = $3, updated_at = $3, version = version + 1 \
         WHERE job_id = $1 AND status = $4 AND (item_id IS NULL OR EXISTS \
         (SELECT 1 FROM items i WHERE i.id = tasks.item_id AND i.status = $5)) RETURNING ",
        task_columns!()
    ))
    .bind(job_id)
    .bind(TaskStatus::Pending.as_str())
    .bind(Ts(at))
    .bind(TaskStatus::Failed.as_str())
    .bind(ItemStatus::Failed.as_str())
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Err(StoreError::Conflict {
            message: messages::nothing_failed(job_id),
        });
    }
    let mut ready = rows
        .into_iter()
        .map(Task::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    ready.sort_by_key(|t| t.id);
    let item_ids: Vec<Uuid> = ready.iter().filter_map(|t| t.item_id).collect();
    let items = query::<D>(format!(
        "UPDATE items SET status = $2, updated_at = $3 WHERE id {} AND status = $4",
        D::in_uuids(1)
    ))
    .bind(Uuids(item_ids))
    .bind(ItemStatus::Pending.as_str())
    .bind(Ts(at))
    .bind(ItemStatus::Failed.as_str())
    .execute(&mut *tx)
    .await?;

    let mut events = Vec::new();
    if status.is_terminal() {
        query::<D>(
            "UPDATE jobs SET status = $2, status_reason = $3, finished_at = NULL, updated_at = $4, \
             version = version + 1 WHERE id = $1",
        )
        .bind(job_id)
        .bind(JobStatus::Queued.as_str())
        .bind(&reason)
        .bind(Ts(at))
        .execute(&mut *tx)
        .await?;
        events.push(shared::job_status_event(
            EventType::JobQueued,
            job_id,
            JobStatus::Queued,
            Some(&reason),
        ));
    }
    events.extend(ready.iter().map(|task| {
        shared::task_event(
            EventType::TaskRetrying,
            task,
            None,
            json!({ "error": reason, "failures": 0, "next_run_at": at }),
        )
    }));
    let job = fetch_job::<D>(&mut tx, job_id)
        .await?
        .ok_or(StoreError::NotFound("job"))?;
    append_events::<D>(&mut tx, &events, at).await?;
    D::commit(tx).await?;
    Ok(RetryOutcome { job, ready, items })
}

/// See [`crate::store::reports::ReportStore::rerun_job`].
pub(super) async fn rerun_job<D: Driver>(
    pool: &D::Pool,
    original: Uuid,
    new_id: Uuid,
    created_by: String,
) -> Result<Job, StoreError> {
    let at = shared::now();
    let mut tx = D::begin(pool).await?;
    let head: Option<(Json<Vec<String>>, i16, i32)> = query::<D>(
        "INSERT INTO jobs (id, status, pipeline, prompt, context, priority, request_hash, \
         created_by, max_attempts, created_at, updated_at, version, rerun_of) \
         SELECT $1, $2, pipeline, prompt, context, priority, request_hash, $3, max_attempts, \
         $4, $4, 1, id FROM jobs WHERE id = $5 RETURNING pipeline, priority, max_attempts",
    )
    .bind(new_id)
    .bind(JobStatus::Queued.as_str())
    .bind(&created_by)
    .bind(Ts(at))
    .bind(original)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((pipeline, priority, max_attempts)) = head else {
        return Err(StoreError::NotFound("job"));
    };
    query::<D>(
        "INSERT INTO documents (job_id, file_name, content_type, size, sha256, bytes) \
         SELECT $1, file_name, content_type, size, sha256, bytes FROM documents WHERE job_id = $2",
    )
    .bind(new_id)
    .bind(original)
    .execute(&mut *tx)
    .await?;
    query::<D>(
        "INSERT INTO job_labels (job_id, label) SELECT $1, label FROM job_labels WHERE job_id = $2",
    )
    .bind(new_id)
    .bind(original)
    .execute(&mut *tx)
    .await?;
    let job = fetch_job::<D>(&mut tx, new_id)
        .await?
        .ok_or(StoreError::NotFound("job"))?;
    let mut created = shared::job_created_event(&job);
    created.payload["rerun_of"] = json!(original);
    let mut events = vec![created];
    if let Some(task) = NewTask::first(new_id, &pipeline.0, priority, max_attempts) {
        insert_tasks::<D>(&mut tx, std::slice::from_ref(&task), at).await?;
        events.push(task.event());
    }
    append_events::<D>(&mut tx, &events, at).await?;
    D::commit(tx).await?;
    Ok(job)
}
