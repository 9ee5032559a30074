//! The tailer: turns committed events into queued deliveries.
//!
//! It follows the event log after a persisted cursor (`webhook_cursor`),
//! woken by every store commit (with a one-second safety tick for writes of
//! other hub nodes), matches each event against the subscriptions and, in one
//! transaction, queues the deliveries and advances the cursor. A crash
//! between reading and committing just means the same events are matched
//! again: the queue's unique key makes that harmless.
//!
//! When nothing matched, the cursor is only written every few seconds (not on
//! every commit): rematching events that matched nothing before queues
//! nothing, so this only saves writes. With no enabled subscription at all,
//! the events are not even read: the cursor jumps to the end of the log.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::matching::{deliveries_for, labels_for, needs_labels};
use crate::store::{DynStore, StoreError};

/// Events read per round trip.
const BATCH: u32 = 1000;
/// The safety tick.
const TICK: Duration = Duration::from_secs(1);
/// How often a cursor that moved without queueing anything is saved.
const SAVE_EVERY: Duration = Duration::from_secs(5);

struct Tailer {
    store: DynStore,
    /// Tells the deliverer something was queued.
    queued: Arc<Notify>,
    /// Matched up to here (in memory).
    cursor: i64,
    /// Saved up to here.
    saved: i64,
    saved_at: Instant,
}

/// Runs until `shutdown`.
pub async fn run(store: DynStore, queued: Arc<Notify>, shutdown: CancellationToken) {
    let mut commits = store.commits();
    let cursor = loop {
        match store.webhook_cursor().await {
            Ok(seq) => break seq,
            Err(e) => {
                tracing::warn!(error = %e, "webhook tailer cannot read its cursor yet; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(TICK) => {}
                }
            }
        }
    };
    let mut tailer = Tailer {
        store,
        queued,
        cursor,
        saved: cursor,
        saved_at: Instant::now(),
    };
    loop {
        if let Err(e) = tailer.catch_up().await {
            tracing::warn!(error = %e, cursor = tailer.cursor, "webhook tailer could not queue deliveries; retrying");
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = commits.changed() => if changed.is_err() { break },
            () = tokio::time::sleep(TICK) => {}
        }
    }
    if tailer.cursor > tailer.saved {
        // Best effort: the store may already be closing.
        let _ = tailer
            .store
            .enqueue_webhook_deliveries(&[], Some(tailer.cursor))
            .await;
    }
}

impl Tailer {
    /// Matches everything committed so far.
    async fn catch_up(&mut self) -> Result<(), StoreError> {
        loop {
            // Without an enabled subscription there is nothing to match: only
            // the cursor moves, without reading the events. The log's end is
            // read before the subscriptions, so one created after that read
            // is newer than every event it skips.
            let end = self.store.last_event_seq().await?;
            if end <= self.cursor {
                break;
            }
            if !self.store.list_webhooks().await?.iter().any(|w| w.enabled) {
                self.cursor = end;
                if self.saved_at.elapsed() >= SAVE_EVERY {
                    self.store
                        .enqueue_webhook_deliveries(&[], Some(end))
                        .await?;
                    self.saved = end;
                    self.saved_at = Instant::now();
                }
                break;
            }
            let events = self.store.list_events(None, self.cursor, BATCH).await?;
            let Some(last) = events.last().map(|e| e.seq) else {
                break;
            };
            // Read after the events: a subscription created before one of
            // them committed is in this list.
            let webhooks = self.store.list_webhooks().await?;
            let active: Vec<_> = webhooks.iter().filter(|w| w.enabled).collect();
            let deliveries = if active.is_empty() {
                Vec::new()
            } else {
                let labels =
                    labels_for(&self.store, &events, needs_labels(active.iter().copied())).await?;
                deliveries_for(&events, &active, &labels, 0, true)
            };
            if !deliveries.is_empty() || self.saved_at.elapsed() >= SAVE_EVERY {
                let queued = self
                    .store
                    .enqueue_webhook_deliveries(&deliveries, Some(last))
                    .await?;
                self.saved = last;
                self.saved_at = Instant::now();
                if queued > 0 {
                    tracing::debug!(queued, up_to = last, "webhook deliveries queued");
                    self.queued.notify_one();
                }
            }
            self.cursor = last;
            if events.len() < BATCH as usize {
                break;
            }
        }
        Ok(())
    }
}
