//! `POST /v1/jobs/batch`: up to 1,000 jobs in one request and one
//! transaction, all or nothing, idempotency keys honoured per job.
//!
//! Every job is validated first (problems are reported with the item's index,
//! e.g. `jobs[3].prompt`), so an invalid batch stores nothing.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::create::{self, CreateJobRequest};
use crate::auth::Permission;
use crate::domain::{CreateJobOutcome, JobStatus};
use crate::http::error::{ApiError, ErrorBody, FieldError};
use crate::http::extract::{ApiJson, Caller};
use crate::state::AppState;

/// Most jobs one batch may carry.
pub const MAX_BATCH: usize = 1000;

/// The body of `POST /v1/jobs/batch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 1 to 1,000 jobs, each as the body of `POST /v1/jobs` (JSON form), with
    /// an optional `idempotency_key`.
    pub jobs: Vec<CreateJobRequest>,
}

/// One job of a batch's answer, in request order.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchJob {
    pub id: Uuid,
    pub status: JobStatus,
    /// False when an idempotency key named an existing job.
    pub created: bool,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchResponse {
    pub jobs: Vec<BatchJob>,
}

/// Submit many jobs at once.
#[utoipa::path(post, path = "/v1/jobs/batch", tag = "jobs", request_body = BatchRequest,
    responses(
        (status = 201, description = "All stored (or found by idempotency key)", body = BatchResponse),
        (status = 409, description = "An idempotency key reused with a different job", body = ErrorBody),
        (status = 422, description = "Invalid jobs; nothing stored", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create_batch(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<BatchRequest>, ApiError>,
) -> Result<(StatusCode, Json<BatchResponse>), ApiError> {
    // The role first: a caller who may not submit learns that, not what is
    // wrong with the body.
    let claims = caller.require(Permission::Operate)?;
    let ApiJson(request) = body?;
    if request.jobs.is_empty() || request.jobs.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "jobs",
            format!(
                "a batch holds 1 to {MAX_BATCH} jobs; this one has {}",
                request.jobs.len()
            ),
        ));
    }
    let mut problems = Vec::new();
    let mut jobs = Vec::with_capacity(request.jobs.len());
    // The dispatcher keeps the inputs checked here (see `hub::inputs`).
    let mut inputs = std::collections::HashMap::new();
    for (index, body) in request.jobs.into_iter().enumerate() {
        let draft = create::draft_from_json(body);
        let key = draft.body_idempotency_key();
        if let Some(key) = &key
            && (key.trim().is_empty() || key.len() > 255)
        {
            problems.push(FieldError::new(
                format!("jobs[{index}].idempotency_key"),
                "must be 1 to 255 characters",
            ));
        }
        match create::validate(draft, &state.settings.get(), &claims.sub, key) {
            Ok(job) => {
                if let Some(first) = job.pipeline.first() {
                    let input = crate::domain::job::stage0_input(
                        job.id,
                        &job.prompt,
                        &job.context,
                        job.document.as_ref(),
                    );
                    if let Err(problem) = state.hub.schemas.check_input(first, &input) {
                        problems.push(FieldError::new(format!("jobs[{index}].pipeline"), problem));
                    }
                    inputs.insert(job.id, input);
                }
                jobs.push(job);
            }
            Err(ApiError::Validation(fields)) => {
                problems.extend(
                    fields
                        .into_iter()
                        .map(|f| FieldError::new(format!("jobs[{index}].{}", f.field), f.message)),
                );
            }
            Err(other) => return Err(other),
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }

    let outcomes = state.store.submit_jobs(jobs).await?;
    let mut queued = 0;
    let mut ready = Vec::new();
    let answer: Vec<BatchJob> = outcomes
        .into_iter()
        .map(|created| match created.outcome {
            CreateJobOutcome::Created(job) => {
                crate::telemetry::links::remember(job.id, &tracing::Span::current());
                if job.status == JobStatus::Queued {
                    queued += 1;
                }
                ready.extend(created.ready);
                BatchJob {
                    id: job.id,
                    status: job.status,
                    created: true,
                }
            }
            CreateJobOutcome::Existing(job) => BatchJob {
                id: job.id,
                status: job.status,
                created: false,
            },
        })
        .collect();
    metrics::counter!("switchyard_jobs_created_total").increment(queued);
    tracing::info!(jobs = answer.len(), queued, "job batch stored");
    state.hub.created_ready(ready, inputs);
    Ok((StatusCode::CREATED, Json(BatchResponse { jobs: answer })))
}
