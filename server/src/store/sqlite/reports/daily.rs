//! The daily statistics on SQLite: rolling the event log up into
//! `daily_stats`, and reading it. The roll-up runs on the single writer, so
//! two roll-ups never count the same events; with one writer, commit order
//! is `seq` order, so "everything after `last_seq`" skips nothing.
//! Timestamps are stored as UTC text, so a day is the first ten characters.

use chrono::NaiveDate;
use sqlx::types::Json;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::super::SqliteStore;
use crate::store::StoreError;
use crate::store::reports::{DailyCounter, metrics};

/// See [`crate::store::reports::ReportStore::roll_up_stats`].
pub(super) async fn roll_up(store: &SqliteStore, max_events: u32) -> Result<u64, StoreError> {
    let mut tx = store.begin().await?;
    let last: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM stats_rollup WHERE id = 1")
        .fetch_optional(&mut *tx)
        .await?;
    let Some(last) = last else {
        return Err(StoreError::Corrupt(
            "stats_rollup has no row; migration 5 inserts it".into(),
        ));
    };
    let (upto, read): (Option<i64>, i64) = sqlx::query_as(
        "SELECT max(seq), count(*) FROM \
         (SELECT seq FROM events WHERE seq > $1 ORDER BY seq LIMIT $2)",
    )
    .bind(last)
    .bind(i64::from(max_events.max(1)))
    .fetch_one(&mut *tx)
    .await?;
    let Some(upto) = upto else {
        return Ok(0);
    };

    let mapping: serde_json::Map<String, serde_json::Value> = metrics::COUNTED
        .iter()
        .map(|(event, metric)| (event.as_str().to_owned(), (*metric).into()))
        .collect();
    let mut counters: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT substr(e.created_at, 1, 10), m.value, count(*) \
         FROM events e JOIN json_each($3) m ON m.key = e.type \
         WHERE e.seq > $1 AND e.seq <= $2 GROUP BY 1, 2",
    )
    .bind(last)
    .bind(upto)
    .bind(Json(mapping))
    .fetch_all(&mut *tx)
    .await?;
    let tokens: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT substr(e.created_at, 1, 10), \
         COALESCE(sum(json_extract(t.usage, '$.tokens_in')), 0), \
         COALESCE(sum(json_extract(t.usage, '$.tokens_out')), 0), \
         COALESCE(sum(json_extract(t.usage, '$.requests')), 0) \
         FROM events e JOIN tasks t \
         ON t.id = unhex(replace(json_extract(e.payload, '$.task_id'), '-', '')) \
         WHERE e.seq > $1 AND e.seq <= $2 AND e.type = $3 AND json_type(t.usage) = 'object' \
         GROUP BY 1",
    )
    .bind(last)
    .bind(upto)
    .bind(metrics::USAGE_EVENT.as_str())
    .fetch_all(&mut *tx)
    .await?;
    for (day, tokens_in, tokens_out, requests) in tokens {
        counters.push((day.clone(), metrics::TOKENS_IN.into(), tokens_in));
        counters.push((day.clone(), metrics::TOKENS_OUT.into(), tokens_out));
        counters.push((day, metrics::REQUESTS.into(), requests));
    }
    counters.retain(|(_, _, value)| *value != 0);
    if !counters.is_empty() {
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO daily_stats (day, metric, value) ");
        qb.push_values(&counters, |mut row, (day, metric, value)| {
            row.push_bind(day).push_bind(metric).push_bind(*value);
        });
        qb.push(" ON CONFLICT (day, metric) DO UPDATE SET value = value + excluded.value");
        qb.build().execute(&mut *tx).await?;
    }
    sqlx::query("UPDATE stats_rollup SET last_seq = $1 WHERE id = 1")
        .bind(upto)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(u64::try_from(read).unwrap_or(0))
}

/// See [`crate::store::reports::ReportStore::daily_counters`].
pub(super) async fn counters(
    pool: &SqlitePool,
    since: NaiveDate,
) -> Result<Vec<DailyCounter>, StoreError> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT day, metric, value FROM daily_stats WHERE day >= $1 ORDER BY day, metric",
    )
    .bind(since.format("%Y-%m-%d").to_string())
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(day, metric, value)| {
            let day = NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                .map_err(|e| StoreError::Corrupt(format!("daily_stats day `{day}`: {e}")))?;
            Ok(DailyCounter { day, metric, value })
        })
        .collect()
}
