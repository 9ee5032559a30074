//! [`crate::store::events::EventStore`] for postgres.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::PgStore;
use crate::domain::Event;
use crate::store::StoreError;
use crate::store::events::{EventFilter, EventStore};
use crate::store::shared::{self, EventRow, event_columns};

#[async_trait]
impl EventStore for PgStore {
    async fn last_event_seq(&self) -> Result<i64, StoreError> {
        let (seq,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq)
    }

    async fn job_labels(&self, job_ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<String>>, StoreError> {
        let mut out: HashMap<Uuid, Vec<String>> = HashMap::new();
        if job_ids.is_empty() {
            return Ok(out);
        }
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT job_id, label FROM job_labels WHERE job_id = ANY($1) ORDER BY job_id, label",
        )
        .bind(job_ids)
        .fetch_all(&self.pool)
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
        let mut qb = QueryBuilder::<Postgres>::new(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events e WHERE e.seq > "
        ));
        qb.push_bind(after_seq);
        if let Some(job_id) = filter.job_id {
            qb.push(" AND e.job_id = ").push_bind(job_id);
        }
        if !filter.types.is_empty() {
            qb.push(" AND e.type = ANY(")
                .push_bind(filter.type_strs())
                .push(")");
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
        let rows: Vec<EventRow> = qb.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(Event::from).collect())
    }

    async fn delete_events_before(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        // Oldest first through `events_created_at`; appends take an advisory
        // lock, not row locks, so this never waits on (or blocks) the hot path
        // beyond ordinary index maintenance.
        let deleted = sqlx::query(
            "DELETE FROM events WHERE seq IN \
             (SELECT seq FROM events WHERE created_at < $1 ORDER BY created_at, seq LIMIT $2)",
        )
        .bind(before)
        .bind(i64::from(limit.max(1)))
        .execute(&self.pool)
        .await?;
        Ok(deleted.rows_affected())
    }
}
