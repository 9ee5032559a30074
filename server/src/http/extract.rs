//! Request extractors whose rejections are [`ApiError`]s, so malformed input
//! gets the same JSON error shape as everything else.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::domain::storable::{NUL_PROBLEM, nul_path_in_json};

use super::error::ApiError;
use crate::auth::{AuthError, Claims, Permission};

/// JSON body extractor with API errors.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(NOT_JSON.into()));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    body_too_large()
                } else {
                    ApiError::bad_request("invalid_body", rejection.body_text())
                }
            })?;
        if let Some(path) = nul_path_in_json(&bytes) {
            return Err(ApiError::invalid(path, NUL_PROBLEM));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `Content-Type: application/json` or `application/<something>+json`.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The name of a query parameter whose name or value holds `%00`.
fn nul_query_param(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        pair.contains("%00").then(|| {
            let name = pair.split('=').next().unwrap_or_default();
            name.replace("%00", "\\u0000")
        })
    })
}

const NOT_JSON: &str = "send the body as JSON with `Content-Type: application/json` (or multipart/form-data where documented)";

/// Maps axum's JSON rejections to API errors with clear messages.
pub fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::bad_request("invalid_body", e.body_text()),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request("malformed_json", e.body_text()),
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(NOT_JSON.into()),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => body_too_large(),
        other => ApiError::bad_request("invalid_body", other.body_text()),
    }
}

pub fn body_too_large() -> ApiError {
    ApiError::PayloadTooLarge(
        "the request body is larger than this hub accepts (max_body_bytes); send a smaller document".into(),
    )
}

/// Query string extractor with API errors.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(name) = parts.uri.query().and_then(nul_query_param) {
            return Err(ApiError::invalid(name, NUL_PROBLEM));
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::bad_request("invalid_query", e.body_text()))
            }
            Err(other) => Err(ApiError::bad_request("invalid_query", other.body_text())),
        }
    }
}

/// Parses an id from a path segment, naming what it should be.
pub fn parse_id(what: &str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::bad_request("invalid_id", format!("`{raw}` is not a valid {what} id; expected a UUID such as 0190b8e2-7c4d-7a3e-9f00-1234567890ab"))
    })
}

/// Who is calling, as established by the authentication middleware.
///
/// The middleware stores the outcome (claims or why there are none) in the
/// request extensions without rejecting, so the rate limiter can key on the
/// subject and handlers decide what they need.
#[derive(Debug, Clone)]
pub struct Identity(pub Result<Claims, AuthError>);

/// An authenticated caller. Rejects with 401 when the token is missing or bad.
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

impl Caller {
    /// 403 unless the caller's role grants `permission`.
    pub fn require(&self, permission: Permission) -> Result<&Claims, ApiError> {
        if self.0.role.allows(permission) {
            Ok(&self.0)
        } else {
            let needed = match permission {
                Permission::Read => "viewer, operator or admin",
                Permission::Operate => "operator or admin",
                Permission::Admin => "admin",
                Permission::ConnectAgent => "agent",
            };
            Err(ApiError::Forbidden(format!(
                "role `{}` may not do this; it needs the {needed} role",
                self.0.role
            )))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Identity>() {
            Some(Identity(Ok(claims))) => Ok(Caller(claims.clone())),
            Some(Identity(Err(e))) => Err(ApiError::Unauthorized(e.clone())),
            None => Err(ApiError::Unauthorized(AuthError::Missing)),
        }
    }
}
