//! The raw configuration as merged from file, environment and flags, before validation.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The environment keys of the configuration (lower case, without the
/// `SWITCHYARD_` prefix), each with its figment key path, read off
/// [`RawConfig`] itself so that a new setting needs no list kept by hand:
/// a top-level key `listen` is `SWITCHYARD_LISTEN`; a key of a section
/// (`[webhooks] allow_loopback`) is `SWITCHYARD_WEBHOOKS_ALLOW_LOOPBACK`,
/// path `webhooks.allow_loopback`. Other `SWITCHYARD_*` variables (the CLI's
/// `SWITCHYARD_URL` and `SWITCHYARD_TOKEN`, test switches) are not
/// configuration and are not among them.
pub fn env_paths() -> HashMap<String, String> {
    let mut paths = HashMap::new();
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(RawConfig::default()) else {
        return paths;
    };
    for (key, value) in fields {
        match value {
            serde_json::Value::Object(section) => {
                for field in section.keys() {
                    paths.insert(format!("{key}_{field}"), format!("{key}.{field}"));
                }
            }
            _ => {
                paths.insert(key.clone(), key);
            }
        }
    }
    paths
}

/// Every setting, as strings and numbers; see `README.md` for the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Address to listen on, `host:port`.
    pub listen: String,
    /// `postgres://...` for Postgres, `sqlite://PATH` (or a path) for SQLite;
    /// empty means SQLite at `<data_dir>/switchyard.db`.
    pub database_url: String,
    /// Where the generated JWT secret (and the default SQLite file) live.
    pub data_dir: PathBuf,
    /// Connections in the database pool.
    pub pool_size: u32,
    /// HS256 secret; generated into the data directory when empty.
    pub jwt_secret: String,
    /// A file holding `jwt_secret` (Docker and Kubernetes secrets).
    pub jwt_secret_file: Option<PathBuf>,
    /// A file holding the password of a `postgres://` `database_url`.
    pub database_password_file: Option<PathBuf>,
    /// Optional PEM public key accepted besides the HS256 secret.
    pub jwt_public_key_file: Option<PathBuf>,
    /// `RS256` or `EdDSA`, for `jwt_public_key_file`.
    pub jwt_public_key_algorithm: String,
    /// `pretty` or `json`.
    pub log_format: String,
    /// A tracing `EnvFilter` directive, e.g. `info,switchyard=debug`.
    pub log_filter: String,
    /// OTLP/HTTP collector to export traces to, e.g. `http://127.0.0.1:4318`;
    /// empty: no traces.
    pub otlp_endpoint: String,
    /// Origins allowed by CORS; none by default.
    pub cors_allowed_origins: Vec<String>,
    /// Largest accepted request body.
    pub max_body_bytes: u64,
    /// Sustained requests per second per token subject (or client IP); 0 disables.
    pub rate_limit_per_second: u32,
    /// Burst allowance on top of the sustained rate.
    pub rate_limit_burst: u32,
    /// How long in-flight requests may take to finish on shutdown, e.g. `10s`.
    pub shutdown_grace: String,
    /// Pipeline used when a job names none.
    pub default_pipeline: Vec<String>,
    /// Attempts per task before it fails for good.
    pub max_attempts: u32,
    /// How often agents send heartbeats (told to them in `welcome`).
    pub heartbeat_interval: String,
    /// Missed heartbeat intervals after which an agent is offline.
    pub heartbeat_misses: u32,
    /// How long an agent has to accept a pushed task.
    pub accept_timeout: String,
    /// How long a new agent connection has to send `hello`, from the
    /// upgrade on (pings and pongs do not extend it).
    pub hello_timeout: String,
    /// How long a running task's lease lasts without `progress`.
    pub lease: String,
    /// How long a lost agent's tasks wait for it to reconnect and resume them.
    pub reconnect_grace: String,
    /// First retry delay of a failed task.
    pub retry_initial: String,
    /// Growth of the retry delay per failure.
    pub retry_factor: f64,
    /// Longest retry delay.
    pub retry_max: String,
    /// Waiting this long raises a task's effective priority by one level.
    pub aging_interval: String,
    /// Largest WebSocket frame accepted from an agent.
    pub max_frame_bytes: u64,
    /// Messages per second one agent session may send (burst: twice that).
    pub agent_messages_per_second: u32,
    /// How often the monitor sweeps for stuck work (see `docs/reports.md`).
    pub monitor_interval: String,
    /// A running job with no event for this long is reported as stuck.
    pub stuck_after: String,
    /// Margin beyond `reconnect_grace` before the monitor takes back a task
    /// whose lease expired in the database (the dispatcher acts first).
    pub stuck_grace: String,
    /// A job not finished this long after it was created fails.
    pub job_timeout: String,
    /// Events older than this are deleted (hourly, in batches), e.g. `30d`.
    pub event_retention: String,
    /// Committed events kept in memory for stream subscribers; one that falls
    /// further behind is told it lagged.
    pub event_bus_capacity: u32,
    /// Keep-alive comments on SSE streams and pings on the WebSocket stream, e.g. `15s`.
    pub stream_keepalive: String,
    /// Frames queued per WebSocket stream connection before it stops reading events.
    pub stream_buffer: u32,
    /// How long a WebSocket stream ticket stays valid, e.g. `30s`.
    pub stream_ticket_ttl: String,
    /// A node whose heartbeat is older than this is dead for the others
    /// (see `docs/cluster.md`); it renews it every fifth of this.
    pub node_timeout: String,
    /// The URL agents and clients reach this node at (told to agents when
    /// it shuts down); empty: `http://` and the listen address.
    pub advertise_url: String,
    /// The `[webhooks]` section; see `docs/webhooks.md`.
    pub webhooks: crate::webhooks::RawWebhookConfig,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8000".into(),
            database_url: String::new(),
            data_dir: PathBuf::from("."),
            pool_size: 10,
            jwt_secret: String::new(),
            jwt_secret_file: None,
            database_password_file: None,
            jwt_public_key_file: None,
            jwt_public_key_algorithm: "RS256".into(),
            log_format: "pretty".into(),
            log_filter: "info".into(),
            otlp_endpoint: String::new(),
            cors_allowed_origins: Vec::new(),
            max_body_bytes: 25 * 1024 * 1024,
            rate_limit_per_second: 100,
            rate_limit_burst: 200,
            shutdown_grace: "10s".into(),
            default_pipeline: vec![
                "requirements.extract".into(),
                "requirements.validate".into(),
            ],
            max_attempts: 5,
            heartbeat_interval: "5s".into(),
            heartbeat_misses: 3,
            accept_timeout: "10s".into(),
            hello_timeout: "10s".into(),
            lease: "60s".into(),
            reconnect_grace: "10s".into(),
            retry_initial: "1s".into(),
            retry_factor: 2.0,
            retry_max: "5m".into(),
            aging_interval: "30s".into(),
            max_frame_bytes: 16 * 1024 * 1024,
            agent_messages_per_second: 100_000,
            monitor_interval: "30s".into(),
            stuck_after: "10m".into(),
            stuck_grace: "60s".into(),
            job_timeout: "168h".into(),
            event_retention: "30d".into(),
            event_bus_capacity: 4096,
            stream_keepalive: "15s".into(),
            stream_buffer: 256,
            stream_ticket_ttl: "30s".into(),
            node_timeout: "10s".into(),
            advertise_url: String::new(),
            webhooks: crate::webhooks::RawWebhookConfig::default(),
        }
    }
}

/// Command-line flags that override everything else; `None` leaves the value alone.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConfigOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys_name_every_field_and_nest_sections() {
        let paths = env_paths();
        assert_eq!(paths.get("listen").map(String::as_str), Some("listen"));
        assert_eq!(
            paths.get("webhooks_allow_loopback").map(String::as_str),
            Some("webhooks.allow_loopback")
        );
        assert!(!paths.contains_key("webhooks"), "a section is not a key");
        assert!(!paths.contains_key("url"), "SWITCHYARD_URL is the CLI's");
        assert!(
            !paths.contains_key("token"),
            "SWITCHYARD_TOKEN is the CLI's"
        );
    }
}
