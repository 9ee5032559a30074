//! Job creation, set-based: a batch of new jobs (a group commit's, or a
//! `POST /v1/jobs/batch`) is checked job by job (idempotency key,
//! dependencies: reads that only keyed or dependent jobs need), then
//! written together: one multi-row insert per table, whatever the number
//! of jobs.
//!
//! Checks see the jobs of the same batch: before a check that could read
//! one not written yet (a repeated idempotency key, a dependency on a job of
//! the batch), what is planned so far is written.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::items::insert_tasks;
use super::jobs::find_by_key;
use crate::domain::{CreateJobOutcome, JobStatus, NewEvent, NewJob, Task};
use crate::store::StoreError;
use crate::store::driver::{Driver, RowLock, Ts, Uuids, query};
use crate::store::shared::{self, INSERT_CHUNK, NewTask};

/// What creating one job gives: its outcome, the events to append, and the
/// task it made ready (none for a replay or a job waiting on others).
pub(super) struct Made {
    pub outcome: CreateJobOutcome,
    pub events: Vec<NewEvent>,
    pub ready: Vec<Task>,
}

/// A checked job, to be written with the others.
struct Planned<'a> {
    index: usize,
    new: &'a NewJob,
    status: JobStatus,
    labels: Vec<String>,
    deps: Vec<Uuid>,
}

/// Creates `jobs` in the caller's transaction, at `at`. Per job, in order:
/// what it made, or why it was refused (`IdempotencyMismatch`,
/// `UnknownDependencies`) without writing anything. `Err` is a database
/// error: the transaction is lost.
pub(super) async fn create_jobs_in<D: Driver>(
    conn: &mut D::Conn,
    jobs: &[&NewJob],
    at: DateTime<Utc>,
) -> Result<Vec<Result<Made, StoreError>>, StoreError> {
    let mut results: Vec<Option<Result<Made, StoreError>>> = jobs.iter().map(|_| None).collect();
    let mut planned: Vec<Planned<'_>> = Vec::new();
    let mut planned_ids = HashSet::new();
    let mut planned_keys = HashSet::new();
    for (index, new) in jobs.iter().copied().enumerate() {
        let key = new
            .idempotency_key
            .as_ref()
            .map(|k| (new.created_by.clone(), k.clone()));
        let deps = shared::normalized_deps(&new.depends_on);
        let sees_planned = key.as_ref().is_some_and(|k| planned_keys.contains(k))
            || deps.iter().any(|d| planned_ids.contains(d));
        if sees_planned {
            write_jobs::<D>(&mut *conn, std::mem::take(&mut planned), at, &mut results).await?;
            planned_ids.clear();
            planned_keys.clear();
        }
        if let Some(replay) = find_by_key::<D>(&mut *conn, new).await? {
            results[index] = Some(replay.map(|outcome| Made {
                outcome,
                events: Vec::new(),
                ready: Vec::new(),
            }));
            continue;
        }
        let status = match dependency_status::<D>(&mut *conn, &deps).await? {
            Ok(status) => status,
            Err(refused) => {
                results[index] = Some(Err(refused));
                continue;
            }
        };
        planned_ids.insert(new.id);
        planned_keys.extend(key);
        planned.push(Planned {
            index,
            new,
            status,
            labels: shared::normalized_labels(&new.labels),
            deps,
        });
    }
    write_jobs::<D>(&mut *conn, planned, at, &mut results).await?;
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| StoreError::Corrupt("a job of the batch was not written".into())))
        .collect()
}

/// `queued` without dependencies or when all are completed, `waiting`
/// otherwise; `UnknownDependencies` names those that do not exist.
///
/// Share-locked (or under SQLite's one writer): a dependency cannot complete
/// between this check and our commit, so whoever completes it later sees
/// this job and releases it.
async fn dependency_status<D: Driver>(
    conn: &mut D::Conn,
    deps: &[Uuid],
) -> Result<Result<JobStatus, StoreError>, StoreError> {
    if deps.is_empty() {
        return Ok(Ok(JobStatus::Queued));
    }
    let found: Vec<(Uuid, String)> = query::<D>(format!(
        "SELECT id, status FROM jobs WHERE id {} ORDER BY id{}",
        D::in_uuids(1),
        D::row_lock(RowLock::Share)
    ))
    .bind(Uuids(deps.to_vec()))
    .fetch_all(conn)
    .await?;
    let missing: Vec<Uuid> = deps
        .iter()
        .filter(|d| !found.iter().any(|(id, _)| id == *d))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Ok(Err(StoreError::UnknownDependencies(missing)));
    }
    let all_done = found
        .iter()
        .all(|(_, s)| s == JobStatus::Completed.as_str());
    Ok(Ok(if all_done {
        JobStatus::Queued
    } else {
        JobStatus::Waiting
    }))
}

/// Writes the planned jobs, their documents, labels, dependencies and
/// first tasks, one multi-row insert per table, and records what each made.
async fn write_jobs<D: Driver>(
    conn: &mut D::Conn,
    planned: Vec<Planned<'_>>,
    at: DateTime<Utc>,
    results: &mut [Option<Result<Made, StoreError>>],
) -> Result<(), StoreError> {
    if planned.is_empty() {
        return Ok(());
    }
    for chunk in planned.chunks(INSERT_CHUNK) {
        let mut q = query::<D>(
            "INSERT INTO jobs (id, status, pipeline, prompt, context, priority, idempotency_key, \
             request_hash, created_by, max_attempts, created_at, updated_at, version) ",
        );
        q.push_values(chunk, |row, p| {
            let new = p.new;
            row.bind(new.id)
                .bind(p.status.as_str())
                .bind(Json(&new.pipeline))
                .bind(&new.prompt)
                .bind(&new.context)
                .bind(new.priority)
                .bind(&new.idempotency_key)
                .bind(&new.request_hash)
                .bind(&new.created_by)
                .bind(new.max_attempts)
                .bind(Ts(at))
                .bind(Ts(at))
                .bind(1_i64);
        });
        q.execute(&mut *conn).await?;
    }
    for p in &planned {
        if let Some(doc) = &p.new.document {
            query::<D>(
                "INSERT INTO documents (job_id, file_name, content_type, size, sha256, bytes) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(p.new.id)
            .bind(&doc.meta.file_name)
            .bind(&doc.meta.content_type)
            .bind(doc.meta.size)
            .bind(&doc.meta.sha256)
            .bind(&doc.bytes)
            .execute(&mut *conn)
            .await?;
        }
    }
    let labels: Vec<(Uuid, &str)> = planned
        .iter()
        .flat_map(|p| p.labels.iter().map(|l| (p.new.id, l.as_str())))
        .collect();
    for chunk in labels.chunks(INSERT_CHUNK) {
        let mut q = query::<D>("INSERT INTO job_labels (job_id, label) ");
        q.push_values(chunk, |row, (id, label)| {
            row.bind(*id).bind(*label);
        });
        q.execute(&mut *conn).await?;
    }
    let deps: Vec<(Uuid, Uuid)> = planned
        .iter()
        .flat_map(|p| p.deps.iter().map(|d| (p.new.id, *d)))
        .collect();
    for chunk in deps.chunks(INSERT_CHUNK) {
        let mut q = query::<D>("INSERT INTO job_dependencies (job_id, depends_on) ");
        q.push_values(chunk, |row, (id, dep)| {
            row.bind(*id).bind(*dep);
        });
        q.execute(&mut *conn).await?;
    }

    let firsts: Vec<Option<NewTask>> = planned
        .iter()
        .map(|p| {
            let new = p.new;
            (p.status == JobStatus::Queued)
                .then(|| NewTask::first(new.id, &new.pipeline, new.priority, new.max_attempts))
                .flatten()
        })
        .collect();
    let tasks: Vec<NewTask> = firsts.iter().flatten().cloned().collect();
    insert_tasks::<D>(&mut *conn, &tasks, at).await?;

    for (p, first) in planned.into_iter().zip(firsts) {
        let job = shared::created_job(p.new, p.status, p.labels, p.deps, at);
        let mut events = vec![shared::job_created_event(&job)];
        let mut ready = Vec::new();
        if let Some(task) = first {
            events.push(task.event());
            ready.push(task.to_task(at));
        }
        results[p.index] = Some(Ok(Made {
            outcome: CreateJobOutcome::Created(job),
            events,
            ready,
        }));
    }
    Ok(())
}
