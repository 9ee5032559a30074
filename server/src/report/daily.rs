//! `GET /v1/stats/daily?days=N`: per UTC day, jobs created, completed,
//! failed and cancelled, items integrated, rejected and failed, and tokens
//! and requests used.
//!
//! The counters are rolled up from the event log into `daily_stats` by the
//! monitor; a request first rolls up what is left (so the answer includes
//! everything committed before it) and then reads at most `days × 10` rows.
//! `days` is parsed here into a number from 1 to 365 and only a date derived
//! from it reaches the store, as a bound parameter.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::store::reports::metrics;
use crate::store::{DynStore, StoreError};

/// The longest period the endpoint covers.
pub const MAX_DAYS: u32 = 365;

/// The period when `days` is not given.
pub const DEFAULT_DAYS: u32 = 7;

/// Why a `days` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "days `{given}` is not allowed: give a whole number of days from 1 to {MAX_DAYS}, e.g. days=7"
)]
pub struct BadDays {
    pub given: String,
}

/// Parses `days` strictly: ASCII digits only, 1 to [`MAX_DAYS`].
pub fn parse_days(raw: Option<&str>) -> Result<u32, BadDays> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_DAYS);
    };
    let bad = || BadDays {
        given: raw.chars().take(64).collect(),
    };
    if raw.is_empty() || raw.len() > 3 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match raw.parse::<u32>() {
        Ok(n) if (1..=MAX_DAYS).contains(&n) => Ok(n),
        _ => Err(bad()),
    }
}

/// One day's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DayStats {
    pub date: String,
    pub jobs_created: i64,
    pub jobs_completed: i64,
    pub jobs_failed: i64,
    pub jobs_cancelled: i64,
    pub items_integrated: i64,
    pub items_rejected: i64,
    pub items_failed: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub requests: i64,
}

impl DayStats {
    fn add(&mut self, metric: &str, value: i64) {
        let field = match metric {
            metrics::JOBS_CREATED => &mut self.jobs_created,
            metrics::JOBS_COMPLETED => &mut self.jobs_completed,
            metrics::JOBS_FAILED => &mut self.jobs_failed,
            metrics::JOBS_CANCELLED => &mut self.jobs_cancelled,
            metrics::ITEMS_INTEGRATED => &mut self.items_integrated,
            metrics::ITEMS_REJECTED => &mut self.items_rejected,
            metrics::ITEMS_FAILED => &mut self.items_failed,
            metrics::TOKENS_IN => &mut self.tokens_in,
            metrics::TOKENS_OUT => &mut self.tokens_out,
            metrics::REQUESTS => &mut self.requests,
            _ => return,
        };
        *field += value;
    }
}

/// The statistics of the last `days` days (today included), oldest first,
/// every day present (zeros where nothing happened), with totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DailyStats {
    pub days: u32,
    pub from: String,
    pub to: String,
    pub totals: DayStats,
    pub daily: Vec<DayStats>,
}

/// Rolls up what the monitor has not yet, then reads the counters.
pub async fn daily(
    store: &DynStore,
    days: u32,
    now: DateTime<Utc>,
) -> Result<DailyStats, StoreError> {
    for _ in 0..100 {
        if store.roll_up_stats(10_000).await? < 10_000 {
            break;
        }
    }
    let today = now.date_naive();
    let from = today
        .checked_sub_days(Days::new(u64::from(days.saturating_sub(1))))
        .unwrap_or(NaiveDate::MIN);
    let counters = store.daily_counters(from).await?;
    let mut by_day: BTreeMap<NaiveDate, DayStats> = BTreeMap::new();
    let mut day = from;
    while day <= today {
        by_day.insert(
            day,
            DayStats {
                date: day.format("%Y-%m-%d").to_string(),
                ..DayStats::default()
            },
        );
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    let mut totals = DayStats {
        date: "total".into(),
        ..DayStats::default()
    };
    for c in counters {
        if let Some(stats) = by_day.get_mut(&c.day) {
            stats.add(&c.metric, c.value);
            totals.add(&c.metric, c.value);
        }
    }
    Ok(DailyStats {
        days,
        from: from.format("%Y-%m-%d").to_string(),
        to: today.format("%Y-%m-%d").to_string(),
        totals,
        daily: by_day.into_values().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_parsed_strictly() {
        assert_eq!(parse_days(None), Ok(DEFAULT_DAYS));
        assert_eq!(parse_days(Some("1")), Ok(1));
        assert_eq!(parse_days(Some("365")), Ok(365));
        for bad in [
            "0",
            "366",
            "-1",
            "1; DROP TABLE jobs",
            "",
            " 7",
            "7.0",
            "0x10",
            "9999",
        ] {
            assert!(parse_days(Some(bad)).is_err(), "{bad}");
        }
        let err = parse_days(Some("1; DROP TABLE jobs"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("from 1 to 365"), "{err}");
    }
}
