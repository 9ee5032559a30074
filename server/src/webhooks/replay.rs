//! Replays: queue a subscription's matching events again, from a sequence
//! number or a time up to the newest event, as a new generation of
//! deliveries (so events delivered before are sent again, with the same
//! `webhook-id`: a receiver that de-duplicates sees them once).

use chrono::{DateTime, Utc};

use super::matching::{deliveries_for, labels_for};
use super::model::Webhook;
use crate::store::{DynStore, StoreError};

/// Deliveries one replay request queues at most; a larger replay stops there
/// and says where to continue.
pub const MAX_REPLAY: u64 = 50_000;

/// Events read per round trip.
const BATCH: u32 = 1000;

/// Where a replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// Events with a larger sequence number.
    Seq(i64),
    /// Events created at or after this time.
    Time(DateTime<Utc>),
}

/// What a replay queued.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ReplayOutcome {
    /// The replay generation of the queued deliveries.
    pub generation: i32,
    /// Events after this sequence number were considered...
    pub after_seq: i64,
    /// ...up to this one (the newest when the replay started).
    pub until_seq: i64,
    /// Deliveries queued.
    pub queued: u64,
    /// False when the replay stopped at the limit; replay again with
    /// `since_seq = resume_since_seq` for the rest.
    pub complete: bool,
    pub resume_since_seq: Option<i64>,
}

/// Queues the replay. The webhook's filters apply; its state does not (a
/// disabled subscription's replayed deliveries wait until it is enabled).
pub async fn replay(
    store: &DynStore,
    webhook: &Webhook,
    from: ReplayFrom,
) -> Result<ReplayOutcome, StoreError> {
    let after_seq = match from {
        ReplayFrom::Seq(seq) => seq.max(0),
        ReplayFrom::Time(at) => store.event_seq_before(at).await?,
    };
    let until_seq = store.last_event_seq().await?;
    let generation = store.next_replay_generation(webhook.id).await?;
    let mut cursor = after_seq;
    let mut queued = 0;
    while cursor < until_seq {
        let mut events = store.list_events(None, cursor, BATCH).await?;
        events.retain(|e| e.seq <= until_seq);
        let Some(last) = events.last().map(|e| e.seq) else {
            break;
        };
        let labels = labels_for(store, &events, webhook.label.is_some()).await?;
        let deliveries = deliveries_for(&events, &[webhook], &labels, generation, false);
        queued += store.enqueue_webhook_deliveries(&deliveries, None).await?;
        cursor = last;
        if queued >= MAX_REPLAY && cursor < until_seq {
            return Ok(ReplayOutcome {
                generation,
                after_seq,
                until_seq,
                queued,
                complete: false,
                resume_since_seq: Some(cursor),
            });
        }
    }
    Ok(ReplayOutcome {
        generation,
        after_seq,
        until_seq,
        queued,
        complete: true,
        resume_since_seq: None,
    })
}
