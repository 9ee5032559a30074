//! The `[webhooks]` configuration section: raw values as merged by figment
//! (file, `SWITCHYARD_WEBHOOKS_*` environment variables) and their validation
//! into [`WebhookSettings`].

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Problem;
use crate::webhooks::sealing::{MIN_KEY_LEN, Sealer};

/// The `[webhooks]` section as written; see `docs/webhooks.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWebhookConfig {
    /// Allow targets that resolve to loopback addresses (127.0.0.0/8, ::1).
    pub allow_loopback: bool,
    /// Allow targets that resolve to private addresses (10/8, 172.16/12,
    /// 192.168/16, 100.64/10, fc00::/7).
    pub allow_private: bool,
    /// How long one attempt may take, headers included.
    pub timeout: String,
    /// Delay before each attempt: the first entry before the first attempt,
    /// the n-th after the (n-1)-th failure; its length is the number of attempts.
    pub retry_schedule: Vec<String>,
    /// A subscription whose attempts all fail for this long is disabled.
    pub disable_after: String,
    /// How long the previous secret keeps signing after a rotation.
    pub rotation_overlap: String,
    /// Concurrent attempts per target host.
    pub max_in_flight: u32,
    /// Consecutive failures of a host that open its circuit breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker waits before it lets one probe through.
    pub breaker_cooldown: String,
    /// Keys that encrypt signing secrets at rest (see `sealing`): the first
    /// seals, all open. Empty: secrets are stored plain.
    pub secret_keys: Vec<String>,
    /// A file with one such key per line (for Docker and Kubernetes secrets),
    /// read after `secret_keys`.
    pub secret_keys_file: Option<PathBuf>,
    /// Finished deliveries (and their attempts) older than this are deleted.
    pub delivery_retention: String,
}

impl Default for RawWebhookConfig {
    fn default() -> Self {
        Self {
            allow_loopback: false,
            allow_private: false,
            timeout: "15s".into(),
            retry_schedule: ["0s", "5s", "5m", "30m", "2h", "5h", "10h", "10h"]
                .map(String::from)
                .to_vec(),
            disable_after: "5days".into(),
            rotation_overlap: "24h".into(),
            max_in_flight: 16,
            breaker_threshold: 5,
            breaker_cooldown: "30s".into(),
            secret_keys: Vec::new(),
            secret_keys_file: None,
            delivery_retention: "30d".into(),
        }
    }
}

/// Validated webhook settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSettings {
    pub allow_loopback: bool,
    pub allow_private: bool,
    pub timeout: Duration,
    /// Never empty.
    pub retry_schedule: Vec<Duration>,
    pub disable_after: Duration,
    pub rotation_overlap: Duration,
    pub max_in_flight: u32,
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
    /// Seals and opens signing secrets.
    pub sealer: Sealer,
    pub delivery_retention: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        let mut problems = Vec::new();
        let settings = WebhookSettings::from_raw(&RawWebhookConfig::default(), &mut problems);
        debug_assert!(problems.is_empty(), "{problems:?}");
        settings
    }
}

const DAY: u64 = 24 * 3600;
const MAX_ATTEMPTS: usize = 50;

impl WebhookSettings {
    /// Validates `raw`, pushing one [`Problem`] per bad value (keys are
    /// named `webhooks.<key>`).
    pub fn from_raw(raw: &RawWebhookConfig, problems: &mut Vec<Problem>) -> WebhookSettings {
        let sealer = Sealer::new(&secret_keys(raw, problems));
        let mut duration =
            |key: &'static str, value: &str, min: Duration, max: Duration, fallback: Duration| {
                let allowed = format!(
                    "a duration such as 15s, 500ms or 2h, from {} to {}",
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                );
                crate::config::duration_in(problems, key, value, (min, max), allowed)
                    .unwrap_or(fallback)
            };
        let ms10 = Duration::from_millis(10);
        let timeout = duration(
            "webhooks.timeout",
            &raw.timeout,
            ms10,
            Duration::from_secs(300),
            Duration::from_secs(15),
        );
        let disable_after = duration(
            "webhooks.disable_after",
            &raw.disable_after,
            ms10,
            Duration::from_secs(365 * DAY),
            Duration::from_secs(5 * DAY),
        );
        let rotation_overlap = duration(
            "webhooks.rotation_overlap",
            &raw.rotation_overlap,
            Duration::ZERO,
            Duration::from_secs(30 * DAY),
            Duration::from_secs(DAY),
        );
        let breaker_cooldown = duration(
            "webhooks.breaker_cooldown",
            &raw.breaker_cooldown,
            ms10,
            Duration::from_secs(3600),
            Duration::from_secs(30),
        );
        let delivery_retention = duration(
            "webhooks.delivery_retention",
            &raw.delivery_retention,
            Duration::from_secs(1),
            Duration::from_secs(3650 * DAY),
            Duration::from_secs(30 * DAY),
        );
        let mut retry_schedule = Vec::new();
        for entry in &raw.retry_schedule {
            retry_schedule.push(duration(
                "webhooks.retry_schedule",
                entry,
                Duration::ZERO,
                Duration::from_secs(7 * DAY),
                Duration::ZERO,
            ));
        }
        if retry_schedule.is_empty() || retry_schedule.len() > MAX_ATTEMPTS {
            problems.push(Problem {
                key: "webhooks.retry_schedule",
                value: raw.retry_schedule.join(", "),
                allowed: format!(
                    "a list of 1 to {MAX_ATTEMPTS} delays, one per attempt, such as [\"0s\", \"5s\", \"5m\"]"
                ),
            });
            retry_schedule = vec![Duration::ZERO];
        }
        let mut count = |key: &'static str, value: u32, max: u32| {
            if !(1..=max).contains(&value) {
                problems.push(Problem {
                    key,
                    value: value.to_string(),
                    allowed: format!("1 to {max}"),
                });
            }
            value.clamp(1, max)
        };
        let max_in_flight = count("webhooks.max_in_flight", raw.max_in_flight, 1000);
        let breaker_threshold = count("webhooks.breaker_threshold", raw.breaker_threshold, 1000);

        WebhookSettings {
            allow_loopback: raw.allow_loopback,
            allow_private: raw.allow_private,
            timeout,
            retry_schedule,
            disable_after,
            rotation_overlap,
            max_in_flight,
            breaker_threshold,
            breaker_cooldown,
            sealer,
            delivery_retention,
        }
    }
}

/// `secret_keys`, then the lines of `secret_keys_file`; each long enough.
fn secret_keys(raw: &RawWebhookConfig, problems: &mut Vec<Problem>) -> Vec<String> {
    let mut keys = raw.secret_keys.clone();
    if let Some(path) = &raw.secret_keys_file {
        match std::fs::read_to_string(path) {
            Ok(text) => keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty())
                    .map(str::to_owned),
            ),
            Err(e) => problems.push(Problem {
                key: "webhooks.secret_keys_file",
                value: path.display().to_string(),
                allowed: format!("a readable file with one key per line ({e})"),
            }),
        }
    }
    for key in &keys {
        if key.chars().count() < MIN_KEY_LEN {
            problems.push(Problem {
                key: "webhooks.secret_keys",
                value: format!("<{} characters>", key.chars().count()),
                allowed: format!(
                    "keys of at least {MIN_KEY_LEN} characters, e.g. from `openssl rand -base64 32`"
                ),
            });
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_schedule() {
        let s = WebhookSettings::default();
        let secs: Vec<u64> = s.retry_schedule.iter().map(Duration::as_secs).collect();
        assert_eq!(
            secs,
            [0, 5, 300, 1800, 7200, 18000, 36000, 36000],
            "immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h"
        );
        assert_eq!(s.timeout, Duration::from_secs(15));
        assert_eq!(s.disable_after, Duration::from_secs(5 * DAY));
        assert_eq!(s.rotation_overlap, Duration::from_secs(DAY));
        assert!(!s.allow_loopback && !s.allow_private);
    }

    #[test]
    fn every_bad_value_is_named() {
        let raw = RawWebhookConfig {
            timeout: "forever".into(),
            retry_schedule: vec!["5s".into(), "soon".into()],
            disable_after: "0s".into(),
            rotation_overlap: "90days".into(),
            max_in_flight: 0,
            breaker_threshold: 5000,
            breaker_cooldown: "1ms".into(),
            ..RawWebhookConfig::default()
        };
        let mut problems = Vec::new();
        WebhookSettings::from_raw(&raw, &mut problems);
        let keys: Vec<&str> = problems.iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "webhooks.timeout",
                "webhooks.disable_after",
                "webhooks.rotation_overlap",
                "webhooks.breaker_cooldown",
                "webhooks.retry_schedule",
                "webhooks.max_in_flight",
                "webhooks.breaker_threshold",
            ]
        );
        assert_eq!(problems[4].value, "soon");

        let mut problems = Vec::new();
        let empty = RawWebhookConfig {
            retry_schedule: vec![],
            ..RawWebhookConfig::default()
        };
        let s = WebhookSettings::from_raw(&empty, &mut problems);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].allowed.contains("1 to 50 delays"));
        assert_eq!(s.retry_schedule.len(), 1);
    }
}
