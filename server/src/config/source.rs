//! Where the configuration comes from, kept so that a reload reads the same
//! places again: defaults, then the file, then `SWITCHYARD_*` (and
//! `DATABASE_URL`) environment variables, then command-line flags.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};

use super::{ConfigError, ConfigOverrides, DEFAULT_FILE, RawConfig, Settings, env_paths};

/// The places a configuration is read from.
#[derive(Debug, Clone)]
pub struct Source {
    /// The values under everything else (`RawConfig::default()` for the CLI).
    pub base: RawConfig,
    /// The TOML file, if any.
    pub file: Option<PathBuf>,
    /// Whether a missing `file` is an error (an explicit `--config`) or
    /// simply not read (the default `./switchyard.toml`).
    pub file_required: bool,
    /// Whether `SWITCHYARD_*` and `DATABASE_URL` are read.
    pub env: bool,
    /// Command-line flags, over everything else.
    pub overrides: ConfigOverrides,
}

/// A configuration as read, and as validated.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub raw: RawConfig,
    pub settings: Settings,
    pub source: Source,
}

impl Source {
    /// What `switchyard serve` reads: `config_file` (which must exist) or
    /// `./switchyard.toml` when present, the environment and the flags.
    pub fn cli(config_file: Option<&Path>, overrides: &ConfigOverrides) -> Source {
        let (file, file_required) = match config_file {
            Some(path) => (Some(path.to_path_buf()), true),
            None => (Some(PathBuf::from(DEFAULT_FILE)), false),
        };
        Source {
            base: RawConfig::default(),
            file,
            file_required,
            env: true,
            overrides: overrides.clone(),
        }
    }

    /// `base` and, when it exists, `file`; no environment (for embedding
    /// and tests).
    pub fn fixed(base: RawConfig, file: Option<PathBuf>) -> Source {
        Source {
            base,
            file,
            file_required: false,
            env: false,
            overrides: ConfigOverrides::default(),
        }
    }

    /// Reads every place again and validates the result.
    pub fn load(&self) -> Result<Loaded, ConfigError> {
        let raw = self.read()?;
        let settings = Settings::from_raw(raw.clone())?;
        Ok(Loaded {
            raw,
            settings,
            source: self.clone(),
        })
    }

    /// The merged values, before validation.
    pub fn read(&self) -> Result<RawConfig, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(&self.base));
        if let Some(path) = &self.file {
            if path.is_file() {
                figment = figment.merge(Toml::file_exact(path));
            } else if self.file_required {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist; pass an existing file to --config or leave it out",
                    path.display()
                )));
            }
        }
        if self.env {
            let paths = Arc::new(env_paths());
            figment = figment.merge(Env::raw().only(&["DATABASE_URL"])).merge(
                Env::prefixed("SWITCHYARD_").filter_map(move |key| {
                    let key = key.as_str().to_ascii_lowercase();
                    paths.get(&key).map(|path| path.clone().into())
                }),
            );
        }
        figment
            .merge(Serialized::defaults(&self.overrides))
            .extract()
            .map_err(|e| ConfigError::Load(describe(e)))
    }
}

/// figment's errors, each said the way a person fixes it: an unknown key
/// with the nearest known one, a bare number where a duration is wanted
/// with the unit to add; each with where the value came from.
fn describe(error: figment::Error) -> String {
    use figment::error::{Actual, Kind};
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let from = match (&e.metadata, &e.profile) {
                (Some(m), _) if m.name.contains("SWITCHYARD_") => {
                    format!(" (from SWITCHYARD_{})", e.path.join("_").to_uppercase())
                }
                (Some(m), Some(profile)) if m.name.contains("environment") => {
                    format!(" (from {})", m.interpolate(profile, &e.path))
                }
                (Some(m), _) => match &m.source {
                    Some(source) => format!(" (in {source})"),
                    None => format!(" (from {})", m.name),
                },
                _ => String::new(),
            };
            match &e.kind {
                Kind::UnknownField(field, known) => {
                    let near = known
                        .iter()
                        .map(|k| (strsim::jaro_winkler(field, k), *k))
                        .filter(|(score, _)| *score > 0.8)
                        .max_by(|a, b| a.0.total_cmp(&b.0));
                    let section = e.path.len().saturating_sub(1);
                    let prefix = if section > 0 {
                        format!("{}.", e.path[..section].join("."))
                    } else {
                        String::new()
                    };
                    match near {
                        Some((_, k)) => format!(
                            "unknown key `{prefix}{field}`{from}: did you mean `{prefix}{k}`?"
                        ),
                        None => format!(
                            "unknown key `{prefix}{field}`{from}; the keys are listed in the README's Configuration section"
                        ),
                    }
                }
                Kind::InvalidType(Actual::Unsigned(n), expected) if expected.contains("string") => {
                    format!(
                        "`{key}` = {n}{from} is a bare number; durations need a unit, e.g. \"{n}s\" or \"{n}ms\" (other text settings: quote the value)"
                    )
                }
                Kind::InvalidType(Actual::Signed(n), expected) if expected.contains("string") => {
                    format!(
                        "`{key}` = {n}{from} is a bare number; durations need a unit, e.g. \"{n}s\" or \"{n}ms\" (other text settings: quote the value)"
                    )
                }
                _ => e.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}
