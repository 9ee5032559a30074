//! The in-process event bus: a bounded broadcast of committed events.
//!
//! A subscriber that falls more than the channel's capacity behind gets
//! `Lagged` from the receiver: it must tell its client where it stopped and
//! let it resume from the durable log. The bus never blocks the publisher.

use std::sync::Arc;

use tokio::sync::{broadcast, watch};

use crate::domain::Event;

/// One committed event with its JSON encoding, shared by every subscriber.
#[derive(Debug)]
pub struct BusEvent {
    pub event: Event,
    /// The job's labels (empty for events without a job).
    pub labels: Arc<[String]>,
    /// `serde_json` encoding of `event`, made once.
    pub json: Arc<str>,
}

#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<BusEvent>>,
    latest: watch::Sender<i64>,
}

impl EventBus {
    /// A bus keeping up to `capacity` events for slow subscribers.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Self {
            tx,
            latest: watch::Sender::new(0),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BusEvent>> {
        self.tx.subscribe()
    }

    /// The sequence number of the newest published event.
    pub fn latest(&self) -> watch::Receiver<i64> {
        self.latest.subscribe()
    }

    /// The newest event stored when the hub started; the pump publishes
    /// what follows it.
    pub(crate) fn start_at(&self, seq: i64) {
        self.latest.send_replace(seq);
    }

    /// Whether anyone is subscribed right now.
    pub(crate) fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Moves the newest position to `seq` without publishing what came
    /// before it: nobody was subscribed to receive it, and whoever
    /// subscribes from now on starts live after `seq` (history comes from
    /// the store).
    pub(crate) fn skip_to(&self, seq: i64) {
        self.latest.send_if_modified(|latest| {
            let moved = seq > *latest;
            *latest = (*latest).max(seq);
            moved
        });
    }

    pub(crate) fn publish(&self, event: Arc<BusEvent>) {
        let seq = event.event.seq;
        // No subscriber is fine: nobody is listening right now.
        let _ = self.tx.send(event);
        self.latest.send_replace(seq);
    }
}
