//! One trace per job: the spans of a job's REST request, of each task's
//! dispatch, of the agent's frames about it and of its webhook deliveries
//! run in different tasks (the handler, the dispatcher, the session, the
//! deliverer), so they are tied together here rather than by the call stack.
//!
//! The create handler remembers its request span as the job's trace parent;
//! a dispatch span names the job's and is remembered as its task's; agent
//! frames name their task's, webhook attempts their job's. The links live
//! in memory for [`KEEP`] (a job whose webhooks are retried past that
//! starts a new trace), and nothing is kept unless OTLP export is on, so the
//! hot path pays one relaxed load when it is off.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

/// How long a job's or task's trace parent is kept.
pub const KEEP: Duration = Duration::from_secs(3600);

/// Links remembered between two sweeps for old ones.
const SWEEP_EVERY: u64 = 4096;

static ENABLED: AtomicBool = AtomicBool::new(false);
static REMEMBERED: AtomicU64 = AtomicU64::new(0);
static PARENTS: LazyLock<DashMap<Uuid, (SpanContext, Instant)>> = LazyLock::new(DashMap::new);

/// Switched on once, when the OTLP exporter is installed.
pub(super) fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether spans are exported (and links worth keeping).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Remembers `span` as the trace parent of `id` (a job or a task id; both
/// are v7 UUIDs and never collide).
pub fn remember(id: Uuid, span: &tracing::Span) {
    if !enabled() {
        return;
    }
    let context = span.context().span().span_context().clone();
    if !context.is_valid() {
        return;
    }
    PARENTS.insert(id, (context, Instant::now()));
    if REMEMBERED.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
        PARENTS.retain(|_, (_, at)| at.elapsed() < KEEP);
    }
}

/// Makes `span` a child of what `id` remembered, if anything.
pub fn follow(span: &tracing::Span, id: Uuid) {
    if !enabled() {
        return;
    }
    if let Some(parent) = PARENTS.get(&id).map(|entry| entry.0.clone()) {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
}
