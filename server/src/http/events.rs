//! Job event streams: SSE (`/v1/jobs/{id}/events`, `/v1/events`) and the
//! WebSocket stream (`/v1/stream`) with its tickets. The handlers check who
//! is calling and what they asked for; the streaming itself is in
//! [`crate::events`]. Protocols and event types: `docs/events.md`.

use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{AuthError, Permission};
use crate::domain::EventType;
use crate::events::feed::{Feed, FeedOptions};
use crate::events::stream::{self, MAX_CLIENT_MESSAGE};
use crate::events::tickets::Tickets;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiQuery, Caller, parse_id};
use crate::state::AppState;
use crate::store::events::EventFilter;

/// Longest `label` filter accepted.
const MAX_LABEL_LEN: usize = 256;

/// Routes of this area, merged by [`super::api`]. They need a [`Tickets`]
/// extension, which [`super::router`] adds (one ticket store per hub).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(job_events))
        .routes(routes!(events))
        .routes(routes!(create_ticket))
        .routes(routes!(connect))
}

/// Query of `GET /v1/jobs/{id}/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobEventsQuery {
    /// Resume after this seq (the `Last-Event-ID` header wins when both are sent).
    pub after: Option<String>,
}

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Comma-separated event types, e.g. `job.completed,job.failed`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub types: Option<String>,
    /// Only events of jobs carrying this label.
    pub label: Option<String>,
    /// Replay the log after this seq, then go live; without it (and without
    /// `Last-Event-ID`) the stream starts with the next event.
    pub after: Option<String>,
}

/// Query of `GET /v1/stream`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// From `POST /v1/stream/tickets`; single use.
    pub ticket: Option<String>,
}

/// A stream ticket.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StreamTicket {
    /// Opaque; pass as `GET /v1/stream?ticket=...` once.
    pub ticket: String,
    pub expires_at: DateTime<Utc>,
}

/// Where a stream resumes: `Last-Event-ID` (what `EventSource` sends on
/// reconnect) or else `?after=`.
fn resume_point(headers: &HeaderMap, after: Option<&str>) -> Result<Option<i64>, ApiError> {
    if let Some(value) = headers.get("last-event-id") {
        let raw = value.to_str().unwrap_or("<not visible ASCII>");
        return parse_seq("Last-Event-ID", raw).map(Some);
    }
    after.map(|raw| parse_seq("after", raw)).transpose()
}

fn parse_seq(name: &str, raw: &str) -> Result<i64, ApiError> {
    let digits = raw.trim();
    let parsed = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse::<i64>().ok())
        .flatten();
    parsed.ok_or_else(|| {
        ApiError::bad_request(
            "invalid_after",
            format!(
                "`{name}` must be a non-negative integer (the seq of the last event you received), not `{raw}`"
            ),
        )
    })
}

/// `type=a,b`: every name must be a known event type.
fn parse_types(raw: Option<&str>) -> Result<Vec<EventType>, ApiError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let names = raw.split(',').map(str::trim).filter(|n| !n.is_empty());
    let types =
        EventType::parse_all(names).map_err(|m| ApiError::bad_request("unknown_event_type", m))?;
    if types.is_empty() {
        let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        return Err(ApiError::bad_request(
            "unknown_event_type",
            format!(
                "`type` names no event type; give one or more, comma-separated, of: {}",
                known.join(", ")
            ),
        ));
    }
    Ok(types)
}

fn parse_label(raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        Some(label) if label.is_empty() || label.len() > MAX_LABEL_LEN => {
            Err(ApiError::bad_request(
                "invalid_query",
                format!("`label` must be 1 to {MAX_LABEL_LEN} characters"),
            ))
        }
        other => Ok(other),
    }
}

fn sse_response(state: &AppState, feed: Feed) -> Response {
    let mut response = crate::events::sse::response(
        feed,
        state.settings.get().events.keepalive,
        state.shutdown.clone(),
    )
    .into_response();
    // Tell buffering proxies (nginx) to pass events on at once.
    response.headers_mut().insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    response
}

/// Follow one job: its events from the start (or after `Last-Event-ID` /
/// `after`), then live, ending after the job's terminal event.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "events",
    params(("id" = Uuid, Path), JobEventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this seq")),
    responses(
        (status = 200, description = "`text/event-stream`: `id: <seq>`, `event: <type>`, `data: <event JSON>`; `event: lagged` when too slow", content_type = "text/event-stream"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn job_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<JobEventsQuery>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Read)?;
    let job_id = parse_id("job", &id)?;
    let after = resume_point(&headers, q.after.as_deref())?;
    // Subscribe before reading the job: if it finishes in between, its
    // terminal event is in the feed either way.
    let mut feed = Feed::new(
        state.store.clone(),
        &state.bus,
        FeedOptions {
            filter: EventFilter {
                job_id: Some(job_id),
                ..EventFilter::default()
            },
            after: Some(after.unwrap_or(0)),
            end_after_terminal: true,
        },
    );
    let job = state
        .store
        .get_job(job_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("job {job_id} not found")))?;
    if job.status.is_terminal() {
        feed.end_after_replay();
    }
    tracing::debug!(%job_id, after = ?after, "job event stream");
    Ok(sse_response(&state, feed))
}

/// Follow every event, optionally filtered by type and job label.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(EventsQuery, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this seq")),
    responses(
        (status = 200, description = "`text/event-stream`: `id: <seq>`, `event: <type>`, `data: <event JSON>`; `event: lagged` when too slow", content_type = "text/event-stream"),
        (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Read)?;
    let filter = EventFilter {
        job_id: None,
        types: parse_types(q.types.as_deref())?,
        label: parse_label(q.label)?,
        task_id: None,
    };
    let after = resume_point(&headers, q.after.as_deref())?;
    let feed = Feed::new(
        state.store.clone(),
        &state.bus,
        FeedOptions {
            filter,
            after,
            end_after_terminal: false,
        },
    );
    Ok(sse_response(&state, feed))
}

/// A single-use ticket for `GET /v1/stream` (browsers cannot send headers on a WebSocket).
#[utoipa::path(post, path = "/v1/stream/tickets", tag = "events",
    responses((status = 201, body = StreamTicket), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_ticket(
    State(state): State<AppState>,
    Extension(tickets): Extension<Tickets>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let claims = caller.require(Permission::Read)?.clone();
    let (ticket, expires_at) = tickets.issue(claims, state.settings.get().events.ticket_ttl);
    let mut response = (
        StatusCode::CREATED,
        Json(StreamTicket { ticket, expires_at }),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The event stream over a WebSocket: subscriptions to `*`, `job:<uuid>`,
/// `agents` and `stats`. Authenticate with `?ticket=` (from
/// `POST /v1/stream/tickets`), a bearer token, or a first message
/// `{"type":"auth","token":"<jwt>"}`.
#[utoipa::path(get, path = "/v1/stream", operation_id = "stream_connect", tag = "events", params(StreamQuery),
    responses((status = 101, description = "Switching protocols; see docs/events.md"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn connect(
    State(state): State<AppState>,
    Extension(tickets): Extension<Tickets>,
    caller: Result<Caller, ApiError>,
    ApiQuery(q): ApiQuery<StreamQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(|e| {
        ApiError::bad_request(
            "websocket_required",
            format!(
                "this endpoint is a WebSocket (see docs/events.md): {}",
                e.body_text()
            ),
        )
    })?;
    let claims = match (q.ticket, caller) {
        (Some(ticket), _) => match tickets.redeem(&ticket) {
            Some(claims) => Some(claims),
            None => return Ok(bad_ticket()),
        },
        (None, Ok(caller)) => Some(caller.require(Permission::Read)?.clone()),
        // No credentials yet: the first message must be `auth`.
        (None, Err(ApiError::Unauthorized(AuthError::Missing))) => None,
        (None, Err(e)) => return Err(e),
    };
    Ok(ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| stream::serve(socket, state, claims)))
}

/// 401 for an unknown, used or expired ticket.
fn bad_ticket() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(ErrorBody {
            error: "unauthorized",
            message: "the ticket is unknown, expired or already used; get a new one with POST /v1/stream/tickets (tickets are single-use)".into(),
            details: Vec::new(),
        }),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_points_are_non_negative_integers() {
        let mut headers = HeaderMap::new();
        assert_eq!(resume_point(&headers, None).ok(), Some(None));
        assert_eq!(resume_point(&headers, Some("42")).ok(), Some(Some(42)));
        for bad in ["-1", "abc", "", "1.5", "+3", "99999999999999999999"] {
            assert!(resume_point(&headers, Some(bad)).is_err(), "{bad}");
        }
        headers.insert("last-event-id", HeaderValue::from_static("7"));
        assert_eq!(
            resume_point(&headers, Some("42")).ok(),
            Some(Some(7)),
            "the header wins"
        );
        headers.insert("last-event-id", HeaderValue::from_static("x"));
        assert!(resume_point(&headers, None).is_err());
    }

    #[test]
    fn types_must_be_known() {
        assert_eq!(
            parse_types(Some("job.completed, job.failed,job.completed")).ok(),
            Some(vec![EventType::JobCompleted, EventType::JobFailed])
        );
        let err = parse_types(Some("job.completed,job.done"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("`job.done`") && err.contains("webhook.disabled"),
            "{err}"
        );
        assert!(parse_types(Some(",")).is_err());
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn a_resume_point_is_exactly_a_non_negative_integer(raw in crate::fuzz_support::text()) {
                let parsed = resume_point(&HeaderMap::new(), Some(&raw));
                let digits = raw.trim();
                let valid = !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && digits.parse::<i64>().is_ok();
                prop_assert_eq!(parsed.is_ok(), valid, "{:?}", raw);
            }

            #[test]
            fn every_seq_round_trips(seq in 0..=i64::MAX) {
                prop_assert_eq!(resume_point(&HeaderMap::new(), Some(&seq.to_string())).ok(), Some(Some(seq)));
                let mut headers = HeaderMap::new();
                headers.insert("last-event-id", HeaderValue::from(seq));
                prop_assert_eq!(resume_point(&headers, Some("x")).ok(), Some(Some(seq)));
            }
        }
    }
}
