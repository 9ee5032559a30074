//! [`BrowseStore`] over a driver.

use async_trait::async_trait;
use uuid::Uuid;

use super::SqlStore;
use crate::domain::{Event, JobStatus, Task};
use crate::store::StoreError;
use crate::store::browse::{BrowseStore, TaskDetail};
use crate::store::driver::{Driver, query};
use crate::store::shared::{self, EventRow, TaskRow, event_columns, task_columns};

#[async_trait]
impl<D: Driver> BrowseStore for SqlStore<D> {
    async fn job_counts(&self) -> Result<Vec<(JobStatus, i64)>, StoreError> {
        let rows: Vec<(String, i64)> =
            query::<D>("SELECT status, COUNT(*) FROM jobs GROUP BY status")
                .fetch_all(&mut *self.reader().await?)
                .await?;
        let mut counts: Vec<(JobStatus, i64)> = JobStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for (status, n) in rows {
            let status: JobStatus =
                status
                    .parse()
                    .map_err(|e: crate::domain::status::UnknownStatus| {
                        StoreError::Corrupt(e.to_string())
                    })?;
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == status) {
                slot.1 = n;
            }
        }
        Ok(counts)
    }

    async fn job_events_before(
        &self,
        job_id: Uuid,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<EventRow> = query::<D>(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE job_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
        ))
        .bind(job_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(shared::page_limit(limit)))
        .fetch_all(&mut *self.reader().await?)
        .await?;
        Ok(rows.into_iter().map(Event::from).collect())
    }

    async fn get_task(&self, task_id: Uuid) -> Result<Option<Task>, StoreError> {
        fetch_task::<D>(&mut *self.reader().await?, task_id).await
    }

    async fn task_detail(&self, task_id: Uuid) -> Result<Option<TaskDetail>, StoreError> {
        let mut conn = self.reader().await?;
        let Some(task) = fetch_task::<D>(&mut conn, task_id).await? else {
            return Ok(None);
        };
        let (usage,): (Option<sqlx::types::Json<serde_json::Value>>,) =
            query::<D>("SELECT usage FROM tasks WHERE id = $1")
                .bind(task_id)
                .fetch_one(&mut *conn)
                .await?;
        let rows: Vec<EventRow> = query::<D>(format!(
            concat!(
                "SELECT ",
                event_columns!(),
                " FROM events WHERE job_id = $1 AND type LIKE 'task.%' AND {} = $2 ORDER BY seq"
            ),
            D::json_text("payload", "task_id")
        ))
        .bind(task.job_id)
        .bind(task_id.to_string())
        .fetch_all(&mut *conn)
        .await?;
        Ok(Some(TaskDetail {
            task,
            events: rows.into_iter().map(Event::from).collect(),
            usage: usage.map(|u| u.0),
        }))
    }
}

async fn fetch_task<D: Driver>(
    conn: &mut D::Conn,
    task_id: Uuid,
) -> Result<Option<Task>, StoreError> {
    let row: Option<TaskRow> = query::<D>(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE id = $1"
    ))
    .bind(task_id)
    .fetch_optional(conn)
    .await?;
    row.map(Task::try_from).transpose()
}
