//! One filtered stream of events: replay from the durable log, then live
//! from the bus, in strictly increasing `seq` order, without gaps or
//! duplicates. The SSE endpoints are a thin wrapper around it.
//!
//! Why this order of operations is gap-free: the feed subscribes to the bus
//! *before* it reads the log. An event committed before the last log read
//! is in that read; one committed after it is published to the bus after the
//! subscription, so it is in the receiver. Events in both are dropped by
//! `seq` (the feed's cursor only moves forward).
//!
//! Memory stays bounded per consumer: the replay holds one page, and the bus
//! is a fixed ring shared by everyone. A consumer that falls more than the
//! ring's capacity behind gets [`FeedItem::Lagged`] with the last `seq` it
//! was given, and the feed ends; the client resumes from the log with it.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};

use super::{BusEvent, EventBus};
use crate::domain::{Event, EventType};
use crate::store::events::EventFilter;
use crate::store::{DynStore, StoreError};

/// Events read from the log per round trip.
pub const REPLAY_PAGE: u32 = 1000;

/// What a feed yields.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedItem {
    Event {
        seq: i64,
        kind: String,
        /// The event's JSON (shared with every other subscriber when live).
        json: Arc<str>,
    },
    /// The consumer fell too far behind; resume after `last_seq`.
    Lagged { last_seq: i64 },
}

/// Where a feed starts and when it ends.
#[derive(Debug, Clone)]
pub struct FeedOptions {
    pub filter: EventFilter,
    /// Replay the log after this `seq`; `None` starts live, from now.
    pub after: Option<i64>,
    /// A job stream: end after the job's terminal event (and the events
    /// committed with it).
    pub end_after_terminal: bool,
}

/// A filtered event stream; see the module docs.
pub struct Feed {
    store: DynStore,
    rx: broadcast::Receiver<Arc<BusEvent>>,
    filter: EventFilter,
    /// Everything up to here was delivered or skipped.
    cursor: i64,
    page: VecDeque<Event>,
    /// The log may hold more to replay after `page`.
    replay_more: bool,
    /// Go live once the replay is done.
    live: bool,
    end_after_terminal: bool,
    finished: bool,
}

impl Feed {
    /// Subscribes to the bus at once (before any log read).
    pub fn new(store: DynStore, bus: &EventBus, options: FeedOptions) -> Feed {
        let rx = bus.subscribe();
        let latest = *bus.latest().borrow();
        let (cursor, replay_more) = match options.after {
            Some(after) => (after, true),
            None => (latest, false),
        };
        Feed {
            store,
            rx,
            filter: options.filter,
            cursor,
            page: VecDeque::new(),
            replay_more,
            live: true,
            end_after_terminal: options.end_after_terminal,
            finished: false,
        }
    }

    /// Replay, then end instead of going live (the job has already finished).
    /// Called after [`Feed::new`] so the bus subscription precedes the status
    /// read that decides it: a job that finishes in between still ends the feed.
    pub fn end_after_replay(&mut self) {
        self.live = false;
    }

    /// The next item, or `None` when the feed has ended (its job finished,
    /// the hub is stopping, or after `Lagged`).
    pub async fn next(&mut self) -> Result<Option<FeedItem>, StoreError> {
        if self.finished {
            return Ok(None);
        }
        loop {
            if let Some(event) = self.page.pop_front() {
                if event.seq <= self.cursor {
                    continue;
                }
                self.cursor = event.seq;
                let json: Arc<str> = serde_json::to_string(&event).unwrap_or_default().into();
                self.after_delivery(&event.kind);
                return Ok(Some(FeedItem::Event {
                    seq: event.seq,
                    kind: event.kind,
                    json,
                }));
            }
            if self.replay_more {
                let page = self
                    .store
                    .list_events_matching(&self.filter, self.cursor, REPLAY_PAGE)
                    .await?;
                self.replay_more = page.len() == REPLAY_PAGE as usize;
                self.page = page.into();
                continue;
            }
            if !self.live {
                self.finished = true;
                return Ok(None);
            }
            match self.rx.recv().await {
                Ok(bus) => {
                    let event = &bus.event;
                    if event.seq <= self.cursor {
                        continue;
                    }
                    self.cursor = event.seq;
                    if !self.filter.matches(event, &bus.labels) {
                        continue;
                    }
                    self.after_delivery(&event.kind);
                    return Ok(Some(FeedItem::Event {
                        seq: event.seq,
                        kind: event.kind.clone(),
                        json: bus.json.clone(),
                    }));
                }
                Err(RecvError::Lagged(_)) => {
                    self.finished = true;
                    return Ok(Some(FeedItem::Lagged {
                        last_seq: self.cursor,
                    }));
                }
                Err(RecvError::Closed) => {
                    self.finished = true;
                    return Ok(None);
                }
            }
        }
    }

    /// After a job's terminal event, the events committed in the same
    /// transaction (a cancellation's `task.cancelled`s follow `job.cancelled`)
    /// are read from the log, and then the feed ends.
    fn after_delivery(&mut self, kind: &str) {
        if self.end_after_terminal
            && EventType::parse(kind).is_some_and(EventType::is_terminal_job_event)
        {
            self.live = false;
            self.replay_more = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;

    fn published(bus: &EventBus, seq: i64, job_id: Uuid, kind: EventType) {
        let event = Event {
            seq,
            job_id: Some(job_id),
            kind: kind.as_str().to_owned(),
            payload: serde_json::json!({}),
            created_at: Utc::now(),
            request_id: None,
        };
        let json = serde_json::to_string(&event).unwrap_or_default().into();
        bus.publish(Arc::new(BusEvent {
            event,
            labels: Arc::from(Vec::new()),
            json,
        }));
    }

    async fn feed(bus: &EventBus, job: Uuid, end_after_terminal: bool) -> Feed {
        let store = crate::store::open("sqlite::memory:", 1)
            .await
            .expect("in-memory store");
        let filter = EventFilter {
            job_id: Some(job),
            ..EventFilter::default()
        };
        Feed::new(
            store,
            bus,
            FeedOptions {
                filter,
                after: None,
                end_after_terminal,
            },
        )
    }

    fn seq_of(item: Option<FeedItem>) -> Option<i64> {
        match item {
            Some(FeedItem::Event { seq, .. }) => Some(seq),
            _ => None,
        }
    }

    #[tokio::test]
    async fn live_events_are_filtered_and_deduplicated_and_a_lag_ends_the_feed() {
        let bus = EventBus::new(16);
        let (job, other) = (Uuid::now_v7(), Uuid::now_v7());
        let mut feed = feed(&bus, job, false).await;
        published(&bus, 1, job, EventType::JobCreated);
        published(&bus, 2, other, EventType::JobCreated);
        published(&bus, 1, job, EventType::JobCreated); // seen already
        published(&bus, 3, job, EventType::TaskCreated);
        assert_eq!(seq_of(feed.next().await.ok().flatten()), Some(1));
        assert_eq!(seq_of(feed.next().await.ok().flatten()), Some(3));

        // Far more than the bus keeps, unread: the feed lagged.
        for seq in 4..60 {
            published(&bus, seq, job, EventType::TaskProgress);
        }
        assert_eq!(
            feed.next().await.ok().flatten(),
            Some(FeedItem::Lagged { last_seq: 3 })
        );
        assert_eq!(feed.next().await.ok().flatten(), None, "and then it ends");
    }

    #[tokio::test]
    async fn a_job_feed_ends_after_the_terminal_event() {
        let bus = EventBus::new(16);
        let job = Uuid::now_v7();
        let mut feed = feed(&bus, job, true).await;
        published(&bus, 1, job, EventType::JobCompleted);
        published(&bus, 2, job, EventType::TaskProgress);
        assert_eq!(seq_of(feed.next().await.ok().flatten()), Some(1));
        assert_eq!(feed.next().await.ok().flatten(), None);
    }
}
