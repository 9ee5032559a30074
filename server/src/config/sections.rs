//! Validation of the event-stream and monitor keys, grouped by the part of
//! [`Settings`](super::Settings) they fill.

use std::time::Duration;

use super::settings::{EventSettings, MonitorSettings};
use super::{Problem, RawConfig, duration_in};

/// Validates the `event_*` and `stream_*` keys.
pub(super) fn event_settings(raw: &RawConfig, problems: &mut Vec<Problem>) -> EventSettings {
    let mut duration =
        |key: &'static str, value: &str, min: Duration, max: Duration, allowed: &str| {
            duration_in(problems, key, value, (min, max), allowed).unwrap_or(min)
        };
    let day = Duration::from_secs(24 * 3600);
    let retention = duration(
        "event_retention",
        &raw.event_retention,
        Duration::from_secs(1),
        3650 * day,
        "a duration such as 30d, 12h or 90m, from 1s to 3650d",
    );
    let keepalive = duration(
        "stream_keepalive",
        &raw.stream_keepalive,
        Duration::from_millis(10),
        Duration::from_secs(3600),
        "a duration such as 15s or 500ms, from 10ms to 1h",
    );
    let ticket_ttl = duration(
        "stream_ticket_ttl",
        &raw.stream_ticket_ttl,
        Duration::from_millis(10),
        Duration::from_secs(3600),
        "a duration such as 30s, from 10ms to 1h",
    );
    if !(16..=1_000_000).contains(&raw.event_bus_capacity) {
        problems.push(Problem {
            key: "event_bus_capacity",
            value: raw.event_bus_capacity.to_string(),
            allowed: "16 to 1000000 events".into(),
        });
    }
    if !(1..=65_536).contains(&raw.stream_buffer) {
        problems.push(Problem {
            key: "stream_buffer",
            value: raw.stream_buffer.to_string(),
            allowed: "1 to 65536 frames".into(),
        });
    }
    EventSettings {
        retention,
        bus_capacity: raw.event_bus_capacity.clamp(16, 1_000_000) as usize,
        keepalive,
        stream_buffer: raw.stream_buffer.clamp(1, 65_536) as usize,
        ticket_ttl,
    }
}

/// Validates the monitor's keys (`monitor_interval`, `stuck_after`,
/// `stuck_grace`, `job_timeout`).
pub(super) fn monitor_settings(raw: &RawConfig, problems: &mut Vec<Problem>) -> MonitorSettings {
    let mut duration =
        |key: &'static str, value: &str, min: Duration, max: Duration, allowed: &str| {
            duration_in(problems, key, value, (min, max), allowed)
                .unwrap_or(min.max(Duration::from_millis(10)))
        };
    let day = Duration::from_secs(86400);
    MonitorSettings {
        interval: duration(
            "monitor_interval",
            &raw.monitor_interval,
            Duration::from_millis(10),
            day,
            "a duration such as 30s or 250ms, from 10ms to 1 day",
        ),
        stuck_after: duration(
            "stuck_after",
            &raw.stuck_after,
            Duration::from_millis(10),
            7 * day,
            "a duration such as 10m or 30s, from 10ms to 7 days",
        ),
        stuck_grace: duration(
            "stuck_grace",
            &raw.stuck_grace,
            Duration::ZERO,
            day,
            "a duration such as 60s or 0s, up to 1 day",
        ),
        job_timeout: duration(
            "job_timeout",
            &raw.job_timeout,
            Duration::from_secs(1),
            3650 * day,
            "a duration such as 168h or 30days, from 1s to 3650 days",
        ),
    }
}
