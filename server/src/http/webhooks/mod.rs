//! Webhook subscriptions (`/v1/webhooks`): CRUD, secret rotation, the
//! delivery log and replays. Admin only: a webhook makes the hub send data
//! to a URL of the caller's choosing.
//!
//! Handlers check the role before they look at the body, so a caller without
//! the admin role gets 403 whatever it sends.

pub mod body;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use axum::Json;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use self::body::{
    CreateWebhookRequest, PatchWebhookRequest, ReplayRequest, WebhookView, validate_create,
    validate_patch, validate_replay,
};
use crate::auth::Permission;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery, Caller, parse_id};
use crate::state::AppState;
use crate::webhooks::model::{Delivery, NewWebhook, Webhook};
use crate::webhooks::replay::{ReplayOutcome, replay};
use crate::webhooks::signing::generate_secret;
use crate::webhooks::target::AddressPolicy;

/// Routes of this area, merged by [`super::router`].
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(replay_events))
}

/// A body extractor whose failure is looked at only after the role check.
type Body<T> = Result<ApiJson<T>, ApiError>;

/// Every subscription.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

/// A page of deliveries, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Query of `GET /v1/webhooks/{id}/deliveries`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// 1 to 500; default 50.
    pub limit: Option<String>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

async fn load(state: &AppState, raw_id: &str) -> Result<Webhook, ApiError> {
    let id = parse_id("webhook", raw_id)?;
    state
        .store
        .get_webhook(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("webhook {id} not found")))
}

fn policy(state: &AppState) -> AddressPolicy {
    AddressPolicy::new(&state.settings.get().webhooks)
}

/// Subscribe a URL to events. The answer holds the signing secret, once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "Created; `secret` is shown only now", body = WebhookView),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "Invalid fields: unknown event types, a bad or refused URL", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    body: Body<CreateWebhookRequest>,
) -> Result<Response, ApiError> {
    let claims = caller.require(Permission::Admin)?;
    let ApiJson(body) = body?;
    let valid = validate_create(body, &policy(&state)).await?;
    // Stored sealed (see `webhooks::sealing`); shown plain, once, below.
    let secret = generate_secret();
    let sealed = state.settings.get().webhooks.sealer.seal(&secret);
    let webhook = state
        .store
        .create_webhook(NewWebhook {
            id: Uuid::now_v7(),
            url: valid.url,
            event_types: valid.event_types,
            label: valid.label,
            description: valid.description,
            enabled: valid.enabled,
            secret: sealed,
            created_by: claims.sub.clone(),
        })
        .await?;
    tracing::info!(webhook_id = %webhook.id, url = %webhook.url, "webhook created");
    let location = HeaderValue::from_str(&format!("/v1/webhooks/{}", webhook.id)).ok();
    let mut response = (
        StatusCode::CREATED,
        Json(WebhookView::new(webhook, Some(secret))),
    )
        .into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Every subscription, oldest first.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WebhookList>, ApiError> {
    caller.require(Permission::Admin)?;
    let webhooks = state.store.list_webhooks().await?;
    Ok(Json(WebhookList {
        webhooks: webhooks
            .into_iter()
            .map(|w| WebhookView::new(w, None))
            .collect(),
    }))
}

/// One subscription.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    caller.require(Permission::Admin)?;
    Ok(Json(WebhookView::new(load(&state, &id).await?, None)))
}

/// Change a subscription; `enabled: true` re-enables a disabled one.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    request_body = PatchWebhookRequest,
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body<PatchWebhookRequest>,
) -> Result<Json<WebhookView>, ApiError> {
    let claims = caller.require(Permission::Admin)?;
    let id = parse_id("webhook", &id)?;
    let ApiJson(body) = body?;
    let mut patch = validate_patch(body, &policy(&state)).await?;
    patch.changed_by = claims.sub.clone();
    let webhook = state.store.update_webhook(id, patch).await?;
    tracing::info!(webhook_id = %webhook.id, enabled = webhook.enabled, "webhook updated");
    Ok(Json(WebhookView::new(webhook, None)))
}

/// Delete a subscription with its delivery log.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::Admin)?;
    let id = parse_id("webhook", &id)?;
    state.store.delete_webhook(id).await?;
    tracing::info!(webhook_id = %id, "webhook deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the signing secret. The old one keeps signing (a second
/// signature) for `webhooks.rotation_overlap`.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The subscription with its new `secret`", body = WebhookView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    caller.require(Permission::Admin)?;
    let id = parse_id("webhook", &id)?;
    let settings = state.settings.get();
    let overlap = chrono::Duration::from_std(settings.webhooks.rotation_overlap)
        .unwrap_or(chrono::Duration::days(1));
    let secret = generate_secret();
    let sealed = settings.webhooks.sealer.seal(&secret);
    let webhook = state
        .store
        .rotate_webhook_secret(id, sealed, Utc::now() + overlap)
        .await?;
    tracing::info!(webhook_id = %id, "webhook secret rotated");
    Ok(Json(WebhookView::new(webhook, Some(secret))))
}

fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("d1:{id}"))
}

fn decode_cursor(raw: &str) -> Result<Uuid, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_cursor",
            format!(
                "cursor `{raw}` is not valid; pass a `next_cursor` value from a previous page unchanged"
            ),
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let id = text.strip_prefix("d1:").ok_or_else(bad)?;
    Uuid::parse_str(id).map_err(|_| bad())
}

/// Deliveries newest first, each with its attempts (status code, latency, error).
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = Uuid, Path), DeliveriesQuery),
    responses((status = 200, body = DeliveryList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<ApiQuery<DeliveriesQuery>, ApiError>,
) -> Result<Json<DeliveryList>, ApiError> {
    caller.require(Permission::Admin)?;
    let ApiQuery(q) = query?;
    let limit = match q.limit.as_deref() {
        None => 50,
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=500).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("limit `{s}` is out of range; use 1 to 500"),
                ));
            }
        },
    };
    let before = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let webhook = load(&state, &id).await?;
    let deliveries = state
        .store
        .list_webhook_deliveries(webhook.id, before, limit)
        .await?;
    let next_cursor = (deliveries.len() == limit as usize)
        .then(|| deliveries.last().map(|d| encode_cursor(d.id)))
        .flatten();
    Ok(Json(DeliveryList {
        deliveries,
        next_cursor,
    }))
}

/// Send matching events again, from a sequence number or a time up to now,
/// as new deliveries (same `webhook-id` per event, so receivers that
/// de-duplicate see each event once).
#[utoipa::path(post, path = "/v1/webhooks/{id}/replay", tag = "webhooks", params(("id" = Uuid, Path)),
    request_body = ReplayRequest,
    responses((status = 202, description = "Queued", body = ReplayOutcome), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replay_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body<ReplayRequest>,
) -> Result<(StatusCode, Json<ReplayOutcome>), ApiError> {
    caller.require(Permission::Admin)?;
    let id = parse_id("webhook", &id)?;
    let ApiJson(body) = body?;
    let from = validate_replay(body)?;
    let webhook = load(&state, &id.to_string()).await?;
    let outcome = replay(&state.store, &webhook, from).await?;
    tracing::info!(webhook_id = %id, queued = outcome.queued, generation = outcome.generation, "webhook replay queued");
    Ok((StatusCode::ACCEPTED, Json(outcome)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id)).unwrap(), id);
        assert!(decode_cursor("nope!").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode(format!("j1:{id}"))).is_err());
    }
}
