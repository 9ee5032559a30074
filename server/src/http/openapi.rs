//! `GET /v1/openapi.json`: the API description, generated from the handlers.
//!
//! Routes are declared once, with `utoipa_axum::routes!` in [`super::api`]:
//! the router is built from the same declarations the document is read
//! from, so a route cannot be served without being described. [`ApiDoc`]
//! adds what is not per route: the title, shared schemas, the bearer
//! scheme and the tags.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use std::sync::OnceLock;

use crate::http::{error, monitor};

#[derive(OpenApi)]
#[openapi(
    info(title = "Switchyard", description = "Push-based coordination hub for software agents"),
    components(schemas(error::ErrorBody, error::FieldError, monitor::ReportFormat)),
    modifiers(&BearerAuth),
    tags((name = "jobs", description = "Submit and follow jobs"), (name = "agents", description = "Agents and their WebSocket"), (name = "operations", description = "Health and readiness"), (name = "reports", description = "Progress, stuck work, reports, daily statistics, agent health, re-runs (docs/reports.md)"), (name = "webhooks", description = "Signed webhook subscriptions, their deliveries and replays (docs/webhooks.md)"), (name = "events", description = "Job events: SSE, the WebSocket stream and its tickets (docs/events.md)"), (name = "admin", description = "Running the hub: configuration reload (docs/operations.md)")),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The whole document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let (_, paths) = super::api().merge(super::operations()).split_for_parts();
        let mut doc = ApiDoc::openapi();
        doc.merge(paths);
        doc
    })
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "The API description, OpenAPI 3.1", content_type = "application/json")))]
pub async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(document())
}
