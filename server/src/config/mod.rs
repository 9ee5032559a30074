//! Configuration: defaults, then `switchyard.toml`, then `SWITCHYARD_*` (and
//! `DATABASE_URL`) environment variables, then command-line flags, merged with
//! figment and validated once at start-up into typed [`Settings`].
//!
//! Validation collects every problem and names the key, the value given and
//! what is allowed, so a bad start-up says everything wrong in one go.

mod raw;
pub mod settings;

pub use raw::{ConfigOverrides, RawConfig, env_paths};
pub use settings::{JwtPublicKey, LogFormat, Settings, is_capability_name};

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};

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

/// The file read when no `--config` is given, from the working directory.
pub const DEFAULT_FILE: &str = "switchyard.toml";

/// Loads and validates the configuration.
///
/// `config_file`: an explicit file must exist; without one, `./switchyard.toml`
/// is read when present.
pub fn load(
    config_file: Option<&Path>,
    overrides: &ConfigOverrides,
) -> Result<Settings, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
    match config_file {
        Some(path) => {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist; pass an existing file to --config or leave it out",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        None if Path::new(DEFAULT_FILE).is_file() => {
            figment = figment.merge(Toml::file_exact(DEFAULT_FILE));
        }
        None => {}
    }
    let paths = std::sync::Arc::new(env_paths());
    let raw: RawConfig = figment
        .merge(Env::raw().only(&["DATABASE_URL"]))
        .merge(Env::prefixed("SWITCHYARD_").filter_map(move |key| {
            let key = key.as_str().to_ascii_lowercase();
            paths.get(&key).map(|path| path.clone().into())
        }))
        .merge(Serialized::defaults(overrides))
        .extract()
        .map_err(|e| ConfigError::Load(e.to_string()))?;
    Settings::from_raw(raw)
}
