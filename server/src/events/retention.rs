//! Event retention: deletes events older than `event_retention`.
//!
//! The log is append-only and grows with every transition, so old events are
//! deleted by a background task, off the hot path: at start-up and then
//! hourly, in batches of [`BATCH`] (one short transaction each, with a pause
//! between batches so writers are never held up for long). Streams that
//! resume from a `seq` older than the retention simply get what is left.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::config::Live;
use crate::store::{DynStore, StoreError};

/// Events deleted per transaction.
pub const BATCH: u32 = 10_000;

/// Time between two retention passes.
pub const EVERY: Duration = Duration::from_secs(3600);

/// Pause between two batches of one pass.
pub const PAUSE: Duration = Duration::from_millis(100);

/// Runs a pass now and then every [`EVERY`], until `shutdown`, with the
/// retentions in force at each pass: events, and finished webhook
/// deliveries with their attempts (`webhooks.delivery_retention`).
pub async fn run(
    store: DynStore,
    live: Live,
    node: std::sync::Arc<crate::cluster::Node>,
    shutdown: CancellationToken,
) {
    loop {
        if !node.leads() {
            // Another node of the cluster runs retention.
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(live.get().node_timeout) => continue,
            }
        }
        let settings = live.get();
        let retention = settings.events.retention;
        match purge(&store, retention, &shutdown).await {
            Ok(0) => {}
            Ok(deleted) => {
                tracing::info!(deleted, retention = ?retention, "deleted old events");
            }
            Err(e) => {
                tracing::warn!(error = %e, "event retention failed; retrying at the next pass")
            }
        }
        let retention = settings.webhooks.delivery_retention;
        match purge_deliveries(&store, retention, &shutdown).await {
            Ok(0) => {}
            Ok(deleted) => {
                tracing::info!(deleted, retention = ?retention, "deleted old webhook deliveries");
            }
            Err(e) => {
                tracing::warn!(error = %e, "webhook delivery retention failed; retrying at the next pass")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// One pass: deletes every event created more than `retention` ago, batch
/// by batch; returns how many it deleted.
pub async fn purge(
    store: &DynStore,
    retention: Duration,
    shutdown: &CancellationToken,
) -> Result<u64, StoreError> {
    let deleted = in_batches(retention, shutdown, |cutoff| {
        store.delete_events_before(cutoff, BATCH)
    })
    .await?;
    metrics::counter!("switchyard_events_deleted_total").increment(deleted);
    Ok(deleted)
}

/// One pass over webhook deliveries: deletes the delivered and failed ones
/// last changed more than `retention` ago, with their attempts.
pub async fn purge_deliveries(
    store: &DynStore,
    retention: Duration,
    shutdown: &CancellationToken,
) -> Result<u64, StoreError> {
    let deleted = in_batches(retention, shutdown, |cutoff| {
        store.delete_webhook_deliveries_before(cutoff, BATCH)
    })
    .await?;
    metrics::counter!("switchyard_webhook_deliveries_deleted_total").increment(deleted);
    Ok(deleted)
}

/// Calls `delete(cutoff)` until it deletes less than a batch, pausing
/// between batches; returns the total.
async fn in_batches<F, Fut>(
    retention: Duration,
    shutdown: &CancellationToken,
    delete: F,
) -> Result<u64, StoreError>
where
    F: Fn(chrono::DateTime<Utc>) -> Fut,
    Fut: std::future::Future<Output = Result<u64, StoreError>>,
{
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let cutoff = Utc::now()
        .checked_sub_signed(retention)
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    let mut total = 0;
    loop {
        let deleted = delete(cutoff).await?;
        total += deleted;
        if deleted < u64::from(BATCH) {
            return Ok(total);
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(total),
            () = tokio::time::sleep(PAUSE) => {}
        }
    }
}
