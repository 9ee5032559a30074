//! Logging and tracing: `tracing` from the first line, pretty for people or
//! JSON for machines, and, when `otlp_endpoint` is set, OpenTelemetry traces
//! exported over OTLP/HTTP.
//!
//! The log filter sits behind a reload handle, so a configuration reload
//! can change `log_filter` without a restart. Traces have their own filter
//! (the hub's spans at `info`), so a quiet log does not mean no traces.
//! How one job's spans are tied into one trace across tasks and processes
//! is in [`links`].

pub mod links;

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::config::LogFormat;

/// The installed filter's handle; unset until [`init`] installs one.
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Flushes and stops the trace exporter when dropped (at the end of `serve`).
#[must_use = "dropping it stops the trace exporter"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "could not flush the last traces");
        }
    }
}

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot export traces to {endpoint}: {message}")]
pub struct TraceError {
    pub endpoint: String,
    pub message: String,
}

/// Installs the global subscriber. `RUST_LOG` overrides the configured filter.
/// Safe to call twice: the second call installs nothing. With `otlp`
/// (an `http://host:port` base), spans are also exported to
/// `<otlp>/v1/traces`.
pub fn init(format: LogFormat, filter: &str, otlp: Option<&str>) -> Result<Telemetry, TraceError> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = match format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_target(false).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    let provider = otlp.map(provider).transpose()?;
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("switchyard"))
            .with_filter(Targets::new().with_target("switchyard", tracing::Level::INFO))
    });
    let installed = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(traces)
        .try_init();
    if installed.is_err() {
        return Ok(Telemetry { provider: None });
    }
    let _ = FILTER.set(handle);
    if provider.is_some() {
        links::enable();
    }
    Ok(Telemetry { provider })
}

/// A tracer provider that batches spans to `<endpoint>/v1/traces`.
fn provider(endpoint: &str) -> Result<SdkTracerProvider, TraceError> {
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .build()
        .map_err(|e| TraceError {
            endpoint: endpoint.to_owned(),
            message: e.to_string(),
        })?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("switchyard")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
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
