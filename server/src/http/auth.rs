//! Authentication middleware: verifies the bearer token once per request.
//!
//! It never rejects by itself: it records an [`Identity`] (claims, or why there
//! are none) so the rate limiter can key on the subject and each handler's
//! [`crate::http::extract::Caller`] decides between 401 and 403.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::AuthError;
use crate::http::extract::Identity;
use crate::state::AppState;

pub async fn identify(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let identity = match req.headers().get(AUTHORIZATION) {
        None => Err(AuthError::Missing),
        Some(value) => match value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) {
            Some(token) => state.keys.verify(token.trim()),
            None => Err(AuthError::MalformedHeader),
        },
    };
    if let Ok(claims) = &identity {
        tracing::Span::current().record("sub", claims.sub.as_str());
    }
    req.extensions_mut().insert(Identity(identity));
    next.run(req).await
}
