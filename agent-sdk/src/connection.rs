//! The WebSocket to the hub: URL checks, the authenticated upgrade request,
//! JSON frames, and the reconnect backoff.
//!
//! Only `ws://` is supported for now: the crate is built without a TLS
//! feature of `tokio-tungstenite`. Put a TLS-terminating proxy in front of
//! the hub's plain listener, or add `rustls-tls-webpki-roots` to the
//! `tokio-tungstenite` dependency and drop the `wss` check in
//! [`normalize_url`] to speak `wss://` directly.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use futures::SinkExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Uri, header};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::AgentError;
use crate::protocol::{AgentMessage, HubMessage};

/// The hub's agent endpoint, appended to a URL given without a path.
pub const AGENT_PATH: &str = "/v1/agents/connect";

/// `error` codes in answer to `hello` after which reconnecting with the same
/// `hello` cannot succeed: the agent stops with [`AgentError::Refused`]
/// instead of retrying. Every other code (e.g. `unavailable`,
/// `duplicate_session`) is retried with backoff.
pub const PERMANENT_HELLO_ERRORS: &[&str] = &[
    "unauthorized",
    "forbidden",
    "name_mismatch",
    "unsupported_protocol",
    "invalid_message",
    "invalid_hello",
];

pub(crate) type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub(crate) type Request = tungstenite::handshake::client::Request;

/// Checks a hub URL and brings it into the form the SDK connects to:
/// `http://` becomes `ws://`, and a URL without a path gets
/// [`AGENT_PATH`]. `wss://`/`https://` are refused (no TLS in this build).
///
/// ```
/// use switchyard_agent::connection::normalize_url;
/// assert_eq!(
///     normalize_url("http://127.0.0.1:8000").unwrap(),
///     "ws://127.0.0.1:8000/v1/agents/connect"
/// );
/// assert!(normalize_url("wss://hub.example.com/v1/agents/connect").is_err());
/// ```
pub fn normalize_url(url: &str) -> Result<String, AgentError> {
    let invalid = |reason: &str| AgentError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|e: tungstenite::http::uri::InvalidUri| invalid(&e.to_string()))?;
    match uri.scheme_str() {
        Some("ws") | Some("http") => {}
        Some("wss") | Some("https") => {
            return Err(invalid(
                "TLS is not supported by this build of the SDK: use ws:// (e.g. behind a TLS-terminating proxy)",
            ));
        }
        Some(other) => return Err(invalid(&format!("unsupported scheme `{other}`, use ws://"))),
        None => {
            return Err(invalid(
                "no scheme: expected ws://host:port/v1/agents/connect",
            ));
        }
    }
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?.as_str();
    let path_and_query = match uri.path_and_query() {
        Some(pq) if pq.path() != "/" && !pq.path().is_empty() => pq.as_str().to_owned(),
        Some(pq) => match pq.query() {
            Some(q) => format!("{AGENT_PATH}?{q}"),
            None => AGENT_PATH.to_owned(),
        },
        None => AGENT_PATH.to_owned(),
    };
    Ok(format!("ws://{authority}{path_and_query}"))
}

/// The upgrade request with `Authorization: Bearer <token>`.
pub(crate) fn build_request(url: &str, token: &str) -> Result<Request, AgentError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| AgentError::InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    let value = HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|_| {
        AgentError::InvalidToken("it contains characters not allowed in an HTTP header".into())
    })?;
    request.headers_mut().insert(header::AUTHORIZATION, value);
    Ok(request)
}

/// Bytes read or written per socket call.
const BUFFER_BYTES: usize = 8 * 1024;

/// Opens the WebSocket. A 401/403 answer to the upgrade is
/// [`AgentError::Unauthorized`] (permanent); anything else is
/// [`AgentError::Connection`] (retried).
pub(crate) async fn open(request: Request, timeout: Duration) -> Result<WsStream, AgentError> {
    // `disable_nagle`: frames are small and latency matters more than packing.
    // Small buffers: tungstenite's default 128 KiB read buffer, zeroed per
    // connection, made a process running thousands of agents spend most of
    // its time clearing memory; frames larger than the buffer still arrive
    // whole (the buffer is the size of one read, not a limit).
    let config = tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(BUFFER_BYTES)
        .write_buffer_size(BUFFER_BYTES);
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    match tokio::time::timeout(timeout, connecting).await {
        Err(_) => Err(AgentError::Connection(format!(
            "no WebSocket upgrade within {timeout:?}"
        ))),
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned());
            if status == 401 || status == 403 {
                Err(AgentError::Unauthorized { status, body })
            } else {
                Err(AgentError::Connection(format!(
                    "the hub answered the upgrade with HTTP {status}{}",
                    body.map(|b| format!(": {}", b.trim())).unwrap_or_default()
                )))
            }
        }
        Ok(Err(e)) => Err(AgentError::Connection(e.to_string())),
    }
}

/// Sends one message as a JSON text frame.
pub(crate) async fn send(ws: &mut WsStream, msg: &AgentMessage) -> Result<(), AgentError> {
    let text = serde_json::to_string(msg)
        .map_err(|e| AgentError::Protocol(format!("cannot encode a message: {e}")))?;
    ws.send(Message::text(text))
        .await
        .map_err(|e| AgentError::Connection(e.to_string()))
}

/// What one received WebSocket frame means to the session.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A protocol message.
    Message(Box<HubMessage>),
    /// A frame to ignore (ping, pong, or one we could not parse: logged).
    Nothing,
    /// The hub closed the socket (with its close reason, if any).
    Closed(String),
}

/// Interprets the next item of the socket stream.
pub(crate) fn decode(frame: Option<Result<Message, tungstenite::Error>>) -> Incoming {
    match frame {
        None => Incoming::Closed("the connection ended".into()),
        Some(Err(e)) => Incoming::Closed(e.to_string()),
        Some(Ok(Message::Text(text))) => match serde_json::from_str::<HubMessage>(&text) {
            Ok(msg) => Incoming::Message(Box::new(msg)),
            Err(e) => {
                tracing::warn!(error = %e, frame = %truncate(&text, 200), "ignoring a frame from the hub that is not a known message");
                Incoming::Nothing
            }
        },
        Some(Ok(Message::Close(frame))) => Incoming::Closed(match frame {
            Some(f) if !f.reason.is_empty() => {
                format!("closed by the hub ({}: {})", f.code, f.reason)
            }
            Some(f) => format!("closed by the hub ({})", f.code),
            None => "closed by the hub".into(),
        }),
        // Pings are answered by tungstenite itself while we keep reading.
        Some(Ok(_)) => Incoming::Nothing,
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Exponential reconnect delays with jitter, capped at `max`.
#[derive(Debug)]
pub(crate) struct Backoff {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let builder = ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        Self {
            delays: builder.build(),
            builder,
            max,
        }
    }

    /// The delay before the next connection attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        // backon's jitter adds up to one more delay on top; keep the cap.
        self.delays.next().unwrap_or(self.max).min(self.max)
    }

    /// Starts over at the minimum delay (after a successful `welcome`).
    pub(crate) fn reset(&mut self) {
        self.delays = self.builder.build();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalised() {
        assert_eq!(
            normalize_url("ws://127.0.0.1:8000/v1/agents/connect").unwrap(),
            "ws://127.0.0.1:8000/v1/agents/connect"
        );
        assert_eq!(
            normalize_url("http://localhost:8000/").unwrap(),
            "ws://localhost:8000/v1/agents/connect"
        );
        assert_eq!(
            normalize_url("ws://hub:9000/custom/path?x=1").unwrap(),
            "ws://hub:9000/custom/path?x=1"
        );
        for bad in [
            "",
            "not a url",
            "ftp://x/",
            "wss://x/",
            "/v1/agents/connect",
        ] {
            assert!(
                matches!(normalize_url(bad), Err(AgentError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn request_carries_bearer_token() {
        let req = build_request("ws://127.0.0.1:1/v1/agents/connect", " tok ").unwrap();
        assert_eq!(req.headers()[header::AUTHORIZATION], "Bearer tok");
        assert!(matches!(
            build_request("ws://127.0.0.1:1/", "bad\ntoken"),
            Err(AgentError::InvalidToken(_))
        ));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
        for _ in 0..20 {
            assert!(b.next_delay() <= Duration::from_secs(1));
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(200));
    }
}
