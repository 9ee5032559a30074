//! The browser/tool event stream, `GET /v1/stream` (WebSocket), as agreed
//! in the stream protocol (`docs/events.md`).
//!
//! A connection is authenticated before the upgrade (a single-use ticket,
//! see [`crate::events::tickets`], or a bearer token from a non-browser
//! client) or by its first message (`{"type":"auth","token":...}` within
//! [`AUTH_TIMEOUT`]). Then [`connection::Connection`] serves its
//! subscriptions; a writer task owns the socket, sends what the connection
//! queues (a bounded channel of `stream_buffer` frames) and pings every
//! `stream_keepalive`. A write that cannot complete within [`WRITE_TIMEOUT`]
//! (a client that stopped reading altogether) ends the connection.

pub mod connection;
pub mod frames;
pub mod protocol;
pub mod snapshots;

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::auth::{Claims, Permission};
use crate::state::AppState;
use protocol::{ClientMessage, Refusal, code};

/// How long a connection without a ticket has to send its `auth` message.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a single frame may take to reach a client before it is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest message a client may send (they are small JSON objects).
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// What the connection asks its writer to send.
#[derive(Debug)]
pub enum Outbound {
    Text(String),
    /// Close with this code and reason, after everything queued before.
    Close {
        code: u16,
        reason: String,
    },
}

/// Serves one upgraded socket; `claims` is `None` when the client must
/// authenticate with its first message.
pub async fn serve(socket: WebSocket, state: AppState, claims: Option<Claims>) {
    let (sink, mut stream) = socket.split();
    let (out, out_rx) = mpsc::channel(state.settings.get().events.stream_buffer);
    let writer = tokio::spawn(write_loop(
        sink,
        out_rx,
        state.settings.get().events.keepalive,
    ));

    let claims = match claims {
        Some(claims) => Some(claims),
        None => match first_message_auth(&mut stream, &state).await {
            Ok(claims) => Some(claims),
            Err(refusal) => {
                let _ = out.send(Outbound::Text(refusal.frame())).await;
                let _ = out
                    .send(Outbound::Close {
                        code: 1008,
                        reason: refusal.code.to_owned(),
                    })
                    .await;
                None
            }
        },
    };
    if let Some(claims) = claims {
        let span = tracing::info_span!("stream", sub = %claims.sub, role = %claims.role);
        metrics::gauge!("switchyard_stream_connections").increment(1.0);
        connection::Connection::new(state, out.clone())
            .run(&mut stream)
            .instrument(span)
            .await;
        metrics::gauge!("switchyard_stream_connections").decrement(1.0);
    }
    drop(out);
    // The writer flushes what is queued and sends the close frame. Meanwhile
    // keep reading until the client answers the close (or leaves): dropping
    // a socket with unread input (a pong, say) makes the kernel reset the
    // connection, and a reset throws away what the client has not read yet,
    // such as a `lagged` notice. A client that never answers gets one write
    // timeout.
    let abort = writer.abort_handle();
    let drain = async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let closed = tokio::time::timeout(WRITE_TIMEOUT, futures::future::join(writer, drain)).await;
    if closed.is_err() {
        abort.abort();
    }
}

/// Waits for `{"type":"auth","token":...}` and checks the token may read.
async fn first_message_auth(
    stream: &mut SplitStream<WebSocket>,
    state: &AppState,
) -> Result<Claims, Refusal> {
    let deadline = tokio::time::Instant::now() + AUTH_TIMEOUT;
    loop {
        let message = tokio::select! {
            () = state.shutdown.cancelled() => {
                return Err(Refusal::new(code::UNAUTHORIZED, "the hub is shutting down"));
            }
            next = tokio::time::timeout_at(deadline, stream.next()) => next,
        };
        let text = match message {
            Err(_) => {
                return Err(Refusal::new(
                    code::UNAUTHORIZED,
                    format!(
                        "no `auth` message within {} s; send {{\"type\":\"auth\",\"token\":\"<jwt>\"}} first, or connect with a ticket",
                        AUTH_TIMEOUT.as_secs()
                    ),
                ));
            }
            Ok(None | Some(Err(_))) => {
                return Err(Refusal::new(code::UNAUTHORIZED, "the connection closed"));
            }
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(_))) => {
                return Err(Refusal::new(
                    code::UNAUTHORIZED,
                    "the first message must be a JSON text frame {\"type\":\"auth\",\"token\":\"<jwt>\"}",
                ));
            }
        };
        return match protocol::parse(text.as_str()) {
            Ok(ClientMessage::Auth { token }) => match state.keys.verify(token.trim()) {
                Ok(claims) if claims.role.allows(Permission::Read) => Ok(claims),
                Ok(claims) => Err(Refusal::new(
                    code::UNAUTHORIZED,
                    format!(
                        "role `{}` may not read events; it needs the viewer, operator or admin role",
                        claims.role
                    ),
                )),
                Err(e) => Err(Refusal::new(code::UNAUTHORIZED, e.to_string())),
            },
            Ok(_) | Err(_) => Err(Refusal::new(
                code::UNAUTHORIZED,
                "the first message must be {\"type\":\"auth\",\"token\":\"<jwt>\"} (or connect with a ticket from POST /v1/stream/tickets)",
            )),
        };
    }
}

/// Owns the socket's sending half: frames in order, pings, the final close.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Outbound>,
    ping_every: Duration,
) {
    let mut ping = tokio::time::interval(ping_every);
    ping.tick().await;
    loop {
        let message = tokio::select! {
            next = rx.recv() => match next {
                Some(Outbound::Text(text)) => Message::Text(text.into()),
                Some(Outbound::Close { code, reason }) => {
                    let close = Message::Close(Some(CloseFrame { code, reason: reason.into() }));
                    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(close)).await;
                    break;
                }
                None => {
                    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Close(None))).await;
                    break;
                }
            },
            _ = ping.tick() => Message::Ping(Default::default()),
        };
        match tokio::time::timeout(WRITE_TIMEOUT, sink.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::info!("stream client stopped reading; dropping the connection");
                break;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
}
