//! Configuration: defaults, then `switchyard.toml`, then `SWITCHYARD_*` (and
//! `DATABASE_URL`) environment variables, then command-line flags, merged with
//! figment and validated once at start-up into typed [`Settings`].
//!
//! Validation collects every problem and names the key, the value given and
//! what is allowed, so a bad start-up says everything wrong in one go.

pub mod changes;
mod live;
mod raw;
mod secrets;
mod sections;
pub mod settings;
mod source;

pub use live::Live;
pub use raw::{ConfigOverrides, RawConfig, env_paths};
pub use settings::{JwtPublicKey, LogFormat, Settings, is_capability_name};
pub use source::{Loaded, Source};

use std::path::Path;

/// A configuration that cannot be used; `Display` lists every problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration error: {0}")]
    Load(String),
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// One invalid value: which key, what was given, what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: &'static str,
    pub value: String,
    pub allowed: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` = {:?} is not allowed: {}",
            self.key, self.value, self.allowed
        )
    }
}

/// `value` as a duration from `min` to `max`; otherwise a [`Problem`] for
/// `key` saying `allowed`, and `None` (the caller picks the stand-in value,
/// since validation goes on to report every problem at once).
pub fn duration_in(
    problems: &mut Vec<Problem>,
    key: &'static str,
    value: &str,
    (min, max): (std::time::Duration, std::time::Duration),
    allowed: impl Into<String>,
) -> Option<std::time::Duration> {
    match humantime::parse_duration(value) {
        Ok(d) if d >= min && d <= max => Some(d),
        _ => {
            problems.push(Problem {
                key,
                value: value.to_owned(),
                allowed: allowed.into(),
            });
            None
        }
    }
}

/// The file read when no `--config` is given, from the working directory.
pub const DEFAULT_FILE: &str = "switchyard.toml";

/// Loads and validates the configuration from the defaults, the file, the
/// environment and `overrides` (see [`Source::cli`]).
///
/// `config_file`: an explicit file must exist; without one, `./switchyard.toml`
/// is read when present.
pub fn load(
    config_file: Option<&Path>,
    overrides: &ConfigOverrides,
) -> Result<Settings, ConfigError> {
    Source::cli(config_file, overrides)
        .load()
        .map(|loaded| loaded.settings)
}
