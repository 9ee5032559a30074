//! Server-Sent Events: a [`Feed`] rendered as `id: <seq>`, `event: <type>`,
//! `data: <event JSON>`, with keep-alive comments, ending when the feed ends
//! or the hub shuts down.
//!
//! A lagging consumer gets `event: lagged` with `data: {"last_seq": N}` and
//! the stream ends; it reconnects with `Last-Event-ID: N` (or `?after=N`).

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::feed::{Feed, FeedItem};

/// The SSE event name of the lag notice.
pub const LAGGED: &str = "lagged";

/// The SSE response for `feed`.
pub fn response(
    feed: Feed,
    keepalive: Duration,
    shutdown: CancellationToken,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        match feed.next().await {
            Ok(Some(item)) => Some((Ok(render(item)), feed)),
            Ok(None) => None,
            Err(e) => {
                // The client resumes from its last id when it reconnects.
                tracing::warn!(error = %e, "an event stream could not read the event log; ending it");
                None
            }
        }
    })
    .take_until(shutdown.cancelled_owned());
    Sse::new(stream).keep_alive(KeepAlive::new().interval(keepalive))
}

fn render(item: FeedItem) -> SseEvent {
    match item {
        FeedItem::Event { seq, kind, json } => SseEvent::default()
            .id(seq.to_string())
            .event(kind)
            .data(&*json),
        FeedItem::Lagged { last_seq } => SseEvent::default()
            .event(LAGGED)
            .data(serde_json::json!({ "last_seq": last_seq }).to_string()),
    }
}
