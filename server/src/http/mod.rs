//! The REST API: one file per resource, plus the cross-cutting pieces
//! (errors, extractors, authentication, rate limiting, metrics).
//!
//! Layer order, outermost first: request id → trace span (carries the request
//! id and, once known, the token subject) → CORS → metrics → authentication
//! (records who is calling) → rate limit (keys on that) → handler.

pub mod agents;
pub mod auth;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod jobs;
pub mod metrics;
pub mod monitor;
pub mod openapi;
pub mod rate_limit;
pub mod webhooks;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, Method, header};
use axum::routing::get;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use crate::http::error::ApiError;
use crate::state::AppState;

/// The request id header, taken from the client or generated.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the whole HTTP application.
pub fn router(state: AppState) -> Router {
    let settings = state.settings.clone();

    let mut v1 = Router::new()
        .route("/jobs", get(jobs::list_jobs).post(jobs::create_job))
        .route(
            "/jobs/batch",
            axum::routing::post(jobs::batch::create_batch),
        )
        .route("/jobs/{id}", get(jobs::get_job).delete(jobs::cancel_job))
        .route("/jobs/{id}/items", get(jobs::list_items))
        .route("/jobs/{id}/document", get(jobs::get_document))
        .route("/agents", get(agents::list_agents))
        .route("/agents/connect", get(agents::connect))
        .route("/agents/{id}", get(agents::get_agent))
        .route(
            "/agents/{id}/drain",
            axum::routing::post(agents::drain_agent),
        )
        .route("/openapi.json", get(openapi::openapi_json))
        .merge(events::routes())
        .merge(webhooks::routes())
        .merge(monitor::routes());
    if let Some((per_second, burst)) = settings.rate_limit
        && let Some(limit) = rate_limit::layer(per_second, burst)
    {
        v1 = v1.layer(limit);
    }

    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(settings.cors_allowed_origins.clone()))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            REQUEST_ID,
        ])
        .expose_headers([REQUEST_ID, header::LOCATION, header::RETRY_AFTER])
        .max_age(Duration::from_secs(600));

    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics::render))
        .nest("/v1", v1)
        .merge(dashboard::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(crate::events::request_id::middleware))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::identify))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(cors)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let request_id = req.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", request_id, method = %req.method(), uri = %req.uri().path(), sub = tracing::field::Empty)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no route for {} {}; see /v1/openapi.json for the API",
        req.method(),
        req.uri().path()
    ))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{} is not allowed on {}; see /v1/openapi.json for the methods it takes",
        req.method(),
        req.uri().path()
    ))
}
