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
/// retention in force at each pass.
pub async fn run(store: DynStore, live: Live, shutdown: CancellationToken) {
    loop {
        let retention = live.get().events.retention;
        match purge(&store, retention, &shutdown).await {
            Ok(0) => {}
            Ok(deleted) => {
                tracing::info!(deleted, retention = ?retention, "deleted old events");
            }
            Err(e) => {
                tracing::warn!(error = %e, "event retention failed; retrying at the next pass")
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
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let cutoff = Utc::now()
        .checked_sub_signed(retention)
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    let mut total = 0;
    loop {
        let deleted = store.delete_events_before(cutoff, BATCH).await?;
        total += deleted;
        metrics::counter!("switchyard_events_deleted_total").increment(deleted);
        if deleted < u64::from(BATCH) {
            return Ok(total);
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(total),
            () = tokio::time::sleep(PAUSE) => {}
        }
    }
}
