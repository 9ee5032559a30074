//! What the dashboard pages through instead of replaying the event log:
//! job counts by status, a job's events newest first, one task with its
//! attempts, and the hub's throughput history.
//!
//! `/jobs/counts` is a static segment that axum matches before `/jobs/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Permission;
use crate::domain::{Attempt, Event, Task, attempts_of};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiQuery, Caller, parse_id};
use crate::http::jobs::parse_limit;
use crate::hub::throughput::{Bucket, MINUTES_KEPT, Resolution, SECONDS_KEPT};
use crate::state::AppState;

/// Routes of this area, merged by [`super::api`].
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(job_counts))
        .routes(routes!(job_history))
        .routes(routes!(get_task))
        .routes(routes!(throughput))
}

/// Jobs per status.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobCounts {
    /// Every status, 0 when no job has it.
    #[schema(value_type = std::collections::BTreeMap<String, i64>)]
    pub by_status: serde_json::Map<String, serde_json::Value>,
    pub total: i64,
}

/// How many jobs are in each status, counted in the store.
#[utoipa::path(get, path = "/v1/jobs/counts", tag = "jobs",
    responses((status = 200, body = JobCounts)),
    security(("bearer" = [])))]
pub async fn job_counts(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<JobCounts>, ApiError> {
    caller.require(Permission::Read)?;
    let counts = state.store.job_counts().await?;
    Ok(Json(JobCounts {
        total: counts.iter().map(|(_, n)| n).sum(),
        by_status: counts
            .into_iter()
            .map(|(s, n)| (s.as_str().to_owned(), n.into()))
            .collect(),
    }))
}

/// Query of `GET /v1/jobs/{id}/history`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only events with a smaller `seq` (from a previous page's `next_before`).
    pub before: Option<String>,
    /// 1 to 1000; default 100.
    pub limit: Option<String>,
}

/// A page of a job's events, newest first.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next_before: Option<i64>,
}

/// A job's stored events, newest first, a page at a time (the live stream
/// is `GET /v1/jobs/{id}/events`).
#[utoipa::path(get, path = "/v1/jobs/{id}/history", tag = "events", params(("id" = Uuid, Path), HistoryQuery),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn job_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<EventPage>, ApiError> {
    caller.require(Permission::Read)?;
    let job_id = parse_id("job", &id)?;
    let limit = parse_limit(q.limit.as_deref(), 100, 1000)?;
    let before = q
        .before
        .as_deref()
        .map(|raw| {
            raw.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_query",
                        format!("`before` must be a positive event seq (a page's `next_before`), not `{raw}`"),
                    )
                })
        })
        .transpose()?;
    if state.store.get_job(job_id).await?.is_none() {
        return Err(ApiError::NotFound(format!("job {job_id} not found")));
    }
    let events = state.store.job_events_before(job_id, before, limit).await?;
    let next_before = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    Ok(Json(EventPage {
        events,
        next_before,
    }))
}

/// One task and what became of each hand-out.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskView {
    pub task: Task,
    /// Oldest first, read back from the task's events.
    pub attempts: Vec<Attempt>,
}

/// One task with its attempts: agent, times, outcome, error and usage.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "jobs", params(("id" = Uuid, Path)),
    responses((status = 200, body = TaskView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiError> {
    caller.require(Permission::Read)?;
    let task_id = parse_id("task", &id)?;
    let detail = state
        .store
        .task_detail(task_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("task {task_id} not found")))?;
    let attempts = attempts_of(&detail.events, detail.usage);
    Ok(Json(TaskView {
        task: detail.task,
        attempts,
    }))
}

/// Query of `GET /v1/throughput`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ThroughputQuery {
    /// `minute` (the last 24 hours; default) or `second` (the last 2 minutes).
    pub resolution: Option<String>,
}

/// This node's throughput over time.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ThroughputHistory {
    pub resolution_seconds: u32,
    /// Oldest first, the newest possibly still filling; buckets with no activity are left out.
    pub buckets: Vec<Bucket>,
}

/// Tasks finished and dispatched, and dispatch latency, per minute for the
/// last 24 hours or per second for the last 2 minutes, kept in this hub
/// node's memory since it started.
#[utoipa::path(get, path = "/v1/throughput", tag = "agents", params(ThroughputQuery),
    responses((status = 200, body = ThroughputHistory), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn throughput(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ThroughputQuery>,
) -> Result<Json<ThroughputHistory>, ApiError> {
    caller.require(Permission::Read)?;
    let (resolution, width) = match q.resolution.as_deref().map(str::trim) {
        None | Some("minute") => (Resolution::Minute, 60),
        Some("second") => (Resolution::Second, 1),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!(
                    "`resolution` is `minute` (the last {} hours) or `second` (the last {SECONDS_KEPT} s), not `{other}`",
                    MINUTES_KEPT / 60
                ),
            ));
        }
    };
    Ok(Json(ThroughputHistory {
        resolution_seconds: width,
        buckets: state.hub.throughput.history(resolution, Utc::now()),
    }))
}
