//! The monitor's repairs, retry-failed and re-runs on SQLite.
//!
//! Each runs on the single writer inside `BEGIN IMMEDIATE`, so the
//! conditions it checks cannot change before it commits.

use serde_json::json;
use sqlx::types::Json;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use uuid::Uuid;

use super::super::finish::settle_dependents;
use super::super::items::{append_events, insert_tasks};
use super::super::jobs::fetch_job;
use super::super::{SqliteStore, ts};
use crate::domain::{EventType, ItemStatus, Job, JobStatus, Task, TaskStatus};
use crate::store::StoreError;
use crate::store::reports::{RetryOutcome, messages};
use crate::store::shared::{
    self, ACTIVE_TASK, CANCELLABLE_JOB, Changes, FINISHABLE_JOB, INSERT_CHUNK, NewTask, TaskRow,
    task_columns,
};

/// A job's status, or `NotFound("job")`.
async fn job_status(conn: &mut SqliteConnection, job_id: Uuid) -> Result<JobStatus, StoreError> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
        .bind(job_id)
        .fetch_optional(&mut *conn)
        .await?;
    let status = status.ok_or(StoreError::NotFound("job"))?;
    shared::parse_status(&status, "job", job_id)
}

/// An item's job, stage, and the job's pipeline, priority and max attempts.
type ItemHead = (Uuid, i32, Json<Vec<String>>, i16, i32);

fn json_list<S: Copy>(list: &[S], f: impl Fn(S) -> &'static str) -> Json<Vec<&'static str>> {
    Json(list.iter().map(|s| f(*s)).collect())
}

/// See [`crate::store::reports::ReportStore::requeue_item`].
pub(super) async fn requeue_item(
    store: &SqliteStore,
    item_id: Uuid,
) -> Result<Option<Task>, StoreError> {
    let at = shared::now();
    let mut tx = store.begin().await?;
    let head: Option<ItemHead> = sqlx::query_as(
        "SELECT i.job_id, i.stage, j.pipeline, j.priority, j.max_attempts FROM items i \
         JOIN jobs j ON j.id = i.job_id WHERE i.id = $1 AND i.status = $2 \
         AND j.status IN (SELECT value FROM json_each($3)) \
         AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.item_id = i.id \
         AND t.status IN (SELECT value FROM json_each($4)))",
    )
    .bind(item_id)
    .bind(ItemStatus::Validating.as_str())
    .bind(json_list(&FINISHABLE_JOB, JobStatus::as_str))
    .bind(json_list(&ACTIVE_TASK, TaskStatus::as_str))
    .fetch_optional(&mut *tx)
    .await?;
    let Some((job_id, stage, pipeline, priority, max_attempts)) = head else {
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
        .bind(ts(at))
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
    store: &SqliteStore,
    job_id: Uuid,
    reason: String,
) -> Result<(Job, Vec<Uuid>), StoreError> {
    let at = shared::now();
    let mut tx = store.begin().await?;
    let current = job_status(&mut tx, job_id).await?;
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
    .bind(ts(at))
    .execute(&mut *tx)
    .await?;
    let mut task_ids: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE tasks SET status = $2, updated_at = $3, version = version + 1 \
         WHERE job_id = $1 AND status IN (SELECT value FROM json_each($4)) RETURNING id",
    )
    .bind(job_id)
    .bind(TaskStatus::Cancelled.as_str())
    .bind(ts(at))
    .bind(json_list(&ACTIVE_TASK, TaskStatus::as_str))
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
    store: &SqliteStore,
    job_id: Uuid,
    reason: String,
) -> Result<RetryOutcome, StoreError> {
    let at = shared::now();
    let mut tx = store.begin().await?;
    let status = job_status(&mut tx, job_id).await?;
    if matches!(status, JobStatus::Cancelled | JobStatus::Waiting) {
        return Err(StoreError::Conflict {
            message: messages::not_retryable(job_id, status),
        });
    }
    let rows: Vec<TaskRow> = sqlx::query_as(concat!(
        "UPDATE tasks SET status = $2, failures = 0, error = NULL, agent_id = NULL, \
         lease_until = NULL, next_run_at = $3, updated_at = $3, version = version + 1 \
         WHERE job_id = $1 AND status = $4 AND (item_id IS NULL OR EXISTS \
         (SELECT 1 FROM items i WHERE i.id = tasks.item_id AND i.status = $5)) RETURNING ",
        task_columns!()
    ))
    .bind(job_id)
    .bind(TaskStatus::Pending.as_str())
    .bind(ts(at))
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
    let mut items = 0;
    for chunk in item_ids.chunks(INSERT_CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new("UPDATE items SET status = ");
        qb.push_bind(ItemStatus::Pending.as_str())
            .push(", updated_at = ")
            .push_bind(ts(at))
            .push(" WHERE status = ")
            .push_bind(ItemStatus::Failed.as_str())
            .push(" AND id IN (");
        let mut list = qb.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        qb.push(")");
        items += qb.build().execute(&mut *tx).await?.rows_affected();
    }

    let mut events = Vec::new();
    if status.is_terminal() {
        sqlx::query(
            "UPDATE jobs SET status = $2, status_reason = $3, finished_at = NULL, updated_at = $4, \
             version = version + 1 WHERE id = $1",
        )
        .bind(job_id)
        .bind(JobStatus::Queued.as_str())
        .bind(&reason)
        .bind(ts(at))
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
    store: &SqliteStore,
    original: Uuid,
    new_id: Uuid,
    created_by: String,
) -> Result<Job, StoreError> {
    let at = shared::now();
    let mut tx = store.begin().await?;
    let head: Option<(Json<Vec<String>>, i16, i32)> = sqlx::query_as(
        "INSERT INTO jobs (id, status, pipeline, prompt, context, priority, request_hash, \
         created_by, max_attempts, created_at, updated_at, version, rerun_of) \
         SELECT $1, $2, pipeline, prompt, context, priority, request_hash, $3, max_attempts, \
         $4, $4, 1, id FROM jobs WHERE id = $5 RETURNING pipeline, priority, max_attempts",
    )
    .bind(new_id)
    .bind(JobStatus::Queued.as_str())
    .bind(&created_by)
    .bind(ts(at))
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
