//! One authenticated stream connection: its subscriptions and the loop that
//! serves them.
//!
//! The connection is one task. It holds one bus receiver for all its event
//! subscriptions (taken before any replay, see `events::feed` for why that is
//! gap-free) and handles one thing at a time: a client message (a subscribe
//! with `after` replays from the log right there), a bus event (delivered to
//! each matching subscription, so live events go out in global `seq` order),
//! or a snapshot tick. Each subscription keeps a cursor (everything up to it
//! was delivered or skipped), so a replayed subscription drops the live
//! events it already has.
//!
//! Frames go to the writer task through a bounded channel
//! (`stream_buffer`). When the client reads slowly the channel fills, this
//! loop waits, its bus receiver falls behind, and once it is more than the
//! bus capacity behind it gets `Lagged`: the client is sent `lagged` with its
//! resume position and the connection closes (1008). Nothing here grows with
//! a slow client, and nobody else waits for it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures::StreamExt;
use futures::stream::SplitStream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::Outbound;
use super::protocol::{self, ClientMessage, Refusal, Topic, code};
use super::snapshots::{self, Stats};
use crate::domain::EventType;
use crate::events::BusEvent;
use crate::events::feed::REPLAY_PAGE;
use crate::state::AppState;
use crate::store::events::EventFilter;

/// Subscriptions one connection may hold.
pub const MAX_SUBSCRIPTIONS: usize = 64;

/// How often `agents` and `stats` snapshots are built.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

struct Subscription {
    id: String,
    kind: Kind,
}

enum Kind {
    Events { filter: EventFilter, cursor: i64 },
    Agents { last: Option<String> },
    Stats,
}

/// Why the loop stopped.
enum End {
    /// The client left (or the writer gave up on it).
    Gone,
    /// Close with this code and reason after the queued frames.
    Close(u16, String),
}

pub struct Connection {
    state: AppState,
    out: mpsc::Sender<Outbound>,
    subs: Vec<Subscription>,
    /// Taken when the first event subscription arrives, dropped with the last.
    rx: Option<broadcast::Receiver<Arc<BusEvent>>>,
    /// The last bus `seq` this connection processed.
    position: i64,
}

/// What woke the loop.
enum Wake {
    Shutdown,
    WriterGone,
    Client(Option<Result<Message, axum::Error>>),
    Bus(Result<Arc<BusEvent>, RecvError>),
    Tick,
}

impl Connection {
    pub fn new(state: AppState, out: mpsc::Sender<Outbound>) -> Connection {
        Connection {
            state,
            out,
            subs: Vec::new(),
            rx: None,
            position: 0,
        }
    }

    /// Serves the connection until the client leaves, lags or the hub stops.
    pub async fn run(mut self, stream: &mut SplitStream<WebSocket>) {
        let mut tick = tokio::time::interval(SNAPSHOT_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let shutdown = self.state.shutdown.clone();
        let end = loop {
            let snapshots = self
                .subs
                .iter()
                .any(|s| matches!(s.kind, Kind::Agents { .. } | Kind::Stats));
            let wake = tokio::select! {
                () = shutdown.cancelled() => Wake::Shutdown,
                () = self.out.closed() => Wake::WriterGone,
                message = stream.next() => Wake::Client(message),
                event = recv(&mut self.rx), if self.rx.is_some() => Wake::Bus(event),
                _ = tick.tick(), if snapshots => Wake::Tick,
            };
            let step = match wake {
                Wake::Shutdown => Err(End::Close(1001, "the hub is shutting down".into())),
                Wake::WriterGone | Wake::Client(None | Some(Err(_))) => Err(End::Gone),
                Wake::Client(Some(Ok(message))) => self.on_client(message).await,
                Wake::Bus(event) => self.on_bus(event).await,
                Wake::Tick => self.on_tick().await,
            };
            if let Err(end) = step {
                break end;
            }
        };
        if let End::Close(code, reason) = end {
            let _ = self.out.send(Outbound::Close { code, reason }).await;
        }
    }

    async fn send(&self, frame: String) -> Result<(), End> {
        self.out
            .send(Outbound::Text(frame))
            .await
            .map_err(|_| End::Gone)
    }

    async fn refuse(&self, refusal: Refusal) -> Result<(), End> {
        self.send(refusal.frame()).await
    }

    /// The job a `job:`/`task:` topic's `id` belongs to, or `None` once the
    /// subscription was refused (unknown, or the store could not say).
    async fn known(
        &self,
        what: &str,
        id: uuid::Uuid,
        unknown: &'static str,
        found: Result<Option<uuid::Uuid>, crate::store::StoreError>,
    ) -> Result<Option<uuid::Uuid>, End> {
        match found {
            Ok(Some(job_id)) => Ok(Some(job_id)),
            Ok(None) => {
                self.refuse(Refusal::new(unknown, format!("{what} {id} does not exist")))
                    .await?;
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(%id, error = %e, "stream could not look a {what} up");
                self.refuse(Refusal::new(
                    code::REPLAY_FAILED,
                    format!("the hub could not read the {what}; subscribe again shortly"),
                ))
                .await?;
                Ok(None)
            }
        }
    }

    async fn on_client(&mut self, message: Message) -> Result<(), End> {
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                return self
                    .refuse(Refusal::new(
                        code::INVALID_MESSAGE,
                        "binary frames are not supported; send JSON text frames",
                    ))
                    .await;
            }
            Message::Close(_) => return Err(End::Gone),
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
        };
        match protocol::parse(text.as_str()) {
            Err(refusal) => self.refuse(refusal).await,
            Ok(ClientMessage::Auth { .. }) => {
                self.refuse(Refusal::new(
                    code::ALREADY_AUTHENTICATED,
                    "this connection is already authenticated",
                ))
                .await
            }
            Ok(ClientMessage::Subscribe {
                id,
                topic,
                after,
                types,
            }) => self.subscribe(id, topic, after, types).await,
            Ok(ClientMessage::Unsubscribe { id }) => self.unsubscribe(&id).await,
        }
    }

    async fn subscribe(
        &mut self,
        id: String,
        topic: Topic,
        after: Option<i64>,
        types: Vec<EventType>,
    ) -> Result<(), End> {
        if self.subs.iter().any(|s| s.id == id) {
            return self
                .refuse(Refusal::new(
                    code::DUPLICATE_SUBSCRIPTION,
                    format!(
                        "subscription `{id}` already exists; unsubscribe first or pick another id"
                    ),
                ))
                .await;
        }
        if self.subs.len() >= MAX_SUBSCRIPTIONS {
            return self
                .refuse(Refusal::new(
                    code::TOO_MANY_SUBSCRIPTIONS,
                    format!("a connection holds at most {MAX_SUBSCRIPTIONS} subscriptions; unsubscribe from some first"),
                ))
                .await;
        }
        let filter = match topic {
            Topic::All => EventFilter {
                types,
                ..EventFilter::default()
            },
            Topic::Job(job_id) => {
                let found = self.state.store.get_job(job_id).await;
                let found = found.map(|job| job.map(|j| j.id));
                let Some(job_id) = self.known("job", job_id, code::UNKNOWN_JOB, found).await?
                else {
                    return Ok(());
                };
                EventFilter {
                    job_id: Some(job_id),
                    types,
                    ..EventFilter::default()
                }
            }
            Topic::Task(task_id) => {
                let found = self.state.store.get_task(task_id).await;
                let found = found.map(|task| task.map(|t| t.job_id));
                let Some(job_id) = self
                    .known("task", task_id, code::UNKNOWN_TASK, found)
                    .await?
                else {
                    return Ok(());
                };
                EventFilter {
                    job_id: Some(job_id),
                    task_id: Some(task_id),
                    types,
                    ..EventFilter::default()
                }
            }
            Topic::Agents => {
                let agents = snapshots::agents_json(&self.state.hub);
                self.send(protocol::subscribed(&id, topic, self.latest()))
                    .await?;
                self.send(snapshots::agents_frame(&id, &agents)).await?;
                self.subs.push(Subscription {
                    id,
                    kind: Kind::Agents { last: Some(agents) },
                });
                return Ok(());
            }
            Topic::Stats => {
                self.send(protocol::subscribed(&id, topic, self.latest()))
                    .await?;
                let stats = Stats::now(&self.state.hub, self.latest());
                self.send(stats.frame(&id)).await?;
                self.subs.push(Subscription {
                    id,
                    kind: Kind::Stats,
                });
                return Ok(());
            }
        };

        // The bus first, then the log (see the module docs).
        if self.rx.is_none() {
            self.rx = Some(self.state.bus.subscribe());
            self.position = *self.state.bus.latest().borrow();
        }
        let latest = self.latest();
        self.send(protocol::subscribed(&id, topic, latest)).await?;
        let cursor = match after {
            None => latest,
            Some(after) => match self.replay(&id, &filter, after).await? {
                Ok(cursor) => cursor,
                Err(cursor) => {
                    self.release_bus_if_unused();
                    return self
                        .refuse(Refusal::new(
                            code::REPLAY_FAILED,
                            format!("the hub could not read the event log for `{id}`; subscribe again with after = {cursor}"),
                        ))
                        .await;
                }
            },
        };
        tracing::debug!(subscription = %id, topic = %topic.name(), cursor, "stream subscription");
        self.subs.push(Subscription {
            id,
            kind: Kind::Events { filter, cursor },
        });
        Ok(())
    }

    /// Sends the logged events after `after`; `Ok(Ok(cursor))` when done,
    /// `Ok(Err(cursor))` when the log could not be read.
    async fn replay(
        &self,
        id: &str,
        filter: &EventFilter,
        after: i64,
    ) -> Result<Result<i64, i64>, End> {
        let mut cursor = after;
        loop {
            let page = match self
                .state
                .store
                .list_events_matching(filter, cursor, REPLAY_PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "stream could not replay the event log");
                    return Ok(Err(cursor));
                }
            };
            let more = page.len() == REPLAY_PAGE as usize;
            for event in page {
                let json = serde_json::to_string(&event).unwrap_or_default();
                self.send(protocol::event(id, &json)).await?;
                cursor = event.seq;
            }
            if !more {
                return Ok(Ok(cursor));
            }
        }
    }

    async fn unsubscribe(&mut self, id: &str) -> Result<(), End> {
        let before = self.subs.len();
        self.subs.retain(|s| s.id != id);
        if self.subs.len() == before {
            return self
                .refuse(Refusal::new(
                    code::UNKNOWN_SUBSCRIPTION,
                    format!("there is no subscription `{id}` on this connection"),
                ))
                .await;
        }
        self.release_bus_if_unused();
        Ok(())
    }

    /// Without event subscriptions the bus receiver is not read any more:
    /// let it go rather than have it lag.
    fn release_bus_if_unused(&mut self) {
        if !self
            .subs
            .iter()
            .any(|s| matches!(s.kind, Kind::Events { .. }))
        {
            self.rx = None;
        }
    }

    async fn on_bus(&mut self, event: Result<Arc<BusEvent>, RecvError>) -> Result<(), End> {
        let bus = match event {
            Ok(bus) => bus,
            Err(RecvError::Closed) => {
                return Err(End::Close(1001, "the hub is shutting down".into()));
            }
            Err(RecvError::Lagged(missed)) => {
                let last_seq = self
                    .subs
                    .iter()
                    .filter_map(|s| match s.kind {
                        Kind::Events { cursor, .. } => Some(cursor),
                        _ => None,
                    })
                    .min()
                    .unwrap_or(self.position);
                tracing::info!(
                    last_seq,
                    missed,
                    "stream client too slow; closing it with `lagged`"
                );
                metrics::counter!("switchyard_stream_lagged_total", "kind" => "websocket")
                    .increment(1);
                self.send(protocol::lagged(last_seq)).await?;
                return Err(End::Close(
                    1008,
                    format!("too slow; resume with after = {last_seq}"),
                ));
            }
        };
        let seq = bus.event.seq;
        self.position = self.position.max(seq);
        for i in 0..self.subs.len() {
            let sub = &mut self.subs[i];
            let frame = match &mut sub.kind {
                Kind::Events { filter, cursor } if seq > *cursor => {
                    *cursor = seq;
                    filter
                        .matches(&bus.event, &bus.labels)
                        .then(|| protocol::event(&sub.id, &bus.json))
                }
                _ => None,
            };
            if let Some(frame) = frame {
                self.send(frame).await?;
            }
        }
        Ok(())
    }

    async fn on_tick(&mut self) -> Result<(), End> {
        let latest = self.latest();
        let mut agents: Option<String> = None;
        let mut stats: Option<Stats> = None;
        for i in 0..self.subs.len() {
            let sub = &mut self.subs[i];
            let frame = match &mut sub.kind {
                Kind::Agents { last } => {
                    let now = agents.get_or_insert_with(|| snapshots::agents_json(&self.state.hub));
                    if last.as_deref() == Some(now.as_str()) {
                        None
                    } else {
                        *last = Some(now.clone());
                        Some(snapshots::agents_frame(&sub.id, now))
                    }
                }
                Kind::Stats => Some(
                    stats
                        .get_or_insert_with(|| Stats::now(&self.state.hub, latest))
                        .frame(&sub.id),
                ),
                Kind::Events { .. } => None,
            };
            if let Some(frame) = frame {
                self.send(frame).await?;
            }
        }
        Ok(())
    }

    /// The newest `seq` this connection knows of.
    fn latest(&self) -> i64 {
        self.position.max(*self.state.bus.latest().borrow())
    }
}

async fn recv(
    rx: &mut Option<broadcast::Receiver<Arc<BusEvent>>>,
) -> Result<Arc<BusEvent>, RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
