//! Logging: `tracing` from the first line, pretty for people or JSON for machines.
//!
//! The filter sits behind a reload handle, so a configuration reload can
//! change `log_filter` without a restart.

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::LogFormat;

/// The installed filter's handle; unset until [`init`] installs one.
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the global subscriber. `RUST_LOG` overrides the configured filter.
/// Safe to call twice: the second call is a no-op.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match format {
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
    };
    if installed.is_ok() {
        let _ = FILTER.set(handle);
    }
}

/// Replaces the filter of the subscriber [`init`] installed, unless
/// `RUST_LOG` is set (it overrides the configuration, at start and on
/// reload). `filter` was validated with the rest of the configuration.
pub fn set_filter(filter: &str) {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing::warn!(
            filter,
            "log_filter changed, but RUST_LOG is set and overrides it; the log filter is unchanged"
        );
        return;
    }
    let (Some(handle), Ok(new)) = (FILTER.get(), EnvFilter::try_new(filter)) else {
        return;
    };
    if let Err(e) = handle.reload(new) {
        tracing::warn!(error = %e, "could not change the log filter");
    }
}
