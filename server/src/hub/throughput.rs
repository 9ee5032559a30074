//! Throughput history kept in memory: tasks finished and dispatched, and
//! dispatch latency, per second for the last two minutes and per minute for
//! the last 24 hours.
//!
//! The dashboard used to build its charts by replaying every event of
//! every job, which made a browser follow the whole firehose and lag on
//! big jobs. The dispatcher already sees each dispatch and each finish, so
//! it counts them here (a few integer adds under an uncontended lock) and
//! clients read the buckets: `GET /v1/throughput` for history, and each
//! `stats` push carries the last completed second. The history lives as
//! long as the process; it is this node's work only.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// Seconds kept at 1-second resolution.
pub const SECONDS_KEPT: usize = 120;
/// Minutes kept at 1-minute resolution (24 hours).
pub const MINUTES_KEPT: usize = 24 * 60;

/// Counts over one bucket of time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counts {
    succeeded: u64,
    failed: u64,
    dispatched: u64,
    latency_sum_ms: f64,
    latency_max_ms: f64,
}

impl Counts {
    fn bucket(&self, start: i64) -> Bucket {
        let at = Utc.timestamp_opt(start, 0).single().unwrap_or_default();
        let avg =
            (self.dispatched > 0).then(|| round(self.latency_sum_ms / self.dispatched as f64));
        Bucket {
            at,
            tasks_succeeded: self.succeeded,
            tasks_failed: self.failed,
            dispatched: self.dispatched,
            dispatch_latency_ms_avg: avg,
            dispatch_latency_ms_max: (self.dispatched > 0).then(|| round(self.latency_max_ms)),
        }
    }
}

fn round(ms: f64) -> f64 {
    (ms * 100.0).round() / 100.0
}

/// One bucket as clients see it.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct Bucket {
    /// The bucket's start (UTC).
    pub at: DateTime<Utc>,
    /// Tasks that succeeded.
    pub tasks_succeeded: u64,
    /// Tasks that failed for good (attempts that will be retried are not counted).
    pub tasks_failed: u64,
    /// Tasks pushed to agents.
    pub dispatched: u64,
    /// Mean time from ready to pushed, in ms (null when nothing was dispatched).
    pub dispatch_latency_ms_avg: Option<f64>,
    pub dispatch_latency_ms_max: Option<f64>,
}

/// A ring of buckets of `width` seconds, newest last.
#[derive(Debug)]
struct Ring {
    width: i64,
    keep: usize,
    buckets: VecDeque<(i64, Counts)>,
}

impl Ring {
    fn new(width: i64, keep: usize) -> Self {
        Ring {
            width,
            keep,
            buckets: VecDeque::new(),
        }
    }

    fn at(&mut self, second: i64) -> &mut Counts {
        let start = second - second.rem_euclid(self.width);
        if self.buckets.back().is_none_or(|(s, _)| *s < start) {
            self.buckets.push_back((start, Counts::default()));
            while self.buckets.len() > self.keep {
                self.buckets.pop_front();
            }
        }
        // A clock step back lands in the newest bucket.
        let last = self.buckets.len() - 1;
        &mut self.buckets[last].1
    }

    /// Buckets that started within the kept span before `now_second`
    /// (the newest may still be filling).
    fn since(&self, now_second: i64) -> Vec<Bucket> {
        let oldest = now_second - self.width * self.keep as i64;
        self.buckets
            .iter()
            .filter(|(start, _)| *start > oldest)
            .map(|(start, c)| c.bucket(*start))
            .collect()
    }
}

#[derive(Debug)]
struct Rings {
    seconds: Ring,
    minutes: Ring,
}

/// The history; one per hub, shared by the dispatcher and readers.
#[derive(Debug)]
pub struct Throughput {
    rings: Mutex<Rings>,
}

impl Default for Throughput {
    fn default() -> Self {
        Throughput {
            rings: Mutex::new(Rings {
                seconds: Ring::new(1, SECONDS_KEPT),
                minutes: Ring::new(60, MINUTES_KEPT),
            }),
        }
    }
}

/// Which resolution to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Second,
    Minute,
}

impl Throughput {
    fn record(&self, at: DateTime<Utc>, f: impl Fn(&mut Counts)) {
        // A poisoned lock only means a reader panicked mid-read; the counts are still whole.
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        let second = at.timestamp();
        f(rings.seconds.at(second));
        f(rings.minutes.at(second));
    }

    /// A task was pushed to an agent after waiting `latency_ms` in the queue.
    pub fn dispatched(&self, at: DateTime<Utc>, latency_ms: f64) {
        self.record(at, |c| {
            c.dispatched += 1;
            c.latency_sum_ms += latency_ms;
            c.latency_max_ms = c.latency_max_ms.max(latency_ms);
        });
    }

    /// A task finished for good.
    pub fn finished(&self, at: DateTime<Utc>, succeeded: bool) {
        self.record(at, |c| {
            if succeeded {
                c.succeeded += 1;
            } else {
                c.failed += 1;
            }
        });
    }

    /// Buckets oldest first, the newest possibly still filling; buckets
    /// with no activity are absent.
    pub fn history(&self, resolution: Resolution, now: DateTime<Utc>) -> Vec<Bucket> {
        let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        match resolution {
            Resolution::Second => rings.seconds.since(now.timestamp()),
            Resolution::Minute => rings.minutes.since(now.timestamp()),
        }
    }

    /// The second before `now`'s (zeros when nothing happened in it).
    pub fn last_second(&self, now: DateTime<Utc>) -> Bucket {
        let start = now.timestamp() - 1;
        let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        rings
            .seconds
            .buckets
            .iter()
            .rev()
            .find(|(s, _)| *s == start)
            .map_or_else(|| Counts::default().bucket(start), |(s, c)| c.bucket(*s))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn buckets_count_per_second_and_minute() {
        let tp = Throughput::default();
        tp.dispatched(t(0), 2.0);
        tp.dispatched(t(0), 4.0);
        tp.finished(t(0), true);
        tp.finished(t(1), false);
        tp.finished(t(61), true);
        let seconds = tp.history(Resolution::Second, t(62));
        assert_eq!(seconds.len(), 3);
        assert_eq!(seconds[0].dispatched, 2);
        assert_eq!(seconds[0].dispatch_latency_ms_avg, Some(3.0));
        assert_eq!(seconds[0].dispatch_latency_ms_max, Some(4.0));
        assert_eq!(seconds[1].tasks_failed, 1);
        assert_eq!(seconds[1].dispatch_latency_ms_avg, None);
        // The current second is there while it fills.
        assert_eq!(tp.history(Resolution::Second, t(61)).len(), 3);
        assert_eq!(tp.history(Resolution::Second, t(61 + 119)).len(), 1);
        let minutes = tp.history(Resolution::Minute, t(200));
        let sums: Vec<_> = minutes
            .iter()
            .map(|b| (b.tasks_succeeded, b.tasks_failed))
            .collect();
        // 1_800_000_000 is 20 s into its minute.
        assert_eq!(sums, [(1, 1), (1, 0)]);
        assert_eq!(tp.last_second(t(2)).tasks_failed, 1);
        assert_eq!(tp.last_second(t(30)).tasks_succeeded, 0);
    }

    #[test]
    fn old_buckets_fall_off() {
        let tp = Throughput::default();
        for s in 0..(SECONDS_KEPT as i64 + 30) {
            tp.finished(t(s), true);
        }
        let now = t(SECONDS_KEPT as i64 + 30);
        let seconds = tp.history(Resolution::Second, now);
        assert_eq!(
            seconds.len(),
            SECONDS_KEPT - 1,
            "the seconds before now, within the span"
        );
        assert_eq!(
            seconds[0].at,
            now - Duration::seconds(SECONDS_KEPT as i64 - 1)
        );
    }
}
