//! [`EventStore`] over a driver: reading and pruning the event log.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::SqlStore;
use crate::domain::Event;
use crate::store::StoreError;
use crate::store::driver::{Driver, Texts, Ts, Uuids, query};
use crate::store::events::{EventFilter, EventStore};
use crate::store::shared::{self, EventRow, event_columns};

#[async_trait]
impl<D: Driver> EventStore for SqlStore<D> {
    async fn last_event_seq(&self) -> Result<i64, StoreError> {
        let (seq,): (i64,) = query::<D>("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&mut *self.reader().await?)
            .await?;
        Ok(seq)
    }

    async fn job_labels(&self, job_ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<String>>, StoreError> {
        let mut out: HashMap<Uuid, Vec<String>> = HashMap::new();
        if job_ids.is_empty() {
            return Ok(out);
        }
        let rows: Vec<(Uuid, String)> = query::<D>(format!(
            "SELECT job_id, label FROM job_labels WHERE job_id {} ORDER BY job_id, label",
            D::in_uuids(1)
        ))
        .bind(Uuids(job_ids.to_vec()))
        .fetch_all(&mut *self.reader().await?)
        .await?;
        for (job_id, label) in rows {
            out.entry(job_id).or_default().push(label);
        }
        Ok(out)
    }

    async fn list_events_matching(
        &self,
        filter: &EventFilter,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let mut q = query::<D>(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events e WHERE e.seq > "
        ));
        q.push_bind(after_seq);
        if let Some(job_id) = filter.job_id {
            q.push(" AND e.job_id = ").push_bind(job_id);
        }
        if !filter.types.is_empty() {
            q.push(" AND e.type")
                .push_in_texts(Texts::of(filter.type_strs()));
        }
        if let Some(task_id) = filter.task_id {
            q.push(" AND ")
                .push(&D::json_text("e.payload", "task_id"))
                .push(" = ")
                .push_bind(task_id.to_string());
        }
        if let Some(label) = &filter.label {
            q.push(
                " AND EXISTS (SELECT 1 FROM job_labels l WHERE l.job_id = e.job_id AND l.label = ",
            )
            .push_bind(label.as_str())
            .push(")");
        }
        q.push(" ORDER BY e.seq LIMIT ")
            .push_bind(i64::from(shared::page_limit(limit)));
        let rows: Vec<EventRow> = q.fetch_all(&mut *self.reader().await?).await?;
        Ok(rows.into_iter().map(Event::from).collect())
    }

    async fn delete_events_before(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        // Oldest first through `events_created_at`. On Postgres appends take
        // an advisory lock, not row locks, so this never waits on (or blocks)
        // the hot path beyond index maintenance; on SQLite it is one short
        // write transaction like any other.
        let mut tx = D::begin(&self.write).await?;
        let deleted = query::<D>(
            "DELETE FROM events WHERE seq IN \
             (SELECT seq FROM events WHERE created_at < $1 ORDER BY created_at, seq LIMIT $2)",
        )
        .bind(Ts(before))
        .bind(i64::from(limit.max(1)))
        .execute(&mut *tx)
        .await?;
        D::commit(tx).await?;
        Ok(deleted)
    }
}
