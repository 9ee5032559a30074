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
        Some(value) => match value.to_str().ok().and_then(bearer_token) {
            Some(token) => state.keys.verify(token),
            None => Err(AuthError::MalformedHeader),
        },
    };
    if let Ok(claims) = &identity {
        tracing::Span::current().record("sub", claims.sub.as_str());
    }
    req.extensions_mut().insert(Identity(identity));
    next.run(req).await
}

/// The token of a `Bearer` credential. The scheme is case-insensitive
/// (RFC 7235 §2.1), so `bearer`, `BEARER` and `Bearer` are all accepted.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_scheme_is_case_insensitive() {
        for v in ["Bearer abc", "bearer abc", "BEARER abc", "  bEaReR   abc "] {
            assert_eq!(bearer_token(v), Some("abc"), "{v:?}");
        }
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_refused() {
        for v in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "", "abc"] {
            assert_eq!(bearer_token(v), None, "{v:?}");
        }
    }
}
