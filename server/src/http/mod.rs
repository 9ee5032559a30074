//! The REST API: one file per resource, plus the cross-cutting pieces
//! (errors, extractors, authentication, rate limiting, metrics).
//!
//! Layer order, outermost first: request id → trace span (carries the request
//! id and, once known, the token subject) → CORS → metrics → authentication
//! (records who is calling) → rate limit (keys on that) → handler.

pub mod admin;
pub mod agents;
pub mod auth;
pub mod browse;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod jobs;
pub mod metrics;
pub mod monitor;
pub mod nodes;
pub mod openapi;
pub mod rate_limit;
pub mod webhooks;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, Method, header};
use axum::{Extension, Router};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ApiError;
use crate::state::AppState;

/// The request id header, taken from the client or generated.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The versioned API: every route under `/v1`, each declared once with its
/// description (see [`openapi`]).
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(jobs::list_jobs, jobs::create_job))
        .routes(routes!(jobs::batch::create_batch))
        .routes(routes!(jobs::get_job, jobs::cancel_job))
        .routes(routes!(jobs::list_items))
        .routes(routes!(jobs::get_document))
        .routes(routes!(agents::list_agents))
        .routes(routes!(agents::connect))
        .routes(routes!(agents::get_agent))
        .routes(routes!(agents::drain_agent))
        .merge(browse::routes())
        .merge(events::routes())
        .merge(webhooks::routes())
        .merge(monitor::routes())
        .merge(admin::routes())
        .merge(nodes::routes())
}

/// Health, readiness, metrics and the API description: outside the `/v1`
/// rate limit.
pub fn operations() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .routes(routes!(metrics::render))
        .routes(routes!(openapi::openapi_json))
}

/// Builds the whole HTTP application.
pub fn router(state: AppState) -> Router {
    let settings = state.settings.get();

    let (v1, _) = api().split_for_parts();
    let v1 = v1
        // One stream-ticket store per router, i.e. per hub.
        .layer(Extension(crate::events::tickets::Tickets::default()))
        .layer(axum::middleware::from_fn_with_state(
            rate_limit::RateLimit::new(state.settings.clone()),
            rate_limit::limit,
        ));

    // Origins are read per request: a reload can change them.
    let live = state.settings.clone();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            live.get().cors_allowed_origins.contains(origin)
        }))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            REQUEST_ID,
        ])
        .expose_headers([REQUEST_ID, header::LOCATION, header::RETRY_AFTER])
        .max_age(Duration::from_secs(600));

    let (operations, _) = operations().split_for_parts();
    operations
        .merge(v1)
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
