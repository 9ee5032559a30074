//! [`crate::store::reports::ReportStore`] for SQLite: aggregate reads here,
//! the monitor's repairs, retries and re-runs in [`repair`], the daily
//! statistics in [`daily`].
//!
//! Same statements as the Postgres store in SQLite's dialect: JSON fields are
//! read with `json_extract`/`json_each` after a `json_type` check, status
//! lists are bound as one JSON array, timestamps as the store's fixed-width
//! text (so comparisons are text comparisons). Reads use the read pool.

mod daily;
mod repair;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::{SqliteStore, ts};
use crate::domain::{ItemStatus, Job, JobStatus, Task, TaskStatus};
use crate::store::StoreError;
use crate::store::reports::{
    ActiveJob, DailyCounter, ItemGroup, KeyCount, OrphanedItem, ReportStore, RetryOutcome,
    TaskGroup, UsageGroup,
};
use crate::store::shared::{self, ACTIVE_TASK, FINISHABLE_JOB, TaskRow, task_columns};

/// Items counted per element of a JSON string array in `data`; `$1` is the job.
macro_rules! array_counts {
    ($field:literal) => {
        concat!(
            "SELECT e.value AS key, i.status AS status, count(DISTINCT i.id) AS count \
             FROM items i, json_each(i.data, '$.",
            $field,
            "') e WHERE i.job_id = $1 AND json_type(i.data, '$.",
            $field,
            "') = 'array' AND e.type = 'text' GROUP BY 1, 2 ORDER BY 1, 2"
        )
    };
}

fn statuses<S: Copy>(list: &[S], f: impl Fn(S) -> &'static str) -> Json<Vec<&'static str>> {
    Json(list.iter().map(|s| f(*s)).collect())
}

#[async_trait]
impl ReportStore for SqliteStore {
    async fn task_groups(
        &self,
        job_id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<Vec<TaskGroup>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT stage, capability, status, count(*) AS count, \
             sum(CASE WHEN updated_at >= $2 THEN 1 ELSE 0 END) AS recent, \
             min(created_at) AS first_created_at, max(updated_at) AS last_updated_at \
             FROM tasks WHERE job_id = $1 GROUP BY stage, capability, status \
             ORDER BY stage, capability, status",
        )
        .bind(job_id)
        .bind(ts(since))
        .fetch_all(&self.read)
        .await?)
    }

    async fn item_groups(
        &self,
        job_id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<Vec<ItemGroup>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT status, count(*) AS count, \
             sum(CASE WHEN updated_at >= $2 THEN 1 ELSE 0 END) AS recent \
             FROM items WHERE job_id = $1 GROUP BY status ORDER BY status",
        )
        .bind(job_id)
        .bind(ts(since))
        .fetch_all(&self.read)
        .await?)
    }

    async fn tag_counts(&self, job_id: Uuid) -> Result<Vec<KeyCount>, StoreError> {
        Ok(sqlx::query_as(array_counts!("tags"))
            .bind(job_id)
            .fetch_all(&self.read)
            .await?)
    }

    async fn priority_counts(&self, job_id: Uuid) -> Result<Vec<KeyCount>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT CASE WHEN json_type(data, '$.priority') = 'text' \
             THEN json_extract(data, '$.priority') END AS key, status, count(*) AS count \
             FROM items WHERE job_id = $1 GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .bind(job_id)
        .fetch_all(&self.read)
        .await?)
    }

    async fn citation_counts(&self, job_id: Uuid) -> Result<Vec<KeyCount>, StoreError> {
        Ok(sqlx::query_as(array_counts!("citations"))
            .bind(job_id)
            .fetch_all(&self.read)
            .await?)
    }

    async fn usage_groups(&self, job_id: Uuid) -> Result<Vec<UsageGroup>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT t.agent_id AS agent_id, a.name AS agent_name, t.capability AS capability, \
             count(*) AS tasks, \
             COALESCE(sum(json_extract(t.usage, '$.tokens_in')), 0) AS tokens_in, \
             COALESCE(sum(json_extract(t.usage, '$.tokens_out')), 0) AS tokens_out, \
             COALESCE(sum(json_extract(t.usage, '$.requests')), 0) AS requests, \
             c.pricing AS pricing \
             FROM tasks t LEFT JOIN agents a ON a.id = t.agent_id \
             LEFT JOIN capabilities c ON c.agent_id = t.agent_id AND c.name = t.capability \
             WHERE t.job_id = $1 AND t.usage IS NOT NULL AND json_type(t.usage) = 'object' \
             GROUP BY t.agent_id, a.name, t.capability, c.pricing \
             ORDER BY a.name, t.capability",
        )
        .bind(job_id)
        .fetch_all(&self.read)
        .await?)
    }

    async fn expired_tasks(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Task>, StoreError> {
        let rows: Vec<TaskRow> = sqlx::query_as(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE job_id IN (SELECT id FROM jobs WHERE finished_at IS NULL \
             AND status IN (SELECT value FROM json_each($1))) \
             AND status IN (SELECT value FROM json_each($2)) \
             AND COALESCE(lease_until, updated_at) < $3 \
             ORDER BY COALESCE(lease_until, updated_at), id LIMIT $4"
        ))
        .bind(statuses(&FINISHABLE_JOB, JobStatus::as_str))
        .bind(statuses(
            &[TaskStatus::Assigned, TaskStatus::Running],
            TaskStatus::as_str,
        ))
        .bind(ts(cutoff))
        .bind(i64::from(shared::page_limit(limit)))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(Task::try_from).collect()
    }

    async fn orphaned_items(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OrphanedItem>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT i.id AS item_id, i.job_id AS job_id, i.stage AS stage, \
             i.updated_at AS updated_at FROM items i \
             WHERE i.job_id IN (SELECT id FROM jobs WHERE finished_at IS NULL \
             AND status IN (SELECT value FROM json_each($1))) \
             AND i.status = $2 AND i.updated_at < $3 \
             AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.item_id = i.id \
             AND t.status IN (SELECT value FROM json_each($4))) \
             ORDER BY i.updated_at, i.id LIMIT $5",
        )
        .bind(statuses(&FINISHABLE_JOB, JobStatus::as_str))
        .bind(ItemStatus::Validating.as_str())
        .bind(ts(cutoff))
        .bind(statuses(&ACTIVE_TASK, TaskStatus::as_str))
        .bind(i64::from(shared::page_limit(limit)))
        .fetch_all(&self.read)
        .await?)
    }

    async fn active_jobs(&self, limit: u32) -> Result<Vec<ActiveJob>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT j.id AS job_id, j.status AS status, j.created_at AS created_at, \
             (SELECT e.created_at FROM events e WHERE e.job_id = j.id \
              ORDER BY e.seq DESC LIMIT 1) AS last_event_at \
             FROM jobs j WHERE j.finished_at IS NULL ORDER BY j.created_at, j.id LIMIT $1",
        )
        .bind(i64::from(shared::page_limit(limit)))
        .fetch_all(&self.read)
        .await?)
    }

    async fn requeue_item(&self, item_id: Uuid) -> Result<Option<Task>, StoreError> {
        let result = repair::requeue_item(self, item_id).await;
        self.bump();
        result
    }

    async fn expire_job(
        &self,
        job_id: Uuid,
        reason: String,
    ) -> Result<(Job, Vec<Uuid>), StoreError> {
        let result = repair::expire_job(self, job_id, reason).await;
        self.bump();
        result
    }

    async fn retry_failed(&self, job_id: Uuid, reason: String) -> Result<RetryOutcome, StoreError> {
        let result = repair::retry_failed(self, job_id, reason).await;
        self.bump();
        result
    }

    async fn rerun_job(
        &self,
        original: Uuid,
        new_id: Uuid,
        created_by: String,
    ) -> Result<Job, StoreError> {
        let result = repair::rerun_job(self, original, new_id, created_by).await;
        self.bump();
        result
    }

    async fn rerun_of(&self, job_id: Uuid) -> Result<Option<Uuid>, StoreError> {
        let row: Option<(Option<Uuid>,)> =
            sqlx::query_as("SELECT rerun_of FROM jobs WHERE id = $1")
                .bind(job_id)
                .fetch_optional(&self.read)
                .await?;
        Ok(row.and_then(|(r,)| r))
    }

    async fn roll_up_stats(&self, max_events: u32) -> Result<u64, StoreError> {
        daily::roll_up(self, max_events).await
    }

    async fn daily_counters(&self, since: NaiveDate) -> Result<Vec<DailyCounter>, StoreError> {
        daily::counters(&self.read, since).await
    }
}
