//! Tails the event log after each commit and publishes what is new.
//!
//! While nobody is subscribed (no stream, no SSE client: the common case
//! under a drain), reading and encoding every event would be wasted: the
//! pump only reads the newest `seq` and moves the bus past it. A subscriber
//! arriving meanwhile either sees the moved position (and starts live after
//! it) or is seen by the second check, and the pump then publishes what it
//! would have skipped (subscribers ignore what they already have by `seq`).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{BusEvent, EventBus};
use crate::store::DynStore;

/// Events read per round trip.
const BATCH: u32 = 1000;

/// Runs until `shutdown`, publishing every event after `last`: the newest
/// event stored at start, which `Server::start` reads before anything can
/// append (history is replayed by streams from the store, not from the bus).
pub async fn run(store: DynStore, bus: EventBus, mut last: i64, shutdown: CancellationToken) {
    let mut commits = store.commits();
    loop {
        if !bus.has_subscribers() {
            match store.last_event_seq().await {
                Ok(newest) => {
                    bus.skip_to(newest);
                    if !bus.has_subscribers() {
                        last = last.max(newest);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "event pump could not read the log"),
            }
        }
        // Everything committed so far, in order.
        loop {
            let batch = match store.list_events(None, last, BATCH).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "event pump could not read the log");
                    break;
                }
            };
            let full = batch.len() == BATCH as usize;
            let labels = match store
                .job_labels(&batch.iter().filter_map(|e| e.job_id).collect::<Vec<_>>())
                .await
            {
                Ok(labels) => labels,
                Err(e) => {
                    tracing::warn!(error = %e, "event pump could not read job labels");
                    Default::default()
                }
            };
            for event in batch {
                last = event.seq;
                let json: Arc<str> = serde_json::to_string(&event).unwrap_or_default().into();
                let labels: Arc<[String]> = event
                    .job_id
                    .and_then(|id| labels.get(&id).cloned())
                    .unwrap_or_default()
                    .into();
                bus.publish(Arc::new(BusEvent {
                    event,
                    labels,
                    json,
                }));
            }
            if !full {
                break;
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = commits.changed() => if changed.is_err() { return },
            // A safety net: writes from another hub node on the same database.
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
