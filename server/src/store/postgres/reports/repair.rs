//! The monitor's repairs, retry-failed and re-runs on Postgres.
//!
//! Each is one transaction that locks the job row first (`FOR NO KEY
//! UPDATE`, the lock order of `finish.rs`), re-checks the condition it acts
//! on, and appends its events last.

use serde_json::json;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::super::finish::settle_dependents;
use super::super::items::{append_events, insert_tasks};
use super::super::jobs::fetch_job;
use crate::domain::{EventType, ItemStatus, Job, JobStatus, Task, TaskStatus};
use crate::store::StoreError;
use crate::store::reports::{RetryOutcome, messages};
use crate::store::shared::{
    self, ACTIVE_TASK, CANCELLABLE_JOB, Changes, FINISHABLE_JOB, NewTask, TaskRow, task_columns,
};

/// Locks a job row; its status, or `NotFound("job")`.
async fn lock_job(conn: &mut PgConnection, job_id: Uuid) -> Result<JobStatus, StoreError> {
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1 FOR NO KEY UPDATE")
            .bind(job_id)
            .fetch_optional(&mut *conn)
            .await?;
    let status = status.ok_or(StoreError::NotFound("job"))?;
    shared::parse_status(&status, "job", job_id)
}

/// See [`crate::store::reports::ReportStore::requeue_item`].
pub(super) async fn requeue_item(pool: &PgPool, item_id: Uuid) -> Result<Option<Task>, StoreError> {
    let at = shared::now();
    let mut tx = pool.begin().await?;
    let job_id: Option<Uuid> = sqlx::query_scalar("SELECT job_id FROM items WHERE id = $1")
        .bind(item_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(job_id) = job_id else {
        return Ok(None);
    };
    if !FINISHABLE_JOB.contains(&lock_job(&mut tx, job_id).await?) {
        return Ok(None);
    }
    let head: Option<(i32, Json<Vec<String>>, i16, i32)> = sqlx::query_as(
        "SELECT i.stage, j.pipeline, j.priority, j.max_attempts FROM items i \
         JOIN jobs j ON j.id = i.job_id WHERE i.id = $1 AND i.status = $2 \
         AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.item_id = i.id AND t.status = ANY($3))",
    )
    .bind(item_id)
    .bind(ItemStatus::Validating.as_str())
    .bind(ACTIVE_TASK.map(|s| s.as_str()).to_vec())
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
    sqlx::query("UPDATE items SET status = $2, updated_at = $3 WHERE id = $1")
        .bind(item_id)
        .bind(ItemStatus::Pending.as_str())
        .bind(at)
        .execute(&mut *tx)
        .await?;
    insert_tasks(&mut tx, std::slice::from_ref(&task), at).await?;
    let mut event = task.event();
    event.payload["reason"] =
        json!("recovered by the monitor: the item was left validating with no live task");
    append_events(&mut tx, &[event], at).await?;
    tx.commit().await?;
    Ok(Some(task.to_task(at)))
}

/// See [`crate::store::reports::ReportStore::expire_job`].
pub(super) async fn expire_job(
    pool: &PgPool,
    job_id: Uuid,
    reason: String,
) -> Result<(Job, Vec<Uuid>), StoreError> {
    let at = shared::now();
    let mut tx = pool.begin().await?;
    let current = lock_job(&mut tx, job_id).await?;
    if !CANCELLABLE_JOB.contains(&current) {
        return Err(shared::transition_conflict(
            job_id,
            current.as_str(),
            &CANCELLABLE_JOB,
            JobStatus::Failed,
        ));
    }
    sqlx::query(
        "UPDATE jobs SET status = $2, status_reason = $3, updated_at = $4, finished_at = $4, \
         version = version + 1 WHERE id = $1",
    )
    .bind(job_id)
    .bind(JobStatus::Failed.as_str())
    .bind(&reason)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    let mut task_ids: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE tasks SET status = $2, updated_at = $3, version = version + 1 \
         WHERE job_id = $1 AND status = ANY($4) RETURNING id",
    )
    .bind(job_id)
    .bind(TaskStatus::Cancelled.as_str())
    .bind(at)
    .bind(ACTIVE_TASK.map(|s| s.as_str()).to_vec())
    .fetch_all(&mut *tx)
    .await?;
    task_ids.sort();
    let mut changes = Changes::default();
    changes.events.push(shared::job_status_event(
        EventType::JobFailed,
        job_id,
        JobStatus::Failed,
        Some(&reason),
    ));
    changes.events.extend(
        task_ids
            .iter()
            .map(|t| shared::task_cancelled_event(job_id, *t)),
    );
    settle_dependents(&mut tx, job_id, at, &mut changes).await?;
    let job = fetch_job(&mut tx, job_id)
        .await?
        .ok_or(StoreError::NotFound("job"))?;
    append_events(&mut tx, &changes.events, at).await?;
    tx.commit().await?;
    Ok((job, task_ids))
}

/// See [`crate::store::reports::ReportStore::retry_failed`].
pub(super) async fn retry_failed(
    pool: &PgPool,
    job_id: Uuid,
    reason: String,
) -> Result<RetryOutcome, StoreError> {
    let at = shared::now();
    let mut tx = pool.begin().await?;
    let status = lock_job(&mut tx, job_id).await?;
    if matches!(status, JobStatus::Cancelled | JobStatus::Waiting) {
        return Err(StoreError::Conflict {
            message: messages::not_retryable(job_id, status),
        });
    }
    let rows: Vec<TaskRow> = sqlx::query_as(concat!(
        "UPDATE tasks t SET status = $2, failures = 0, error = NULL, agent_id = NULL, \
         lease_until = NULL, next_run_at = $3, updated_at = $3, version = version + 1 \
         WHERE t.job_id = $1 AND t.status = $4 AND (t.item_id IS NULL OR EXISTS \
         (SELECT 1 FROM items i WHERE i.id = t.item_id AND i.status = $5)) RETURNING ",
        task_columns!()
    ))
    .bind(job_id)
    .bind(TaskStatus::Pending.as_str())
    .bind(at)
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
    let items = sqlx::query(
        "UPDATE items SET status = $2, updated_at = $3 WHERE id = ANY($1) AND status = $4",
    )
    .bind(&item_ids)
    .bind(ItemStatus::Pending.as_str())
    .bind(at)
    .bind(ItemStatus::Failed.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();

    let mut events = Vec::new();
    if status.is_terminal() {
        sqlx::query(
            "UPDATE jobs SET status = $2, status_reason = $3, finished_at = NULL, updated_at = $4, \
             version = version + 1 WHERE id = $1",
        )
        .bind(job_id)
        .bind(JobStatus::Queued.as_str())
        .bind(&reason)
        .bind(at)
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
    let job = fetch_job(&mut tx, job_id)
        .await?
        .ok_or(StoreError::NotFound("job"))?;
    append_events(&mut tx, &events, at).await?;
    tx.commit().await?;
    Ok(RetryOutcome { job, ready, items })
}

/// See [`crate::store::reports::ReportStore::rerun_job`].
pub(super) async fn rerun_job(
    pool: &PgPool,
    original: Uuid,
    new_id: Uuid,
    created_by: String,
) -> Result<Job, StoreError> {
    let at = shared::now();
    let mut tx = pool.begin().await?;
    let head: Option<(Json<Vec<String>>, i16, i32)> = sqlx::query_as(
        "INSERT INTO jobs (id, status, pipeline, prompt, context, priority, request_hash, \
         created_by, max_attempts, created_at, updated_at, version, rerun_of) \
         SELECT $1, $2, pipeline, prompt, context, priority, request_hash, $3, max_attempts, \
         $4, $4, 1, id FROM jobs WHERE id = $5 RETURNING pipeline, priority, max_attempts",
    )
    .bind(new_id)
    .bind(JobStatus::Queued.as_str())
    .bind(&created_by)
    .bind(at)
    .bind(original)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((pipeline, priority, max_attempts)) = head else {
        return Err(StoreError::NotFound("job"));
    };
    sqlx::query(
        "INSERT INTO documents (job_id, file_name, content_type, size, sha256, bytes) \
         SELECT $1, file_name, content_type, size, sha256, bytes FROM documents WHERE job_id = $2",
    )
    .bind(new_id)
    .bind(original)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO job_labels (job_id, label) SELECT $1, label FROM job_labels WHERE job_id = $2",
    )
    .bind(new_id)
    .bind(original)
    .execute(&mut *tx)
    .await?;
    let job = fetch_job(&mut tx, new_id)
        .await?
        .ok_or(StoreError::NotFound("job"))?;
    let mut created = shared::job_created_event(&job);
    created.payload["rerun_of"] = json!(original);
    let mut events = vec![created];
    if let Some(task) = NewTask::first(new_id, &pipeline.0, priority, max_attempts) {
        insert_tasks(&mut tx, std::slice::from_ref(&task), at).await?;
        events.push(task.event());
    }
    append_events(&mut tx, &events, at).await?;
    tx.commit().await?;
    Ok(job)
}
