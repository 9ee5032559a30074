//! The daily statistics on Postgres: rolling the event log up into
//! `daily_stats`, and reading it.
//!
//! The roll-up holds the `stats_rollup` row lock for its transaction, so two
//! hub nodes never count the same events. Events commit in `seq` order (see
//! `items::append_events`), so "everything after `last_seq`" never skips an
//! event that commits later with a smaller `seq`.

use chrono::NaiveDate;
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::store::StoreError;
use crate::store::reports::{DailyCounter, metrics};

/// See [`crate::store::reports::ReportStore::roll_up_stats`].
pub(super) async fn roll_up(pool: &PgPool, max_events: u32) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let last: Option<i64> =
        sqlx::query_scalar("SELECT last_seq FROM stats_rollup WHERE id = 1 FOR UPDATE")
            .fetch_optional(&mut *tx)
            .await?;
    let Some(last) = last else {
        return Err(StoreError::Corrupt(
            "stats_rollup has no row; migration 5 inserts it".into(),
        ));
    };
    let (upto, read): (Option<i64>, i64) = sqlx::query_as(
        "SELECT max(seq), count(*) FROM \
         (SELECT seq FROM events WHERE seq > $1 ORDER BY seq LIMIT $2) b",
    )
    .bind(last)
    .bind(i64::from(max_events.max(1)))
    .fetch_one(&mut *tx)
    .await?;
    let Some(upto) = upto else {
        return Ok(0);
    };

    let (types, names) = metrics::counted_lists();
    let mut counters: Vec<(NaiveDate, String, i64)> = sqlx::query_as(
        "SELECT (e.created_at AT TIME ZONE 'UTC')::date, m.metric, count(*) \
         FROM events e JOIN unnest($3::text[], $4::text[]) AS m(type, metric) ON m.type = e.type \
         WHERE e.seq > $1 AND e.seq <= $2 GROUP BY 1, 2",
    )
    .bind(last)
    .bind(upto)
    .bind(&types)
    .bind(&names)
    .fetch_all(&mut *tx)
    .await?;
    let tokens: Vec<(NaiveDate, i64, i64, i64)> = sqlx::query_as(
        "SELECT (e.created_at AT TIME ZONE 'UTC')::date, \
         COALESCE(sum((t.usage->>'tokens_in')::bigint), 0)::bigint, \
         COALESCE(sum((t.usage->>'tokens_out')::bigint), 0)::bigint, \
         COALESCE(sum((t.usage->>'requests')::bigint), 0)::bigint \
         FROM events e JOIN tasks t ON t.id = (e.payload->>'task_id')::uuid \
         WHERE e.seq > $1 AND e.seq <= $2 AND e.type = $3 AND jsonb_typeof(t.usage) = 'object' \
         GROUP BY 1",
    )
    .bind(last)
    .bind(upto)
    .bind(metrics::USAGE_EVENT.as_str())
    .fetch_all(&mut *tx)
    .await?;
    for (day, tokens_in, tokens_out, requests) in tokens {
        counters.push((day, metrics::TOKENS_IN.into(), tokens_in));
        counters.push((day, metrics::TOKENS_OUT.into(), tokens_out));
        counters.push((day, metrics::REQUESTS.into(), requests));
    }
    counters.retain(|(_, _, value)| *value != 0);
    if !counters.is_empty() {
        let mut qb = QueryBuilder::<Postgres>::new("INSERT INTO daily_stats (day, metric, value) ");
        qb.push_values(&counters, |mut row, (day, metric, value)| {
            row.push_bind(*day).push_bind(metric).push_bind(*value);
        });
        qb.push(
            " ON CONFLICT (day, metric) DO UPDATE SET value = daily_stats.value + EXCLUDED.value",
        );
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
    pool: &PgPool,
    since: NaiveDate,
) -> Result<Vec<DailyCounter>, StoreError> {
    let rows: Vec<(NaiveDate, String, i64)> = sqlx::query_as(
        "SELECT day, metric, value FROM daily_stats WHERE day >= $1 ORDER BY day, metric",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(day, metric, value)| DailyCounter { day, metric, value })
        .collect())
}
