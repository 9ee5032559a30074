//! `GET /health` (the process is up) and `GET /ready` (the store answers and
//! its schema is the one this build expects).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub status: &'static str,
    pub store: &'static str,
    pub schema_version: Option<i64>,
    pub schema_expected: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Liveness.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Readiness.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let store = state.store.backend().as_str();
    let not_ready = |problem: String, applied: Option<i64>, known: Option<i64>| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                status: "not_ready",
                store,
                schema_version: applied,
                schema_expected: known,
                problem: Some(problem),
            }),
        )
    };
    if let Err(e) = state.store.ping().await {
        return not_ready(format!("store unreachable: {e}"), None, None);
    }
    match state.store.schema_status().await {
        Ok(s) if s.is_current() => (
            StatusCode::OK,
            Json(Readiness {
                status: "ready",
                store,
                schema_version: Some(s.applied),
                schema_expected: Some(s.known),
                problem: None,
            }),
        ),
        Ok(s) => not_ready(
            format!(
                "schema at version {} but this build expects {}",
                s.applied, s.known
            ),
            Some(s.applied),
            Some(s.known),
        ),
        Err(e) => not_ready(format!("cannot read schema version: {e}"), None, None),
    }
}
