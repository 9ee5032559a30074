//! [`crate::store::events::EventStore`] for sqlite.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite};
use uuid::Uuid;

use super::{SqliteStore, ts};
use crate::domain::Event;
use crate::store::StoreError;
use crate::store::events::{EventFilter, EventStore};
use crate::store::shared::{self, EventRow, event_columns};

#[async_trait]
impl EventStore for SqliteStore {
    async fn last_event_seq(&self) -> Result<i64, StoreError> {
        let (seq,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&self.read)
            .await?;
        Ok(seq)
    }

    async fn job_labels(&self, job_ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<String>>, StoreError> {
        let mut out: HashMap<Uuid, Vec<String>> = HashMap::new();
        // One query per chunk; SQLite has no array parameters.
        for chunk in job_ids.chunks(100) {
            let mut query =
                sqlx::QueryBuilder::new("SELECT job_id, label FROM job_labels WHERE job_id IN (");
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            query.push(") ORDER BY job_id, label");
            let rows: Vec<(Uuid, String)> = query.build_query_as().fetch_all(&self.read).await?;
            for (job_id, label) in rows {
                out.entry(job_id).or_default().push(label);
            }
        }
        Ok(out)
    }

    async fn list_events_matching(
        &self,
        filter: &EventFilter,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let mut qb = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events e WHERE e.seq > "
        ));
        qb.push_bind(after_seq);
        if let Some(job_id) = filter.job_id {
            qb.push(" AND e.job_id = ").push_bind(job_id);
        }
        if !filter.types.is_empty() {
            // At most one bind per known event type: far below SQLite's limit.
            qb.push(" AND e.type IN (");
            let mut list = qb.separated(", ");
            for t in filter.type_strs() {
                list.push_bind(t);
            }
            qb.push(")");
        }
        if let Some(label) = &filter.label {
            qb.push(
                " AND EXISTS (SELECT 1 FROM job_labels l WHERE l.job_id = e.job_id AND l.label = ",
            )
            .push_bind(label.clone())
            .push(")");
        }
        qb.push(" ORDER BY e.seq LIMIT ")
            .push_bind(i64::from(shared::page_limit(limit)));
        let rows: Vec<EventRow> = qb.build_query_as().fetch_all(&self.read).await?;
        Ok(rows.into_iter().map(Event::from).collect())
    }

    async fn delete_events_before(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        // Through the one writer, like every write: a batch holds the write
        // lock for one short transaction, so other writes wait at most that long.
        let mut tx = self.begin().await?;
        let deleted = sqlx::query(
            "DELETE FROM events WHERE seq IN \
             (SELECT seq FROM events WHERE created_at < $1 ORDER BY created_at, seq LIMIT $2)",
        )
        .bind(ts(before))
        .bind(i64::from(limit.max(1)))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected())
    }
}
