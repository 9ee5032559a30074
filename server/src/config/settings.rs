//! Validated, typed settings: what the rest of the hub reads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, Problem, RawConfig};
use crate::store::Backend;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A public key accepted for JWTs besides the HS256 secret.
#[derive(Debug, Clone)]
pub struct JwtPublicKey {
    pub path: PathBuf,
    pub algorithm: jsonwebtoken::Algorithm,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// Always set: the default SQLite file is resolved against `data_dir`.
    pub database_url: String,
    pub store: Backend,
    pub data_dir: PathBuf,
    pub pool_size: u32,
    /// Empty when it is to be loaded or generated from the data directory.
    pub jwt_secret: Option<String>,
    pub jwt_public_key: Option<JwtPublicKey>,
    pub log_format: LogFormat,
    pub log_filter: String,
    /// Where traces go (`<endpoint>/v1/traces`); `None`: not exported.
    pub otlp_endpoint: Option<String>,
    pub cors_allowed_origins: Vec<axum::http::HeaderValue>,
    pub max_body_bytes: usize,
    /// `None` disables rate limiting.
    pub rate_limit: Option<(u32, u32)>,
    pub shutdown_grace: Duration,
    pub default_pipeline: Vec<String>,
    pub max_attempts: u32,
    pub hub: HubSettings,
    pub monitor: MonitorSettings,
    pub events: EventSettings,
    /// The `[webhooks]` section.
    pub webhooks: crate::webhooks::WebhookSettings,
    /// See `docs/cluster.md`.
    pub node_timeout: Duration,
    /// `None`: `http://` and the bound listen address.
    pub advertise_url: Option<String>,
}

/// The event log's retention and the event streams' limits.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSettings {
    /// Events older than this are deleted.
    pub retention: Duration,
    /// Events the in-process bus keeps for slow stream subscribers.
    pub bus_capacity: usize,
    /// SSE keep-alive comments and WebSocket stream pings.
    pub keepalive: Duration,
    /// Frames queued per WebSocket stream connection.
    pub stream_buffer: usize,
    /// How long a stream ticket stays valid.
    pub ticket_ttl: Duration,
}

/// The monitor's timing (stuck work, job timeout); see `docs/reports.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorSettings {
    pub interval: Duration,
    pub stuck_after: Duration,
    pub stuck_grace: Duration,
    pub job_timeout: Duration,
}

/// Timing and limits of the agent hub.
#[derive(Debug, Clone, PartialEq)]
pub struct HubSettings {
    pub heartbeat_interval: Duration,
    pub heartbeat_misses: u32,
    pub accept_timeout: Duration,
    pub hello_timeout: Duration,
    pub lease: Duration,
    pub reconnect_grace: Duration,
    pub retry: crate::domain::RetryPolicy,
    pub aging_interval: Duration,
    pub max_frame_bytes: usize,
    pub agent_messages_per_second: u32,
}

/// A capability name: lower-case words separated by `.`, `_` or `-`.
pub fn is_capability_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        })
}

impl Settings {
    /// Validates every value; returns all problems at once.
    pub fn from_raw(mut raw: RawConfig) -> Result<Settings, ConfigError> {
        let mut problems = Vec::new();
        super::secrets::read_files(&mut raw, &mut problems);
        let mut bad = |key: &'static str, value: &dyn std::fmt::Display, allowed: &str| {
            problems.push(Problem {
                key,
                value: value.to_string(),
                allowed: allowed.to_owned(),
            });
        };

        let listen = raw.listen.parse::<SocketAddr>().unwrap_or_else(|_| {
            bad(
                "listen",
                &raw.listen,
                "an IP address and port such as 127.0.0.1:8000 or 0.0.0.0:8000",
            );
            SocketAddr::from(([127, 0, 0, 1], 8000))
        });

        let database_url = if raw.database_url.trim().is_empty() {
            format!("sqlite://{}", raw.data_dir.join("switchyard.db").display())
        } else {
            raw.database_url.trim().to_owned()
        };
        let store = Backend::of_url(&database_url).unwrap_or_else(|| {
            bad(
                "database_url",
                &redact_url(&database_url),
                "postgres://USER@HOST:PORT/DB, postgresql://..., sqlite://PATH or a file path",
            );
            Backend::Sqlite
        });

        if !(1..=1000).contains(&raw.pool_size) {
            bad(
                "pool_size",
                &raw.pool_size,
                "a number of connections from 1 to 1000",
            );
        }

        let jwt_secret = if raw.jwt_secret.is_empty() {
            None
        } else {
            if raw.jwt_secret.len() < 32 {
                bad(
                    "jwt_secret",
                    &format!("<{} characters>", raw.jwt_secret.len()),
                    "at least 32 characters (leave it unset to have one generated into the data directory)",
                );
            }
            Some(raw.jwt_secret.clone())
        };

        let jwt_public_key = raw.jwt_public_key_file.as_ref().map(|path| {
            let algorithm = match raw.jwt_public_key_algorithm.as_str() {
                "RS256" => jsonwebtoken::Algorithm::RS256,
                "EdDSA" => jsonwebtoken::Algorithm::EdDSA,
                other => {
                    bad("jwt_public_key_algorithm", &other, "RS256 or EdDSA");
                    jsonwebtoken::Algorithm::RS256
                }
            };
            if !path.is_file() {
                bad(
                    "jwt_public_key_file",
                    &path.display(),
                    "a readable PEM public key file",
                );
            }
            JwtPublicKey {
                path: path.clone(),
                algorithm,
            }
        });

        let log_format = match raw.log_format.as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                bad("log_format", &other, "pretty or json");
                LogFormat::Pretty
            }
        };
        if tracing_subscriber::EnvFilter::try_new(&raw.log_filter).is_err() {
            bad(
                "log_filter",
                &raw.log_filter,
                "a tracing filter such as `info` or `info,switchyard=debug`",
            );
        }

        let otlp_endpoint = match raw.otlp_endpoint.trim() {
            "" => None,
            url if url.starts_with("http://") && url.len() > "http://".len() => {
                Some(url.trim_end_matches('/').to_owned())
            }
            url => {
                bad(
                    "otlp_endpoint",
                    &url,
                    "an OTLP/HTTP collector base URL such as http://127.0.0.1:4318 (plain HTTP: run the collector next to the hub; leave it empty for no traces)",
                );
                None
            }
        };

        let mut cors_allowed_origins = Vec::new();
        for origin in &raw.cors_allowed_origins {
            let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/')
                && !origin.contains('*');
            match axum::http::HeaderValue::from_str(origin) {
                Ok(v) if ok => cors_allowed_origins.push(v),
                _ => bad(
                    "cors_allowed_origins",
                    origin,
                    "exact origins such as https://app.example.com (scheme and host, no path, no wildcard)",
                ),
            }
        }

        if !(1024..=(1u64 << 32)).contains(&raw.max_body_bytes) {
            bad(
                "max_body_bytes",
                &raw.max_body_bytes,
                "a size in bytes from 1024 to 4294967296",
            );
        }

        let rate_limit = match (raw.rate_limit_per_second, raw.rate_limit_burst) {
            (0, _) => None,
            (rate, burst) => {
                if burst == 0 {
                    bad(
                        "rate_limit_burst",
                        &burst,
                        "at least 1 when rate_limit_per_second is set",
                    );
                }
                if rate > 1_000_000 {
                    bad(
                        "rate_limit_per_second",
                        &rate,
                        "0 (off) to 1000000 requests per second",
                    );
                }
                Some((rate, burst.max(1)))
            }
        };

        let shutdown_grace = humantime::parse_duration(&raw.shutdown_grace).unwrap_or_else(|_| {
            bad(
                "shutdown_grace",
                &raw.shutdown_grace,
                "a duration such as 10s, 500ms or 1m",
            );
            Duration::from_secs(10)
        });

        if raw.default_pipeline.is_empty() || raw.default_pipeline.len() > 16 {
            bad(
                "default_pipeline",
                &raw.default_pipeline.join(","),
                "1 to 16 capability names",
            );
        }
        for name in &raw.default_pipeline {
            if !is_capability_name(name) {
                bad(
                    "default_pipeline",
                    name,
                    "capability names of lower-case letters, digits, `_` and `-`, separated by dots",
                );
            }
        }
        if !(1..=100).contains(&raw.max_attempts) {
            bad("max_attempts", &raw.max_attempts, "1 to 100");
        }

        let mut duration = |key: &'static str, raw: &str, min: Duration| {
            let week = Duration::from_secs(7 * 24 * 3600);
            let allowed = format!("a duration such as 5s or 250ms, from {min:?} to 7 days");
            super::duration_in(&mut problems, key, raw, (min, week), allowed).unwrap_or(min)
        };
        let ms = Duration::from_millis(10);
        let hub = HubSettings {
            heartbeat_interval: duration("heartbeat_interval", &raw.heartbeat_interval, ms),
            heartbeat_misses: raw.heartbeat_misses,
            accept_timeout: duration("accept_timeout", &raw.accept_timeout, ms),
            hello_timeout: duration("hello_timeout", &raw.hello_timeout, ms),
            lease: duration("lease", &raw.lease, ms),
            reconnect_grace: duration("reconnect_grace", &raw.reconnect_grace, Duration::ZERO),
            retry: crate::domain::RetryPolicy {
                initial: duration("retry_initial", &raw.retry_initial, Duration::ZERO),
                factor: raw.retry_factor,
                max: duration("retry_max", &raw.retry_max, Duration::ZERO),
            },
            aging_interval: duration("aging_interval", &raw.aging_interval, ms),
            max_frame_bytes: raw.max_frame_bytes as usize,
            agent_messages_per_second: raw.agent_messages_per_second,
        };
        if !(1..=100).contains(&raw.heartbeat_misses) {
            problems.push(Problem {
                key: "heartbeat_misses",
                value: raw.heartbeat_misses.to_string(),
                allowed: "1 to 100".into(),
            });
        }
        if !(1.0..=10.0).contains(&raw.retry_factor) {
            problems.push(Problem {
                key: "retry_factor",
                value: raw.retry_factor.to_string(),
                allowed: "1.0 to 10.0".into(),
            });
        }
        if !(1024..=(1u64 << 30)).contains(&raw.max_frame_bytes) {
            problems.push(Problem {
                key: "max_frame_bytes",
                value: raw.max_frame_bytes.to_string(),
                allowed: "1024 to 1073741824 bytes".into(),
            });
        }
        if raw.agent_messages_per_second == 0 {
            problems.push(Problem {
                key: "agent_messages_per_second",
                value: "0".into(),
                allowed: "at least 1".into(),
            });
        }

        let events = super::sections::event_settings(&raw, &mut problems);
        let webhooks = crate::webhooks::WebhookSettings::from_raw(&raw.webhooks, &mut problems);

        let monitor = super::sections::monitor_settings(&raw, &mut problems);
        let node_timeout = match humantime::parse_duration(&raw.node_timeout) {
            Ok(d) if (Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&d) => d,
            _ => {
                problems.push(Problem {
                    key: "node_timeout",
                    value: raw.node_timeout.clone(),
                    allowed: "a duration such as 10s or 500ms, from 100ms to 1h".into(),
                });
                Duration::from_secs(10)
            }
        };
        let advertise_url = match raw.advertise_url.trim() {
            "" => None,
            url if (url.starts_with("http://") || url.starts_with("https://"))
                && reqwest::Url::parse(url).is_ok() =>
            {
                Some(url.trim_end_matches('/').to_owned())
            }
            url => {
                problems.push(Problem {
                    key: "advertise_url",
                    value: url.to_owned(),
                    allowed: "the URL this node is reached at, such as http://10.0.0.5:8000 (leave it empty for http:// and the listen address)".into(),
                });
                None
            }
        };

        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        Ok(Settings {
            listen,
            database_url,
            store,
            data_dir: raw.data_dir,
            pool_size: raw.pool_size,
            jwt_secret,
            jwt_public_key,
            log_format,
            log_filter: raw.log_filter,
            otlp_endpoint,
            cors_allowed_origins,
            max_body_bytes: raw.max_body_bytes as usize,
            rate_limit,
            shutdown_grace,
            default_pipeline: raw.default_pipeline,
            max_attempts: raw.max_attempts,
            hub,
            monitor,
            events,
            webhooks,
            node_timeout,
            advertise_url,
        })
    }
}

/// Hides a password in a database URL before it is printed.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = Settings::from_raw(RawConfig::default()).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(s.store, Backend::Sqlite);
        assert_eq!(s.database_url, "sqlite://./switchyard.db");
    }

    #[test]
    fn every_problem_is_named() {
        let raw = RawConfig {
            listen: "localhost".into(),
            pool_size: 0,
            log_format: "xml".into(),
            database_url: "mysql://x".into(),
            shutdown_grace: "soon".into(),
            ..RawConfig::default()
        };
        let err = Settings::from_raw(raw).unwrap_err().to_string();
        for key in [
            "`listen` = \"localhost\"",
            "`pool_size` = \"0\"",
            "`log_format` = \"xml\"",
            "`database_url`",
            "`shutdown_grace`",
        ] {
            assert!(err.contains(key), "missing {key} in {err}");
        }
    }

    #[test]
    fn event_keys_are_validated() {
        let s = Settings::from_raw(RawConfig::default()).unwrap();
        assert_eq!(s.events.retention, Duration::from_secs(30 * 24 * 3600));
        assert_eq!(s.events.keepalive, Duration::from_secs(15));
        assert_eq!((s.events.bus_capacity, s.events.stream_buffer), (4096, 256));
        let raw = RawConfig {
            event_retention: "forever".into(),
            event_bus_capacity: 3,
            stream_keepalive: "0s".into(),
            stream_buffer: 0,
            ..RawConfig::default()
        };
        let err = Settings::from_raw(raw).unwrap_err().to_string();
        for key in [
            "`event_retention` = \"forever\"",
            "`event_bus_capacity` = \"3\"",
            "`stream_keepalive` = \"0s\"",
            "`stream_buffer` = \"0\"",
        ] {
            assert!(err.contains(key), "missing {key} in {err}");
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn capability_names() {
        assert!(is_capability_name("requirements.extract"));
        assert!(!is_capability_name("Requirements"));
        assert!(!is_capability_name("a..b"));
        assert!(!is_capability_name(""));
    }
}
