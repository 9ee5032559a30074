//! Hot reload: on SIGHUP or `POST /v1/admin/reload`, the hub reads its
//! configuration from the same places again and applies what is safe to
//! change while it runs.
//!
//! A reload is all or nothing. An invalid file, or a change to a key that
//! needs a restart (the listen address, the database, the data directory,
//! …; see [`crate::config::changes::LIVE`] for the others), is refused with
//! the reason, and the running configuration stays exactly as it was. A
//! valid reload replaces the settings in [`Live`](crate::config::Live) (read
//! per request, and watched by the webhook deliverer, the monitor and the
//! rate limiter), the dispatcher's timings (for sessions that connect from
//! now on) and the log filter, and logs each key that changed.

use std::sync::Mutex;

use serde::Serialize;

use crate::config::changes::{self, Change};
use crate::config::{ConfigError, RawConfig, Source};
use crate::state::AppState;

/// Re-reads a hub's configuration source.
pub struct Reloader {
    /// `None` for a hub started from settings alone (nothing to re-read).
    source: Option<Source>,
    /// The raw values in force; held for the whole reload, so two reloads
    /// never interleave.
    running: Mutex<RawConfig>,
}

/// What a reload applied.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Reloaded {
    /// Every key that changed, each applied; empty when nothing did.
    pub changed: Vec<Change>,
}

/// Why a reload was refused; the running configuration is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(
        "this hub was started without a configuration file or environment to re-read; nothing to reload"
    )]
    NoSource,
    #[error("{0}; the running configuration is unchanged")]
    Invalid(ConfigError),
    #[error(
        "{}; nothing was applied (the running configuration is unchanged): restart the hub to change {}, or put the running value back",
        describe(.0),
        if .0.len() == 1 { "it" } else { "them" }
    )]
    NeedsRestart(Vec<Change>),
}

fn describe(changes: &[Change]) -> String {
    changes
        .iter()
        .map(|c| {
            format!(
                "`{}` cannot change while the hub runs (running: {}, read: {})",
                c.key, c.from, c.to
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Reloader {
    pub fn new(source: Option<Source>, running: RawConfig) -> Self {
        Self {
            source,
            running: Mutex::new(running),
        }
    }

    /// Reads the source again and applies it to `state`, or refuses it.
    pub fn reload(&self, state: &AppState) -> Result<Reloaded, ReloadError> {
        let Some(source) = &self.source else {
            return Err(ReloadError::NoSource);
        };
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let loaded = source.load().map_err(|e| {
            tracing::warn!(error = %e, "configuration reload refused: invalid configuration");
            ReloadError::Invalid(e)
        })?;
        let changed = changes::between(&running, &loaded.raw);
        let restart: Vec<Change> = changed.iter().filter(|c| !c.live).cloned().collect();
        if !restart.is_empty() {
            let error = ReloadError::NeedsRestart(restart);
            tracing::warn!(error = %error, "configuration reload refused");
            return Err(error);
        }
        if changed.is_empty() {
            tracing::info!("configuration reloaded: nothing changed");
            return Ok(Reloaded { changed });
        }
        let new = loaded.settings;
        let old = state.settings.get();
        if new.log_filter != old.log_filter {
            crate::telemetry::set_filter(&new.log_filter);
        }
        if new.hub != old.hub {
            state.hub.reconfigure(new.hub.clone());
        }
        state.settings.replace(new);
        *running = loaded.raw;
        for change in &changed {
            tracing::info!(key = %change.key, from = %change.from, to = %change.to, "configuration reloaded: applied");
        }
        Ok(Reloaded { changed })
    }
}
