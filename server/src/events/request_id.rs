//! The request id of the HTTP request a store write runs for.
//!
//! Every event row records the `x-request-id` of the request whose
//! transaction appended it, so an operator can go from an event to the log
//! lines of the request that caused it. Passing the id down through every
//! store method would touch every signature for a piece of metadata, so it
//! travels in a [`tokio::task_local!`] instead: [`middleware`] sets it around
//! each request (the router's `SetRequestIdLayer` has already put the id in
//! the request extensions, taking the client's `x-request-id` or generating a
//! UUID), and both backends' `append_events` read it with [`current`].
//!
//! A task-local is not inherited by spawned tasks: writes made by the
//! dispatcher or an agent session (their own tasks) carry no request id.
//! Work done on behalf of a request in another task can use [`scope`].

use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tower_http::request_id::RequestId;

/// Longest request id stored; a longer client-supplied id is cut here.
pub const MAX_LEN: usize = 128;

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// The request id of the current task, if it runs inside [`scope`].
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(|id| id.to_string()).ok()
}

/// Runs `f` with `id` as the current request id.
pub async fn scope<F: Future>(id: Arc<str>, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

/// The id to record for a header value: visible ASCII only (anything else
/// is not recorded), at most [`MAX_LEN`] characters.
fn sanitize(raw: &str) -> Option<Arc<str>> {
    let raw = raw.trim();
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    // ASCII only, so any byte index is a character boundary.
    Some(Arc::from(&raw[..raw.len().min(MAX_LEN)]))
}

/// Axum middleware: runs the rest of the request inside [`scope`] with the
/// request's id. Must sit inside `SetRequestIdLayer` (added before it).
pub async fn middleware(req: Request, next: Next) -> Response {
    let id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .and_then(sanitize);
    match id {
        Some(id) => scope(id, next.run(req)).await,
        None => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scoped_ids_are_visible_only_inside() {
        assert_eq!(current(), None);
        let inside = scope(Arc::from("req-1"), async { current() }).await;
        assert_eq!(inside.as_deref(), Some("req-1"));
        assert_eq!(current(), None);
        // Not inherited by spawned tasks.
        let spawned = scope(Arc::from("req-2"), async {
            tokio::spawn(async { current() }).await.ok().flatten()
        })
        .await;
        assert_eq!(spawned, None);
    }

    #[test]
    fn ids_are_cut_and_cleaned() {
        assert_eq!(sanitize(" abc ").as_deref(), Some("abc"));
        assert_eq!(sanitize(""), None);
        assert_eq!(sanitize("a b"), None);
        let long = "x".repeat(500);
        assert_eq!(sanitize(&long).map(|s| s.len()), Some(MAX_LEN));
    }
}
