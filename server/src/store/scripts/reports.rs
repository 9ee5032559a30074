//! [`ReportStore`] over a driver: aggregate reads here, the monitor's
//! repairs, retries and re-runs in [`repair`], the daily statistics in
//! [`daily`].
//!
//! Every aggregate is one `GROUP BY` over one job's rows, found through the
//! `(job_id, ...)` indexes. JSON fields are read in the driver's dialect
//! ([`Driver::SQL`]) after a type check, so an item whose `tags` is not an
//! array is skipped instead of failing the report.

mod daily;
mod repair;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::SqlStore;
use crate::domain::{ItemStatus, Job, Task, TaskStatus};
use crate::store::StoreError;
use crate::store::driver::{Driver, Texts, Ts, query};
use crate::store::reports::{
    ActiveJob, DailyCounter, ItemGroup, KeyCount, OrphanedItem, ReportStore, RetryOutcome,
    StoreGauges, TaskGroup, UsageGroup,
};
use crate::store::shared::{self, ACTIVE_TASK, FINISHABLE_JOB, TaskRow, task_columns};

#[async_trait]
impl<D: Driver> ReportStore for SqlStore<D> {
    async fn gauges(&self) -> Result<StoreGauges, StoreError> {
        let mut conn = self.reader().await?;
        // Both through partial indexes: `jobs_active` (unfinished jobs) and
        // `webhook_deliveries_due` (pending deliveries).
        let active_jobs: Vec<(String, i64)> = query::<D>(
            "SELECT status, count(*) FROM jobs WHERE finished_at IS NULL \
             GROUP BY status ORDER BY status",
        )
        .fetch_all(&mut *conn)
        .await?;
        let pending: Vec<(Uuid, i64, DateTime<Utc>)> = query::<D>(
            "SELECT webhook_id, count(*), min(created_at) FROM webhook_deliveries \
             WHERE status = 'pending' GROUP BY webhook_id ORDER BY webhook_id",
        )
        .fetch_all(&mut *conn)
        .await?;
        let now = shared::now();
        let webhook_backlog = pending
            .into_iter()
            .map(|(id, n, oldest)| {
                let age = (now - oldest).num_milliseconds().max(0) as f64 / 1000.0;
                (id, n, age)
            })
            .collect();
        Ok(StoreGauges {
            active_jobs,
            webhook_backlog,
        })
    }

    async fn task_groups(
        &self,
        job_id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<Vec<TaskGroup>, StoreError> {
        Ok(query::<D>(
            "SELECT stage, capability, status, count(*) AS count, \
             count(*) FILTER (WHERE updated_at >= $2) AS recent, \
             min(created_at) AS first_created_at, max(updated_at) AS last_updated_at \
             FROM tasks WHERE job_id = $1 GROUP BY stage, capability, status \
             ORDER BY stage, capability, status",
        )
        .bind(job_id)
        .bind(Ts(since))
        .fetch_all(&mut *self.reader().await?)
        .await?)
    }

    async fn item_groups(
        &self,
        job_id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<Vec<ItemGroup>, StoreError> {
        Ok(query::<D>(
            "SELECT status, count(*) AS count, count(*) FILTER (WHERE updated_at >= $2) AS recent \
             FROM items WHERE job_id = $1 GROUP BY status ORDER BY status",
        )
        .bind(job_id)
        .bind(Ts(since))
        .fetch_all(&mut *self.reader().await?)
        .await?)
    }

    async fn tag_counts(&self, job_id: Uuid) -> Result<Vec<KeyCount>, StoreError> {
        Ok(query::<D>(D::SQL.tag_counts)
            .bind(job_id)
            .fetch_all(&mut *self.reader().await?)
            .await?)
    }

    async fn priority_counts(&self, job_id: Uuid) -> Result<Vec<KeyCount>, StoreError> {
        Ok(query::<D>(D::SQL.priority_counts)
            .bind(job_id)
            .fetch_all(&mut *self.reader().await?)
            .await?)
    }

    async fn citation_counts(&self, job_id: Uuid) -> Result<Vec<KeyCount>, StoreError> {
        Ok(query::<D>(D::SQL.citation_counts)
            .bind(job_id)
            .fetch_all(&mut *self.reader().await?)
            .await?)
    }

    async fn usage_groups(&self, job_id: Uuid) -> Result<Vec<UsageGroup>, StoreError> {
        Ok(query::<D>(D::SQL.usage_groups)
            .bind(job_id)
            .fetch_all(&mut *self.reader().await?)
            .await?)
    }

    async fn expired_tasks(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Task>, StoreError> {
        let rows: Vec<TaskRow> = query::<D>(format!(
            concat!(
                "SELECT ",
                task_columns!(),
                " FROM tasks WHERE job_id IN \
                 (SELECT id FROM jobs WHERE finished_at IS NULL AND status {}) \
                 AND status {} AND COALESCE(lease_until, updated_at) < $3 \
                 ORDER BY COALESCE(lease_until, updated_at), id LIMIT $4"
            ),
            D::in_texts(1),
            D::in_texts(2)
        ))
        .bind(Texts::of(FINISHABLE_JOB))
        .bind(Texts::of([TaskStatus::Assigned, TaskStatus::Running]))
        .bind(Ts(cutoff))
        .bind(i64::from(shared::page_limit(limit)))
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.into_iter().map(Task::try_from).collect()
    }

    async fn orphaned_items(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OrphanedItem>, StoreError> {
        Ok(query::<D>(format!(
            "SELECT i.id AS item_id, i.job_id, i.stage, i.updated_at FROM items i \
             WHERE i.job_id IN (SELECT id FROM jobs WHERE finished_at IS NULL AND status {}) \
             AND i.status = $2 AND i.updated_at < $3 \
             AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.item_id = i.id AND t.status {}) \
             ORDER BY i.updated_at, i.id LIMIT $5",
            D::in_texts(1),
            D::in_texts(4)
        ))
        .bind(Texts::of(FINISHABLE_JOB))
        .bind(ItemStatus::Validating.as_str())
        .bind(Ts(cutoff))
        .bind(Texts::of(ACTIVE_TASK))
        .bind(i64::from(shared::page_limit(limit)))
        .fetch_all(&mut *self.reader().await?)
        .await?)
    }

    async fn active_jobs(&self, limit: u32) -> Result<Vec<ActiveJob>, StoreError> {
        Ok(query::<D>(
            "SELECT j.id AS job_id, j.status, j.created_at, \
             (SELECT e.created_at FROM events e WHERE e.job_id = j.id \
              ORDER BY e.seq DESC LIMIT 1) AS last_event_at \
             FROM jobs j WHERE j.finished_at IS NULL ORDER BY j.created_at, j.id LIMIT $1",
        )
        .bind(i64::from(shared::page_limit(limit)))
        .fetch_all(&mut *self.reader().await?)
        .await?)
    }

    async fn requeue_item(&self, item_id: Uuid) -> Result<Option<Task>, StoreError> {
        let result = repair::requeue_item::<D>(&self.write, item_id).await;
        self.bump();
        result
    }

    async fn expire_job(
        &self,
        job_id: Uuid,
        reason: String,
    ) -> Result<(Job, Vec<Uuid>), StoreError> {
        let result = repair::expire_job::<D>(&self.write, job_id, reason).await;
        self.bump();
        result
    }

    async fn retry_failed(&self, job_id: Uuid, reason: String) -> Result<RetryOutcome, StoreError> {
        let result = repair::retry_failed::<D>(&self.write, job_id, reason).await;
        self.bump();
        result
    }

    async fn rerun_job(
        &self,
        original: Uuid,
        new_id: Uuid,
        created_by: String,
    ) -> Result<Job, StoreError> {
        let result = repair::rerun_job::<D>(&self.write, original, new_id, created_by).await;
        self.bump();
        result
    }

    async fn rerun_of(&self, job_id: Uuid) -> Result<Option<Uuid>, StoreError> {
        let row: Option<(Option<Uuid>,)> = query::<D>("SELECT rerun_of FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(&mut *self.reader().await?)
            .await?;
        Ok(row.and_then(|(r,)| r))
    }

    async fn roll_up_stats(&self, max_events: u32) -> Result<u64, StoreError> {
        daily::roll_up::<D>(&self.write, max_events).await
    }

    async fn daily_counters(&self, since: NaiveDate) -> Result<Vec<DailyCounter>, StoreError> {
        daily::counters::<D>(&mut *self.reader().await?, since).await
    }
}
