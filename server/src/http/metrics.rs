//! Prometheus metrics: the recorder (installed once per process), the one
//! list of metric families with their help text, the gauges read at scrape
//! time, and the request counter / latency histogram middleware.
//!
//! Recording a metric never fails a request: the `metrics` macros are
//! infallible, and the recorder is installed once, shared by every hub in the
//! process (the integration tests start many).
//!
//! Labels stay bounded: no job, task or request ids. The labels that grow
//! with the fleet are `agent` (one series per agent name) and `webhook`
//! (one per subscription); `docs/operations.md` says so.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide Prometheus handle.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = || {
                PrometheusBuilder::new()
                    .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                    .unwrap_or_else(|_| PrometheusBuilder::new())
            };
            // Another recorder may already be installed (an embedding program):
            // then keep a private one so /metrics still answers.
            let handle = builder()
                .install_recorder()
                .unwrap_or_else(|_| builder().build_recorder().handle());
            describe();
            handle
        })
        .clone()
}

/// The process's CPU, memory and descriptors (`process_*`), read at scrape.
fn process() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// What kind of family a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    /// Rendered as a histogram (`_bucket`, `_sum`, `_count`) when its name
    /// ends in `_seconds`, as a summary (`quantile`, `_sum`, `_count`)
    /// otherwise.
    Histogram,
}

/// Every family the hub exports besides `process_*`: name, kind and help
/// text. The one list: `describe` registers it, and the tests check that
/// `/metrics` passes `promtool check metrics` and that every dashboard and
/// alert expression names a family from it.
pub const FAMILIES: &[(&str, Kind, &str)] = &[
    (
        "switchyard_build_info",
        Kind::Gauge,
        "Always 1; the labels say which build runs (version, commit).",
    ),
    (
        "switchyard_http_requests_total",
        Kind::Counter,
        "HTTP requests answered, by method, route template and status.",
    ),
    (
        "switchyard_http_request_duration_seconds",
        Kind::Histogram,
        "Time to answer an HTTP request, by method, route template and status.",
    ),
    (
        "switchyard_jobs_created_total",
        Kind::Counter,
        "Jobs created (replays of an idempotency key not counted).",
    ),
    (
        "switchyard_jobs_active",
        Kind::Gauge,
        "Unfinished jobs by status (waiting, queued, running), read from the store at each scrape.",
    ),
    (
        "switchyard_task_transitions_total",
        Kind::Counter,
        "Task outcomes the dispatcher recorded, by capability and resulting status.",
    ),
    (
        "switchyard_task_duration_seconds",
        Kind::Histogram,
        "Time from an agent's accept to the task's final outcome, by capability.",
    ),
    (
        "switchyard_dispatch_latency_seconds",
        Kind::Histogram,
        "Time a task waited from ready to being pushed to an agent, by capability.",
    ),
    (
        "switchyard_queue_depth",
        Kind::Gauge,
        "Tasks ready and waiting for an agent, by capability.",
    ),
    (
        "switchyard_queue_oldest_seconds",
        Kind::Gauge,
        "Age of the oldest ready task, by capability (0 when none waits).",
    ),
    (
        "switchyard_agents",
        Kind::Gauge,
        "Agents known to the hub, by session state.",
    ),
    (
        "switchyard_agents_by_capability",
        Kind::Gauge,
        "Connected agents offering each capability (0 for a capability with queued work and no agent).",
    ),
    (
        "switchyard_agent_trust_score",
        Kind::Gauge,
        "Trust of each agent, from 0 to 1, by agent name.",
    ),
    (
        "switchyard_agent_in_flight",
        Kind::Gauge,
        "Tasks each agent holds (assigned or running), by agent name.",
    ),
    (
        "switchyard_agent_heartbeat_age_seconds",
        Kind::Gauge,
        "Time since each agent was last heard from, by agent name.",
    ),
    (
        "switchyard_agent_sessions_total",
        Kind::Counter,
        "Agent sessions welcomed (first connections and reconnections).",
    ),
    (
        "switchyard_heartbeats_total",
        Kind::Counter,
        "Heartbeats received from agents.",
    ),
    (
        "switchyard_agent_messages_paced_total",
        Kind::Counter,
        "Agent messages delayed by the per-session rate limit.",
    ),
    (
        "switchyard_store_batch_ops",
        Kind::Histogram,
        "Operations per group-commit transaction.",
    ),
    (
        "switchyard_store_commit_seconds",
        Kind::Histogram,
        "Time to apply and commit one group-commit transaction.",
    ),
    (
        "switchyard_store_batch_retries_total",
        Kind::Counter,
        "Group commits that failed and were applied again op by op.",
    ),
    (
        "switchyard_events_deleted_total",
        Kind::Counter,
        "Events deleted by retention.",
    ),
    (
        "switchyard_webhook_deliveries_deleted_total",
        Kind::Counter,
        "Finished webhook deliveries (with their attempts) deleted by retention.",
    ),
    (
        "switchyard_stream_connections",
        Kind::Gauge,
        "Open event-stream WebSocket connections.",
    ),
    (
        "switchyard_stream_lagged_total",
        Kind::Counter,
        "Event-stream subscribers that fell behind and were told to resume, by kind.",
    ),
    (
        "switchyard_webhook_attempts_total",
        Kind::Counter,
        "Webhook delivery attempts, by result.",
    ),
    (
        "switchyard_webhook_attempt_seconds",
        Kind::Histogram,
        "Time a webhook delivery attempt took.",
    ),
    (
        "switchyard_webhook_backlog",
        Kind::Gauge,
        "Pending webhook deliveries, by subscription.",
    ),
    (
        "switchyard_webhook_backlog_oldest_seconds",
        Kind::Gauge,
        "Age of the oldest pending delivery, by subscription.",
    ),
];

/// Registers [`FAMILIES`] (seconds as their unit where the name says so),
/// the process collector's families, and the build info.
fn describe() {
    for &(name, kind, help) in FAMILIES {
        let seconds = name.ends_with("_seconds");
        match (kind, seconds) {
            (Kind::Counter, _) => describe_counter!(name, help),
            (Kind::Gauge, true) => describe_gauge!(name, Unit::Seconds, help),
            (Kind::Gauge, false) => describe_gauge!(name, help),
            (Kind::Histogram, true) => describe_histogram!(name, Unit::Seconds, help),
            (Kind::Histogram, false) => describe_histogram!(name, help),
        }
    }
    process().describe();
    metrics::gauge!(
        "switchyard_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "commit" => env!("SWITCHYARD_COMMIT"),
    )
    .set(1.0);
}

/// Sets the gauges the store answers (see [`crate::store::reports::StoreGauges`]).
/// A failed read leaves them as they were: a scrape never fails on it.
async fn read_store_gauges(state: &AppState) {
    let gauges = match state.store.gauges().await {
        Ok(gauges) => gauges,
        Err(e) => {
            tracing::warn!(error = %e, "/metrics could not read the store's gauges");
            return;
        }
    };
    for status in ["waiting", "queued", "running"] {
        let n = gauges
            .active_jobs
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!("switchyard_jobs_active", "status" => status).set(n as f64);
    }
    // Subscriptions whose backlog emptied go back to 0 rather than keep
    // their last value.
    static WITH_BACKLOG: Mutex<Option<HashSet<uuid::Uuid>>> = Mutex::new(None);
    let now: HashSet<uuid::Uuid> = gauges
        .webhook_backlog
        .iter()
        .map(|(id, _, _)| *id)
        .collect();
    let emptied: Vec<uuid::Uuid> = match WITH_BACKLOG.lock() {
        Ok(mut seen) => {
            let before = seen.replace(now).unwrap_or_default();
            before
                .into_iter()
                .filter(|id| !seen.as_ref().is_some_and(|s| s.contains(id)))
                .collect()
        }
        Err(_) => Vec::new(),
    };
    for id in emptied {
        let id = id.to_string();
        metrics::gauge!("switchyard_webhook_backlog", "webhook" => id.clone()).set(0.0);
        metrics::gauge!("switchyard_webhook_backlog_oldest_seconds", "webhook" => id).set(0.0);
    }
    for (id, pending, oldest) in gauges.webhook_backlog {
        let id = id.to_string();
        metrics::gauge!("switchyard_webhook_backlog", "webhook" => id.clone()).set(pending as f64);
        metrics::gauge!("switchyard_webhook_backlog_oldest_seconds", "webhook" => id).set(oldest);
    }
}

/// Counts requests and records latency by method, route template and status.
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("switchyard_http_requests_total", &labels).increment(1);
    metrics::histogram!("switchyard_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4",
        content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let handle = handle();
    process().collect();
    read_store_gauges(&state).await;
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
}
