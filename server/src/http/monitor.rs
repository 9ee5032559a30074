//! Monitoring and reports: progress with ETA, stuck work, retry-failed,
//! reports, daily statistics, agent health, re-runs and comparisons.
//!
//! Thin handlers over [`crate::report`]: they check the caller's role, parse
//! and validate the input (ids, `format`, `days`) into typed values before
//! anything reaches the store, and tell the dispatcher about work they make
//! ready. `/jobs/stuck` and `/agents/health` are static segments that axum
//! matches before `/jobs/{id}` and `/agents/{id}`.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Permission;
use crate::domain::Job;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiQuery, Caller, parse_id};
use crate::report::compare::Comparison;
use crate::report::daily::DailyStats;
use crate::report::health::AgentsHealth;
use crate::report::render::Format;
use crate::report::stuck::StuckReport;
use crate::report::{
    JobReport, Progress, builder, compare, daily, health, progress, render, stuck,
};
use crate::state::AppState;

/// Routes of this area, merged by [`super::api`].
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stuck_work))
        .routes(routes!(job_progress))
        .routes(routes!(job_report))
        .routes(routes!(retry_failed))
        .routes(routes!(rerun))
        .routes(routes!(compare_jobs))
        .routes(routes!(daily_stats))
        .routes(routes!(agents_health))
}

async fn load_job(state: &AppState, raw_id: &str) -> Result<Job, ApiError> {
    let id = parse_id("job", raw_id)?;
    state
        .store
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))
}

/// A job's progress: tasks per stage and status, items by status, the rate
/// over the last minutes and an ETA (null with a reason when it cannot be estimated).
#[utoipa::path(get, path = "/v1/jobs/{id}/progress", tag = "reports", params(("id" = Uuid, Path)),
    responses((status = 200, body = Progress), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn job_progress(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Progress>, ApiError> {
    caller.require(Permission::Read)?;
    let job = load_job(&state, &id).await?;
    Ok(Json(
        progress::progress(&state.store, &job, Utc::now()).await?,
    ))
}

/// What is stuck now, and why: tasks whose lease ran out, items validating
/// with no task, jobs without progress for `stuck_after` or past `job_timeout`.
#[utoipa::path(get, path = "/v1/jobs/stuck", tag = "reports",
    responses((status = 200, body = StuckReport)), security(("bearer" = [])))]
pub async fn stuck_work(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<StuckReport>, ApiError> {
    caller.require(Permission::Read)?;
    Ok(Json(stuck::list(&state, Utc::now()).await?))
}

/// What `retry-failed` did.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetryFailedResponse {
    pub job: Job,
    /// Tasks re-queued (one per failed item, plus a failed first-stage task).
    pub requeued_tasks: usize,
    /// Failed items back to pending.
    pub requeued_items: u64,
}

/// Re-queue a job's failed items (and a failed first stage); a finished job is reopened.
#[utoipa::path(post, path = "/v1/jobs/{id}/retry-failed", tag = "reports", params(("id" = Uuid, Path)),
    responses((status = 200, body = RetryFailedResponse), (status = 404, body = ErrorBody),
        (status = 409, description = "Nothing failed, or the job was cancelled", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn retry_failed(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RetryFailedResponse>, ApiError> {
    let claims = caller.require(Permission::Operate)?;
    let id = parse_id("job", &id)?;
    let reason = format!("retry of failed work requested by {}", claims.sub);
    let outcome = state.store.retry_failed(id, reason).await?;
    tracing::info!(job_id = %id, tasks = outcome.ready.len(), items = outcome.items, "failed work re-queued");
    let requeued_tasks = outcome.ready.len();
    state.hub.tasks_ready(outcome.ready);
    Ok(Json(RetryFailedResponse {
        job: outcome.job,
        requeued_tasks,
        requeued_items: outcome.items,
    }))
}

/// Query of `GET /v1/jobs/{id}/report`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// json (default), text or markdown.
    #[param(value_type = Option<ReportFormat>)]
    pub format: Option<String>,
}

/// The forms a report comes in (documentation of `format`; the handler
/// reads the string itself to name a wrong value in its error).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ReportFormat {
    Json,
    Text,
    Markdown,
}

/// The job's full report (summary, stages, items, tags, priorities, LLM
/// usage and cost, citations, rejected and failed items) as JSON, text or Markdown.
#[utoipa::path(get, path = "/v1/jobs/{id}/report", tag = "reports", params(("id" = Uuid, Path), ReportQuery),
    responses((status = 200, description = "JSON; text/plain or text/markdown with format=text|markdown",
            content((JobReport = "application/json"), (String = "text/plain"), (String = "text/markdown"))),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn job_report(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Read)?;
    let format = match q.format.as_deref() {
        None => Format::Json,
        Some(raw) => Format::parse(raw).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!(
                    "format `{}` is not known; use {}",
                    raw.chars().take(64).collect::<String>(),
                    Format::ALLOWED
                ),
            )
        })?,
    };
    let job = load_job(&state, &id).await?;
    let report = builder::build(&state.store, &job, Utc::now()).await?;
    let body = match format {
        Format::Json => return Ok(Json(report).into_response()),
        Format::Text => render::text(&report),
        Format::Markdown => render::markdown(&report),
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        body,
    )
        .into_response())
}

/// Query of `GET /v1/stats/daily`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DailyQuery {
    /// Days to cover, today included: 1 to 365 (default 7).
    pub days: Option<String>,
}

/// Per-day statistics: jobs created/completed/failed/cancelled, items
/// integrated/rejected/failed, tokens and requests.
#[utoipa::path(get, path = "/v1/stats/daily", tag = "reports", params(DailyQuery),
    responses((status = 200, body = DailyStats), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn daily_stats(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<DailyQuery>,
) -> Result<Json<DailyStats>, ApiError> {
    caller.require(Permission::Read)?;
    let days = daily::parse_days(q.days.as_deref())
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    Ok(Json(daily::daily(&state.store, days, Utc::now()).await?))
}

/// Agents by state and health, the ones that need attention, and queued
/// capabilities no connected agent offers.
#[utoipa::path(get, path = "/v1/agents/health", tag = "reports",
    responses((status = 200, body = AgentsHealth)), security(("bearer" = [])))]
pub async fn agents_health(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<AgentsHealth>, ApiError> {
    caller.require(Permission::Read)?;
    Ok(Json(health::health(&state, Utc::now()).await?))
}

/// A job with the job it re-runs.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobVersion {
    #[serde(flatten)]
    pub job: Job,
    pub rerun_of: Option<Uuid>,
}

/// Run a job again: a new job with the same input (pipeline, prompt,
/// context, document, priority, labels), linked to the original.
#[utoipa::path(post, path = "/v1/jobs/{id}/rerun", tag = "reports", params(("id" = Uuid, Path)),
    responses((status = 201, body = JobVersion), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rerun(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let claims = caller.require(Permission::Operate)?;
    let original = parse_id("job", &id)?;
    let job = state
        .store
        .rerun_job(original, Uuid::now_v7(), claims.sub.clone())
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound(_) => {
                ApiError::NotFound(format!("job {original} not found"))
            }
            other => other.into(),
        })?;
    tracing::info!(job_id = %job.id, rerun_of = %original, "job re-run");
    state.hub.job_created(job.id);
    metrics::counter!("switchyard_jobs_created_total").increment(1);
    let location = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)).ok();
    let mut response = (
        StatusCode::CREATED,
        Json(JobVersion {
            job,
            rerun_of: Some(original),
        }),
    )
        .into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Items added, removed and changed from job `id` to job `other_id`
/// (matched by normalised text, or name; see `docs/reports.md`).
#[utoipa::path(get, path = "/v1/jobs/{id}/compare/{other_id}", tag = "reports",
    params(("id" = Uuid, Path), ("other_id" = Uuid, Path)),
    responses((status = 200, body = Comparison), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn compare_jobs(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, other_id)): Path<(String, String)>,
) -> Result<Json<Comparison>, ApiError> {
    caller.require(Permission::Read)?;
    let base = load_job(&state, &id).await?;
    let other = load_job(&state, &other_id).await?;
    Ok(Json(
        compare::compare(&state.store, base.id, other.id).await?,
    ))
}
