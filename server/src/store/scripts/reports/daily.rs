//! The daily statistics: rolling the event log up into `daily_stats`, and
//! reading it.
//!
//! The roll-up holds the `stats_rollup` row lock for its transaction (or
//! SQLite's one writer), so two hub nodes never count the same events.
//! Events commit in `seq` order (see [`Driver::append_events`]), so
//! "everything after `last_seq`" never skips an event that commits later
//! with a smaller `seq`.

use chrono::NaiveDate;

use crate::store::StoreError;
use crate::store::driver::{Day, Driver, RowLock, query};
use crate::store::reports::{DailyCounter, metrics};

/// See [`crate::store::reports::ReportStore::roll_up_stats`].
pub(super) async fn roll_up<D: Driver>(pool: &D::Pool, max_events: u32) -> Result<u64, StoreError> {
    let mut tx = D::begin(pool).await?;
    let last: Option<(i64,)> = query::<D>(format!(
        "SELECT last_seq FROM stats_rollup WHERE id = 1{}",
        D::row_lock(RowLock::Update)
    ))
    .fetch_optional(&mut *tx)
    .await?;
    let Some((last,)) = last else {
        return Err(StoreError::Corrupt(
            "stats_rollup has no row; migration 5 inserts it".into(),
        ));
    };
    let (upto, read): (Option<i64>, i64) = query::<D>(
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

    let mut counters: Vec<(Day, String, i64)> = query::<D>(D::SQL.daily_event_counts)
        .bind(last)
        .bind(upto)
        .bind(metrics::counted_map())
        .fetch_all(&mut *tx)
        .await?;
    let tokens: Vec<(Day, i64, i64, i64)> = query::<D>(D::SQL.daily_usage)
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
        let mut q = query::<D>("INSERT INTO daily_stats (day, metric, value) ");
        q.push_values(&counters, |row, (day, metric, value)| {
            row.bind(*day).bind(metric.as_str()).bind(*value);
        });
        q.push(
            " ON CONFLICT (day, metric) DO UPDATE SET value = daily_stats.value + excluded.value",
        );
        q.execute(&mut *tx).await?;
    }
    query::<D>("UPDATE stats_rollup SET last_seq = $1 WHERE id = 1")
        .bind(upto)
        .execute(&mut *tx)
        .await?;
    D::commit(tx).await?;
    Ok(u64::try_from(read).unwrap_or(0))
}

/// See [`crate::store::reports::ReportStore::daily_counters`].
pub(super) async fn counters<D: Driver>(
    conn: &mut D::Conn,
    since: NaiveDate,
) -> Result<Vec<DailyCounter>, StoreError> {
    let rows: Vec<(Day, String, i64)> = query::<D>(
        "SELECT day, metric, value FROM daily_stats WHERE day >= $1 ORDER BY day, metric",
    )
    .bind(Day(since))
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(Day(day), metric, value)| DailyCounter { day, metric, value })
        .collect())
}
