//! `/v1/jobs`: create, list, read, items, document, cancel.

pub mod batch;
pub mod context_query;
pub mod create;
pub mod form;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Permission;
use crate::domain::{CreateJobOutcome, Item, ItemStatus, Job, JobFilter, JobStatus};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiQuery, Caller, parse_id};
use crate::state::AppState;

/// Header carrying a client's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A page of jobs.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobList {
    pub jobs: Vec<Job>,
    /// Pass as `cursor` to get the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of items.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemList {
    pub items: Vec<Item>,
    pub next_cursor: Option<String>,
}

/// Query of `GET /v1/jobs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListJobsQuery {
    /// waiting, queued, running, completed, failed or cancelled.
    pub status: Option<String>,
    /// Only jobs carrying this label.
    pub label: Option<String>,
    /// Only jobs whose prompt contains this text (ignoring ASCII case).
    pub q: Option<String>,
    /// Only jobs created at or after this RFC 3339 instant.
    pub created_after: Option<String>,
    /// Only jobs created before this RFC 3339 instant.
    pub created_before: Option<String>,
    /// 1 to 500; default 50.
    pub limit: Option<String>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// Query of `GET /v1/jobs/{id}/items`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListItemsQuery {
    /// pending, validating, integrated, rejected or failed.
    pub status: Option<String>,
    /// Only items whose data contains this text (ignoring ASCII case).
    pub q: Option<String>,
    /// 1 to 1000; default 100.
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

pub(crate) fn parse_limit(raw: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    match raw {
        None => Ok(default),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(
                "invalid_query",
                format!("limit `{s}` is out of range; use 1 to {max}"),
            )),
        },
    }
}

/// Cursors are opaque to clients: a version tag and the last id, base64url.
/// Longest text search accepted.
const MAX_TEXT_LEN: usize = 200;

/// `q`: a text search of 1 to 200 characters (blank means no search).
fn parse_text(raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw.map(|q| q.trim().to_owned()) {
        None => Ok(None),
        Some(q) if q.is_empty() => Ok(None),
        Some(q) if q.chars().count() > MAX_TEXT_LEN => Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "`q` is {} characters long; search with at most {MAX_TEXT_LEN}",
                q.chars().count()
            ),
        )),
        Some(q) if q.contains('\0') => Err(ApiError::bad_request(
            "invalid_query",
            "`q` contains a NUL character; search for printable text",
        )),
        Some(q) => Ok(Some(q)),
    }
}

/// An RFC 3339 instant, e.g. `2026-12-05T09:30:00Z`.
fn parse_instant(
    name: &str,
    raw: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    raw.map(|s| {
        chrono::DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("`{name}` must be an RFC 3339 instant such as 2026-12-05T09:30:00Z, not `{s}` ({e})"),
                )
            })
    })
    .transpose()
}

fn encode_cursor(kind: &str, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}1:{id}"))
}

fn decode_cursor(kind: &str, raw: &str) -> Result<Uuid, ApiError> {
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
    let id = text
        .strip_prefix(kind)
        .and_then(|t| t.strip_prefix("1:"))
        .ok_or_else(bad)?;
    Uuid::parse_str(id).map_err(|_| bad())
}

fn parse_status<T: std::str::FromStr<Err = crate::domain::status::UnknownStatus>>(
    raw: Option<&str>,
) -> Result<Option<T>, ApiError> {
    raw.map(|s| {
        s.parse::<T>()
            .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))
    })
    .transpose()
}

/// Submit a job (JSON, or multipart with a `document` file part).
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs",
    request_body(description = "JSON; or multipart/form-data with the same fields and a `document` file part",
        content((create::CreateJobRequest = "application/json"), (form::CreateJobForm = "multipart/form-data"))),
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body returns the existing job")),
    responses(
        (status = 201, description = "Created", body = Job),
        (status = 200, description = "Idempotent replay: the existing job", body = Job),
        (status = 409, description = "Idempotency key reused with a different body", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create_job(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> Result<Response, ApiError> {
    let claims = caller.require(Permission::Operate)?;
    let key = idempotency_key(req.headers())?;
    let draft = create::read_body(req).await?;
    let new_job = create::validate(draft, &state.settings.get(), &claims.sub, key)?;
    // A first stage whose input no registered agent would accept is refused now, not later.
    // The dispatcher keeps the input it checks here, to push the task
    // without reading it back.
    let mut inputs = std::collections::HashMap::new();
    if let Some(first) = new_job.pipeline.first() {
        let input = crate::domain::job::stage0_input(
            new_job.id,
            &new_job.prompt,
            &new_job.context,
            new_job.document.as_ref(),
        );
        state
            .hub
            .schemas
            .check_input(first, &input)
            .map_err(|problem| ApiError::invalid("pipeline", problem))?;
        inputs.insert(new_job.id, input);
    }
    let created = state.store.submit_job(new_job).await?;
    match created.outcome {
        CreateJobOutcome::Created(job) => {
            tracing::info!(job_id = %job.id, status = %job.status, "job created");
            crate::telemetry::links::remember(job.id, &tracing::Span::current());
            state.hub.created_ready(created.ready, inputs);
            metrics::counter!("switchyard_jobs_created_total").increment(1);
            let location = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)).ok();
            let mut response = (StatusCode::CREATED, Json(job)).into_response();
            if let Some(location) = location {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
        CreateJobOutcome::Existing(job) => Ok((StatusCode::OK, Json(job)).into_response()),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| {
            ApiError::bad_request("invalid_header", "Idempotency-Key must be visible ASCII")
        })?
        .trim();
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::bad_request(
            "invalid_header",
            "Idempotency-Key must be 1 to 255 characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

/// List jobs, newest first.
///
/// Filter on the job's `context` with `context.<key>=<value>` (nested keys
/// joined by dots, e.g. `context.order.id=42`; or `context[order.id]=42`).
/// A filter matches the same string at that key, or the same number or
/// boolean when the value reads as one. Up to 8 filters; all must match.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListJobsQuery,
        ("context" = Option<std::collections::BTreeMap<String, String>>, Query, style = DeepObject, explode,
         description = "Context filters, `context[<key>]=<value>` or `context.<key>=<value>`: see the operation's description")),
    responses((status = 200, body = JobList), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_jobs(
    State(state): State<AppState>,
    caller: Caller,
    context_query::ContextQuery(q, context): context_query::ContextQuery<ListJobsQuery>,
) -> Result<Json<JobList>, ApiError> {
    caller.require(Permission::Read)?;
    let filter = JobFilter {
        status: parse_status::<JobStatus>(q.status.as_deref())?,
        label: q.label,
        context,
        text: parse_text(q.q)?,
        created_after: parse_instant("created_after", q.created_after.as_deref())?,
        created_before: parse_instant("created_before", q.created_before.as_deref())?,
        before: q
            .cursor
            .as_deref()
            .map(|c| decode_cursor("j", c))
            .transpose()?,
        limit: parse_limit(q.limit.as_deref(), 50, 500)?,
    };
    let page = state.store.list_jobs(&filter).await?;
    Ok(Json(JobList {
        jobs: page.jobs,
        next_cursor: page.next.map(|id| encode_cursor("j", id)),
    }))
}

async fn load_job(state: &AppState, raw_id: &str) -> Result<Job, ApiError> {
    let id = parse_id("job", raw_id)?;
    state
        .store
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))
}

/// One job with its item counts.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = Uuid, Path)),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    caller.require(Permission::Read)?;
    let mut job = load_job(&state, &id).await?;
    job.items = Some(state.store.item_counts(job.id).await?);
    Ok(Json(job))
}

/// A job's items in creation order.
#[utoipa::path(get, path = "/v1/jobs/{id}/items", tag = "jobs", params(("id" = Uuid, Path), ListItemsQuery),
    responses((status = 200, body = ItemList), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_items(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListItemsQuery>,
) -> Result<Json<ItemList>, ApiError> {
    caller.require(Permission::Read)?;
    let status = parse_status::<ItemStatus>(q.status.as_deref())?;
    let limit = parse_limit(q.limit.as_deref(), 100, 1000)?;
    let after = q
        .cursor
        .as_deref()
        .map(|c| decode_cursor("i", c))
        .transpose()?;
    let job = load_job(&state, &id).await?;
    let text = parse_text(q.q)?;
    let items = state
        .store
        .list_items(job.id, status, text.as_deref(), after, limit)
        .await?;
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|i| encode_cursor("i", i.id)))
        .flatten();
    Ok(Json(ItemList { items, next_cursor }))
}

/// The job's stored document, byte for byte.
#[utoipa::path(get, path = "/v1/jobs/{id}/document", tag = "jobs", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The bytes, with the stored content type"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_document(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Read)?;
    let id = parse_id("job", &id)?;
    let Some(doc) = state.store.get_document(id).await? else {
        return Err(match state.store.get_job(id).await? {
            Some(_) => ApiError::NotFound(format!("job {id} has no document")),
            None => ApiError::NotFound(format!("job {id} not found")),
        });
    };
    let mut headers = HeaderMap::new();
    let content_type = HeaderValue::from_str(&doc.meta.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    let safe_name: String = doc
        .meta
        .file_name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", doc.meta.sha256)) {
        headers.insert(header::ETAG, v);
    }
    Ok((StatusCode::OK, headers, doc.bytes).into_response())
}

/// Cancel a job; finished items stay as they are.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = Uuid, Path)),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody), (status = 409, description = "Already finished", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    let claims = caller.require(Permission::Operate)?;
    let id = parse_id("job", &id)?;
    let reason = format!("cancelled by {}", claims.sub);
    let (job, cancelled_tasks) = state.store.cancel_job(id, reason.clone()).await?;
    tracing::info!(job_id = %job.id, tasks = cancelled_tasks.len(), "job cancelled");
    state.hub.tasks_cancelled(cancelled_tasks, reason);
    Ok(Json(job))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor("j", &encode_cursor("j", id)).unwrap(), id);
        assert!(decode_cursor("j", &encode_cursor("i", id)).is_err());
        assert!(decode_cursor("j", "not-a-cursor!").is_err());
    }
}
