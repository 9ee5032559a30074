//! When a failed delivery is tried again: the configured schedule with
//! jitter, or later when the target asked for it with `Retry-After`.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

/// Jitter: each delay is stretched or shrunk by up to this fraction, so
/// deliveries that failed together do not all come back at the same instant.
const JITTER: f64 = 0.1;

/// The longest `Retry-After` honoured; a longer one is capped.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The delay before attempt `next` (1-based: `next = 2` is the first retry),
/// or `None` when the schedule has no such attempt. `unit` is a random
/// number in `[0, 1)`.
pub fn delay_before(schedule: &[Duration], next: i32, unit: f64) -> Option<Duration> {
    let index = usize::try_from(next.checked_sub(1)?).ok()?;
    let base = *schedule.get(index)?;
    let factor = 1.0 + JITTER * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
    Some(base.mul_f64(factor))
}

/// A `Retry-After` value: delay seconds, or an HTTP date (relative to `now`).
/// Unparseable values are ignored; dates in the past mean "now"; long waits
/// are capped at [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// When to try again after a failure at `now`: the scheduled delay, but
/// never before the target's `Retry-After`. `None`: give up.
pub fn next_attempt_at(
    schedule: &[Duration],
    attempt_just_made: i32,
    retry_after: Option<Duration>,
    now: DateTime<Utc>,
    unit: f64,
) -> Option<DateTime<Utc>> {
    let delay = delay_before(schedule, attempt_just_made + 1, unit)?;
    let delay = delay.max(retry_after.unwrap_or(Duration::ZERO));
    Some(now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::days(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Vec<Duration> {
        [0, 5, 300].map(Duration::from_secs).to_vec()
    }

    #[test]
    fn schedule_with_bounded_jitter() {
        let s = schedule();
        assert_eq!(delay_before(&s, 1, 0.0), Some(Duration::ZERO));
        assert_eq!(delay_before(&s, 2, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(delay_before(&s, 2, 0.0), Some(Duration::from_millis(4500)));
        let high = delay_before(&s, 3, 0.999_999).unwrap();
        assert!(high > Duration::from_secs(329) && high <= Duration::from_secs(330));
        assert_eq!(delay_before(&s, 4, 0.5), None, "three attempts only");
        assert_eq!(delay_before(&s, 0, 0.5), None);
    }

    #[test]
    fn next_attempt_honours_retry_after_and_gives_up() {
        let s = schedule();
        let now = Utc::now();
        assert_eq!(
            next_attempt_at(&s, 1, None, now, 0.5),
            Some(now + chrono::Duration::seconds(5))
        );
        assert_eq!(
            next_attempt_at(&s, 1, Some(Duration::from_secs(60)), now, 0.5),
            Some(now + chrono::Duration::seconds(60))
        );
        assert_eq!(
            next_attempt_at(&s, 2, Some(Duration::from_secs(1)), now, 0.5),
            Some(now + chrono::Duration::seconds(300))
        );
        assert_eq!(next_attempt_at(&s, 3, None, now, 0.5), None);
    }

    #[test]
    fn retry_after_seconds_or_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(90)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("999999999", now), Some(MAX_RETRY_AFTER));
    }
}
