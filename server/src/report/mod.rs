//! Watching and reporting jobs: progress with an ETA, stuck-work detection
//! and recovery (the periodic [`monitor`]), full job reports in JSON, text
//! and Markdown, daily statistics, agent health, and comparing re-runs.
//!
//! Everything here reads through the store's [`crate::store::reports::ReportStore`]
//! aggregates (one `GROUP BY` per question, computed by the database) and
//! never talks to the dispatcher except to hand it work the monitor
//! recovered (`tasks_ready`, `tasks_cancelled`), so a slow report never
//! delays dispatch. The HTTP endpoints are in `crate::http::monitor`; the
//! user documentation is `docs/reports.md`.

pub mod builder;
pub mod compare;
pub mod daily;
pub mod health;
pub mod monitor;
pub mod progress;
pub mod render;
pub mod stuck;

pub use builder::JobReport;
pub use progress::Progress;

/// Seconds of a duration, for JSON (`f64`, millisecond precision).
pub(crate) fn seconds(d: chrono::Duration) -> f64 {
    (d.num_milliseconds() as f64 / 1000.0).max(0.0)
}

/// A duration for people: `3h 12m`, `4m 05s`, `12.3s`.
pub fn human_duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".into();
    }
    let total = seconds.round() as u64;
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    if h >= 24 {
        format!("{}d {}h", h / 24, h % 24)
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{seconds:.1}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(12.34), "12.3s");
        assert_eq!(human_duration(245.0), "4m 05s");
        assert_eq!(human_duration(3.0 * 3600.0 + 12.0 * 60.0), "3h 12m");
        assert_eq!(human_duration(50.0 * 3600.0), "2d 2h");
        assert_eq!(human_duration(-1.0), "-");
    }
}
