//! `GET /v1/openapi.json`: the API description, generated from the handlers.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::{agents, error, events, health, jobs, monitor, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "Switchyard", description = "Push-based coordination hub for software agents"),
    paths(
        health::health, health::ready,
        jobs::create_job, jobs::batch::create_batch, jobs::list_jobs, jobs::get_job, jobs::list_items, jobs::get_document, jobs::cancel_job,
        agents::connect, agents::list_agents, agents::get_agent, agents::drain_agent,
        monitor::job_progress, monitor::stuck_work, monitor::retry_failed, monitor::job_report, monitor::daily_stats, monitor::agents_health, monitor::rerun, monitor::compare_jobs,
        events::job_events, events::events, events::create_ticket, events::connect,
        webhooks::create_webhook, webhooks::list_webhooks, webhooks::get_webhook, webhooks::update_webhook, webhooks::delete_webhook, webhooks::rotate_secret, webhooks::list_deliveries, webhooks::replay_events,
    ),
    components(schemas(error::ErrorBody, error::FieldError, monitor::ReportFormat)),
    modifiers(&BearerAuth),
    tags((name = "jobs", description = "Submit and follow jobs"), (name = "agents", description = "Agents and their WebSocket"), (name = "operations", description = "Health and readiness"), (name = "reports", description = "Progress, stuck work, reports, daily statistics, agent health, re-runs (docs/reports.md)"), (name = "webhooks", description = "Signed webhook subscriptions, their deliveries and replays (docs/webhooks.md)"), (name = "events", description = "Job events: SSE, the WebSocket stream and its tickets (docs/events.md)")),
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

pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
