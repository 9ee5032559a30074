//! What a reload would change, and whether the running hub can take it.
//!
//! The comparison is made on the raw values (what the operator wrote), key
//! by key, so the log and the API name exactly the keys that changed. Which
//! keys apply live is one list, [`LIVE`]; every other key needs a restart,
//! so a setting added later is safe by default until someone wires it for
//! reload and adds it here.

use serde::Serialize;

use super::RawConfig;

/// Keys a running hub applies on reload (a `webhooks.` entry covers the
/// whole section). What each one affects is in `docs/operations.md`.
pub const LIVE: &[&str] = &[
    "log_filter",
    "cors_allowed_origins",
    "rate_limit_per_second",
    "rate_limit_burst",
    "default_pipeline",
    "max_attempts",
    // The hub's timings: sessions that connect after the reload use them;
    // connected agents keep the ones their `welcome` told them.
    "heartbeat_interval",
    "heartbeat_misses",
    "accept_timeout",
    "hello_timeout",
    "lease",
    "reconnect_grace",
    "retry_initial",
    "retry_factor",
    "retry_max",
    "aging_interval",
    "max_frame_bytes",
    "agent_messages_per_second",
    // The monitor's thresholds and the event log's retention.
    "monitor_interval",
    "stuck_after",
    "stuck_grace",
    "job_timeout",
    "event_retention",
    "stream_keepalive",
    "stream_buffer",
    "stream_ticket_ttl",
    "webhooks.",
];

/// Keys whose values are never shown, in logs or over the API.
const SECRET: &[&str] = &["jwt_secret", "webhooks.secret_keys"];

/// One key whose value differs.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Change {
    /// The key as written in `switchyard.toml` (`webhooks.timeout` for a
    /// key of the `[webhooks]` section).
    pub key: String,
    /// The running value (`"<hidden>"` for secrets).
    #[schema(value_type = Object)]
    pub from: serde_json::Value,
    /// The value read now.
    #[schema(value_type = Object)]
    pub to: serde_json::Value,
    /// Whether the running hub can apply it; if not, a restart is needed.
    pub live: bool,
}

/// Every key whose value differs between `old` and `new`, in key order.
pub fn between(old: &RawConfig, new: &RawConfig) -> Vec<Change> {
    let old = flatten(old);
    let new = flatten(new);
    new.iter()
        .filter_map(|(key, to)| {
            let from = old.get(key).cloned().unwrap_or(serde_json::Value::Null);
            (&from != to).then(|| {
                let hidden = SECRET.contains(&key.as_str());
                let show = |v: serde_json::Value| {
                    if hidden {
                        serde_json::Value::from("<hidden>")
                    } else if key == "database_url" {
                        serde_json::Value::from(super::settings::redact_url(
                            v.as_str().unwrap_or_default(),
                        ))
                    } else {
                        v
                    }
                };
                Change {
                    live: is_live(key),
                    from: show(from),
                    to: show(to.clone()),
                    key: key.clone(),
                }
            })
        })
        .collect()
}

/// Whether `key` applies without a restart.
pub fn is_live(key: &str) -> bool {
    LIVE.iter().any(|live| match live.strip_suffix('.') {
        Some(section) => key
            .strip_prefix(section)
            .is_some_and(|k| k.starts_with('.')),
        None => *live == key,
    })
}

/// `key` (or `section.key`) → value, sorted.
fn flatten(raw: &RawConfig) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut keys = std::collections::BTreeMap::new();
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(raw) {
        for (key, value) in fields {
            match value {
                serde_json::Value::Object(section) => {
                    for (field, value) in section {
                        keys.insert(format!("{key}.{field}"), value);
                    }
                }
                value => {
                    keys.insert(key, value);
                }
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_changed_key_and_whether_it_is_live() {
        let old = RawConfig::default();
        let mut new = old.clone();
        new.log_filter = "debug".into();
        new.listen = "0.0.0.0:9000".into();
        new.webhooks.timeout = "3s".into();
        new.jwt_secret = "s".repeat(40);
        let changes = between(&old, &new);
        let keys: Vec<(&str, bool)> = changes.iter().map(|c| (c.key.as_str(), c.live)).collect();
        assert_eq!(
            keys,
            [
                ("jwt_secret", false),
                ("listen", false),
                ("log_filter", true),
                ("webhooks.timeout", true)
            ]
        );
        assert_eq!(changes[0].to, "<hidden>", "secrets are never shown");
        assert_eq!(changes[2].from, "info");
        assert!(between(&old, &old).is_empty());
    }

    #[test]
    fn sections_match_whole_keys_only() {
        assert!(is_live("webhooks.timeout"));
        assert!(!is_live("webhooks"));
        assert!(!is_live("webhooksx.timeout"));
        assert!(!is_live("database_url"));
        assert!(!is_live("listen"));
    }
}
