//! One agent connection: handshake, then a read loop that records each of the
//! agent's transitions in the store before telling the dispatcher.
//!
//! The session processes its agent's messages in order: it queues each
//! message's write to the store without waiting for the commit (see
//! `in_flight`), and the store applies queued writes in order, so an agent's
//! accept is always recorded before its complete. The store's
//! conditional updates (status + attempt + agent) are the fence: a message
//! about an attempt that is no longer current changes nothing and gets an
//! `error` frame back.

mod handshake;
mod in_flight;
mod messages;
mod socket_error;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use switchyard_agent::protocol::{ErrorMessage, HubMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::HubHandle;
use super::assign::frame;
use super::command::{Command, Outbound};
use crate::auth::Claims;
use crate::store::DynStore;

/// Frames waiting for a slow agent before it is disconnected.
const OUTBOUND_CAPACITY: usize = 1024;

/// What a session needs from the hub.
pub struct SessionContext {
    pub hub: HubHandle,
    pub store: DynStore,
    pub claims: Claims,
    pub shutdown: CancellationToken,
}

/// A task this session's agent holds in the store (accepted, or resumed).
struct Held {
    attempt: i32,
    /// `None` until the accept that made this session hold it has committed.
    capability: Option<String>,
    items: Vec<(Uuid, serde_json::Value)>,
}

/// An established session.
struct Session {
    agent_id: Uuid,
    session_id: Uuid,
    hub: HubHandle,
    store: DynStore,
    out: mpsc::Sender<Outbound>,
    running: HashMap<Uuid, Held>,
    /// Writes queued to the store whose results are not settled yet.
    in_flight: in_flight::InFlight,
    output_schemas: HashMap<String, Option<Arc<jsonschema::Validator>>>,
    limiter: DefaultDirectRateLimiter,
    /// When the dispatcher was last told the agent is alive (`Command::Seen`):
    /// liveness is judged in heartbeat intervals, so one hop per frame (two
    /// per task) would be wasted on it.
    seen_sent: Option<tokio::time::Instant>,
}

/// Runs one agent connection to its end.
pub async fn run(socket: WebSocket, ctx: SessionContext) {
    let (sink, mut stream) = socket.split();
    let (out, out_rx) = mpsc::channel::<Outbound>(OUTBOUND_CAPACITY);
    let ping_every = ctx.hub.settings.heartbeat_interval;
    let writer = tokio::spawn(write_loop(sink, out_rx, ping_every));

    let session = tokio::select! {
        session = handshake::handshake(&mut stream, &ctx, out.clone()) => session,
        () = ctx.shutdown.cancelled() => None,
    };
    let Some(mut session) = session else {
        drop(out);
        finish_writer(writer).await;
        return;
    };
    let (agent_id, session_id) = (session.agent_id, session.session_id);
    let clean = tokio::select! {
        clean = session.read_loop(&mut stream) => clean,
        () = ctx.shutdown.cancelled() => false,
    };
    // What the agent sent before it left is still being committed; the
    // dispatcher hears of it before it hears that the agent left.
    let _ = tokio::time::timeout(Duration::from_secs(10), session.settle_all()).await;
    ctx.hub.send(Command::Disconnected {
        agent_id,
        session_id,
        clean,
    });
    drop(session);
    drop(out);
    finish_writer(writer).await;
}

async fn finish_writer(writer: tokio::task::JoinHandle<()>) {
    let abort = writer.abort_handle();
    if tokio::time::timeout(Duration::from_secs(2), writer)
        .await
        .is_err()
    {
        abort.abort();
    }
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Outbound>,
    ping_every: Duration,
) {
    let mut ping = tokio::time::interval(ping_every);
    ping.tick().await;
    loop {
        tokio::select! {
            next = rx.recv() => match next {
                Some(Outbound::Frame(text)) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close { code, reason }) => {
                    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                    break;
                }
                None => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            },
            _ = ping.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = sink.close().await;
}

/// Sends an `error` frame.
fn send_error(
    out: &mpsc::Sender<Outbound>,
    code: &str,
    message: impl Into<String>,
    task_id: Option<Uuid>,
) {
    let error = HubMessage::Error(ErrorMessage {
        code: code.to_owned(),
        message: message.into(),
        task_id,
    });
    let _ = out.try_send(Outbound::Frame(frame(&error)));
}

/// Answers a broken socket: an `error` frame, then the close it calls for.
fn close_with(out: &mpsc::Sender<Outbound>, closing: socket_error::Closing) {
    send_error(out, closing.error_code, closing.message, None);
    let _ = out.try_send(Outbound::Close {
        code: closing.close_code,
        reason: closing.reason,
    });
}

fn rate_limiter(per_second: u32) -> DefaultDirectRateLimiter {
    let rate = std::num::NonZeroU32::new(per_second.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    let burst = std::num::NonZeroU32::new(per_second.saturating_mul(2).max(1)).unwrap_or(rate);
    RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
}
