//! Signed webhooks: job events pushed to subscribers' HTTP endpoints.
//!
//! Webhooks must never slow the hub down, and must survive receivers and the
//! hub going away. So the hub's core never sends anything itself: the event
//! log is the source, and two background tasks work from the database.
//!
//! * The [`tailer`] follows the event log after a persisted cursor and, per
//!   matching subscription, queues a delivery row (`webhook_deliveries`) in
//!   the same transaction that advances the cursor.
//! * The [`deliverer`] takes due rows from that queue and sends them
//!   concurrently, with a per-host concurrency limit and circuit breaker
//!   ([`breaker`]), records every attempt (`webhook_attempts`) and
//!   reschedules failures per the retry schedule ([`retry`]).
//!
//! Because the queue is in the database, a restarted hub (or another node on
//! the same Postgres) carries on where the last one stopped: delivery is at
//! least once, and the `webhook-id` header, stable per event and
//! subscription, lets receivers drop repeats.
//!
//! Requests follow the Standard Webhooks specification ([`signing`]).
//! Targets are checked against loopback/private/link-local addresses at
//! creation and on every connection ([`target`]). Config: [`config`];
//! REST API: `crate::http::webhooks`; user docs: `docs/webhooks.md`.

pub mod breaker;
pub mod config;
pub mod deliverer;
pub mod matching;
pub mod model;
pub mod replay;
pub mod retry;
pub mod sealing;
pub mod send;
pub mod signing;
pub mod tailer;
pub mod target;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{RawWebhookConfig, WebhookSettings};

use crate::config::Live;
use crate::store::DynStore;

/// The current time in microseconds, the precision both databases store.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Starts the tailer and the deliverer on `tasks`; both stop when
/// `shutdown` fires. Fails (and starts nothing) when the HTTP client cannot
/// be built: a hub that accepts webhook subscriptions must deliver them.
/// The deliverer follows `live`: a reload that changes the `[webhooks]`
/// section rebuilds its HTTP client and limits before the next attempt.
pub fn spawn(
    store: DynStore,
    live: Live,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> reqwest::Result<()> {
    let settings = Arc::new(live.get().webhooks.clone());
    let client = send::client(&settings)?;
    let queued = Arc::new(Notify::new());
    tasks.spawn(tailer::run(store.clone(), queued.clone(), shutdown.clone()));
    let deliverer = deliverer::Deliverer::new(store, settings, client, queued);
    tasks.spawn(deliverer.run(live.subscribe(), shutdown));
    Ok(())
}
