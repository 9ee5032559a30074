//! Jobs: creation (with idempotency and dependencies), reads,
//! listing, transitions and cancellation.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::create::create_jobs_in;
use super::finish::settle_dependents;
use super::items::{append_batch, append_events, insert_tasks};
use crate::domain::{
    CreateJobOutcome, Document, DocumentMeta, Job, JobFilter, JobPage, JobStatus, NewEvent, NewJob,
};
use crate::store::StoreError;
use crate::store::driver::{Driver, Texts, Ts, Uuids, opt_ts, query};
use crate::store::group_commit::{Applying, Created};
use crate::store::shared::{
    self, ACTIVE_TASK, AttachmentRow, CANCELLABLE_JOB, Changes, JobRow, NewTask, job_select,
};

/// See [`crate::store::Store::create_jobs`]: all in one transaction, all or nothing.
pub(super) async fn create_jobs<D: Driver>(
    pool: &D::Pool,
    jobs: Vec<NewJob>,
) -> Result<Vec<Created>, StoreError> {
    let at = shared::now();
    let mut tx = D::begin(pool).await?;
    let refs: Vec<&NewJob> = jobs.iter().collect();
    let made = create_jobs_in::<D>(&mut tx, &refs, at).await?;
    let mut outcomes = Vec::with_capacity(made.len());
    let mut applying = Vec::with_capacity(made.len());
    for made in made {
        let made = made?;
        let mut cx = Applying::new(at, crate::events::request_id::current());
        cx.events = made.events;
        outcomes.push(Created {
            outcome: made.outcome,
            ready: made.ready,
        });
        applying.push(cx);
    }
    // Events last, all at once (on Postgres the append lock is taken only
    // after every row lock of the batch, see `items::append_events`).
    append_batch::<D>(&mut tx, &applying).await?;
    D::commit(tx).await?;
    Ok(outcomes)
}

/// The replay answer when `(created_by, idempotency_key)` names a stored job.
pub(super) async fn find_by_key<D: Driver>(
    conn: &mut D::Conn,
    new: &NewJob,
) -> Result<Option<Result<CreateJobOutcome, StoreError>>, StoreError> {
    let Some(key) = &new.idempotency_key else {
        return Ok(None);
    };
    let row: Option<JobRow> = query::<D>(concat!(
        job_select!(),
        " WHERE j.created_by = $1 AND j.idempotency_key = $2"
    ))
    .bind(&new.created_by)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let attachments = load_attachments::<D>(conn, &[row.id]).await?;
    Ok(Some(shared::replay(row, new, attachments)))
}

/// Labels and dependencies of the given jobs, in one query.
async fn load_attachments<D: Driver>(
    conn: &mut D::Conn,
    ids: &[Uuid],
) -> Result<Vec<AttachmentRow>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    query::<D>(format!(
        "SELECT job_id, label, CAST(NULL AS uuid) AS depends_on FROM job_labels \
         WHERE job_id {} UNION ALL \
         SELECT job_id, CAST(NULL AS text), depends_on FROM job_dependencies WHERE job_id {}",
        D::in_uuids(1),
        D::in_uuids(1)
    ))
    .bind(Uuids(ids.to_vec()))
    .fetch_all(conn)
    .await
}

/// One job with labels and dependencies, or `None`.
pub(super) async fn fetch_job<D: Driver>(
    conn: &mut D::Conn,
    id: Uuid,
) -> Result<Option<Job>, StoreError> {
    let row: Option<JobRow> = query::<D>(concat!(job_select!(), " WHERE j.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let attachments = load_attachments::<D>(conn, &[id]).await?;
    Ok(shared::into_jobs(vec![row], attachments)?.pop())
}

/// The jobs with these ids (labels and dependencies included), by id.
pub(super) async fn fetch_jobs<D: Driver>(
    conn: &mut D::Conn,
    ids: &[Uuid],
) -> Result<Vec<Job>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<JobRow> = query::<D>(format!(
        concat!(job_select!(), " WHERE j.id {} ORDER BY j.id"),
        D::in_uuids(1)
    ))
    .bind(Uuids(ids.to_vec()))
    .fetch_all(&mut *conn)
    .await?;
    let attachments = load_attachments::<D>(conn, ids).await?;
    shared::into_jobs(rows, attachments)
}

/// See [`crate::store::Store::list_jobs`].
pub(super) async fn list_jobs<D: Driver>(
    conn: &mut D::Conn,
    filter: &JobFilter,
) -> Result<JobPage, StoreError> {
    let limit = shared::page_limit(filter.limit);
    let mut qb = query::<D>(job_select!());
    qb.push(" WHERE TRUE");
    if let Some(status) = filter.status {
        qb.push(" AND j.status = ").push_bind(status.as_str());
    }
    if let Some(label) = &filter.label {
        qb.push(" AND j.id IN (SELECT job_id FROM job_labels WHERE label = ")
            .push_bind(label.clone())
            .push(")");
    }
    for context in &filter.context {
        D::push_context_filter(&mut qb, context);
    }
    if let Some(text) = &filter.text {
        D::push_contains(&mut qb, "j.prompt", false, text);
    }
    if let Some(at) = filter.created_after {
        qb.push(" AND j.created_at >= ").push_bind(Ts(at));
    }
    if let Some(at) = filter.created_before {
        qb.push(" AND j.created_at < ").push_bind(Ts(at));
    }
    if let Some(before) = filter.before {
        qb.push(" AND j.id < ").push_bind(before);
    }
    qb.push(" ORDER BY j.id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);

    let mut rows: Vec<JobRow> = qb.fetch_all(&mut *conn).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let attachments = load_attachments::<D>(conn, &ids).await?;
    let jobs = shared::into_jobs(rows, attachments)?;
    let next = if more {
        jobs.last().map(|j| j.id)
    } else {
        None
    };
    Ok(JobPage { jobs, next })
}

/// See [`crate::store::Store::get_document`].
pub(super) async fn get_document<D: Driver>(
    conn: &mut D::Conn,
    job_id: Uuid,
) -> Result<Option<Document>, StoreError> {
    let row: Option<(String, String, i64, String, Vec<u8>)> = query::<D>(
        "SELECT file_name, content_type, size, sha256, bytes FROM documents WHERE job_id = $1",
    )
    .bind(job_id)
    .fetch_optional(conn)
    .await?;
    Ok(
        row.map(|(file_name, content_type, size, sha256, bytes)| Document {
            meta: DocumentMeta {
                file_name,
                content_type,
                size,
                sha256,
            },
            bytes,
        }),
    )
}

/// The current status of a job, for conflict messages.
async fn current_status<D: Driver>(
    conn: &mut D::Conn,
    id: Uuid,
) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> = query::<D>("SELECT status FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|(status,)| status))
}

/// See [`crate::store::Store::transition_job`].
pub(super) async fn transition_job<D: Driver>(
    pool: &D::Pool,
    id: Uuid,
    from: &[JobStatus],
    to: JobStatus,
    reason: Option<String>,
) -> Result<Job, StoreError> {
    let Some(kind) = shared::job_event_type(to) else {
        return Err(shared::invalid_target(id, to));
    };
    let at = shared::now();
    let mut tx = D::begin(pool).await?;
    let updated: Option<(Json<Vec<String>>, i16, i32)> = query::<D>(format!(
        "UPDATE jobs SET status = $2, status_reason = $3, updated_at = $4, version = version + 1, \
         started_at = COALESCE(started_at, $5), finished_at = COALESCE($6, finished_at) \
         WHERE id = $1 AND status {} \
         RETURNING pipeline, priority, max_attempts",
        D::in_texts(7)
    ))
    .bind(id)
    .bind(to.as_str())
    .bind(&reason)
    .bind(Ts(at))
    .bind(opt_ts((to == JobStatus::Running).then_some(at)))
    .bind(opt_ts(to.is_terminal().then_some(at)))
    .bind(Texts::of(from))
    .fetch_optional(&mut *tx)
    .await?;
    let Some((pipeline, priority, max_attempts)) = updated else {
        return match current_status::<D>(&mut tx, id).await? {
            None => Err(StoreError::NotFound("job")),
            Some(current) => Err(shared::transition_conflict(id, &current, from, to)),
        };
    };

    let mut events = vec![shared::job_status_event(kind, id, to, reason.as_deref())];
    if to == JobStatus::Queued {
        let (has_tasks,): (bool,) =
            query::<D>("SELECT EXISTS (SELECT 1 FROM tasks WHERE job_id = $1)")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if !has_tasks && let Some(task) = NewTask::first(id, &pipeline.0, priority, max_attempts) {
            insert_tasks::<D>(&mut tx, std::slice::from_ref(&task), at).await?;
            events.push(task.event());
        }
    }
    if matches!(to, JobStatus::Failed | JobStatus::Cancelled) {
        let mut changes = Changes {
            events,
            ..Changes::default()
        };
        settle_dependents::<D>(&mut tx, id, at, &mut changes).await?;
        events = changes.events;
    }
    let job = fetch_job::<D>(&mut tx, id)
        .await?
        .ok_or(StoreError::NotFound("job"))?;
    append_events::<D>(&mut tx, &events, at).await?;
    D::commit(tx).await?;
    Ok(job)
}

/// See [`crate::store::Store::cancel_job`].
pub(super) async fn cancel_job<D: Driver>(
    pool: &D::Pool,
    id: Uuid,
    reason: String,
) -> Result<(Job, Vec<Uuid>), StoreError> {
    let at = shared::now();
    let cancelled = JobStatus::Cancelled;
    let mut tx = D::begin(pool).await?;
    let updated = query::<D>(format!(
        "UPDATE jobs SET status = $2, status_reason = $3, updated_at = $4, finished_at = $4, \
         version = version + 1 WHERE id = $1 AND status {}",
        D::in_texts(5)
    ))
    .bind(id)
    .bind(cancelled.as_str())
    .bind(&reason)
    .bind(Ts(at))
    .bind(Texts::of(CANCELLABLE_JOB))
    .execute(&mut *tx)
    .await?;
    if updated == 0 {
        return match current_status::<D>(&mut tx, id).await? {
            None => Err(StoreError::NotFound("job")),
            Some(current) => Err(shared::cancel_conflict(id, &current)),
        };
    }

    let event = shared::job_status_event(
        crate::domain::EventType::JobCancelled,
        id,
        cancelled,
        Some(&reason),
    );
    stop_job::<D>(tx, id, event, at).await
}

/// The rest of a job's stop, once the job row is terminal (a cancel, or the
/// monitor expiring it): its active tasks are cancelled, the jobs waiting on
/// it settled, and `stopped` plus one `task.cancelled` per task appended, in
/// `tx`, which is committed. Returns the job and the cancelled tasks, sorted.
pub(super) async fn stop_job<D: Driver>(
    mut tx: D::Tx,
    job_id: Uuid,
    stopped: NewEvent,
    at: DateTime<Utc>,
) -> Result<(Job, Vec<Uuid>), StoreError> {
    let rows: Vec<(Uuid,)> = query::<D>(format!(
        "UPDATE tasks SET status = $2, updated_at = $3, version = version + 1 \
         WHERE job_id = $1 AND status {} RETURNING id",
        D::in_texts(4)
    ))
    .bind(job_id)
    .bind(crate::domain::TaskStatus::Cancelled.as_str())
    .bind(Ts(at))
    .bind(Texts::of(ACTIVE_TASK))
    .fetch_all(&mut *tx)
    .await?;
    let mut task_ids: Vec<Uuid> = rows.into_iter().map(|(id,)| id).collect();
    task_ids.sort();
    let mut changes = Changes::default();
    changes.events.push(stopped);
    changes.events.extend(
        task_ids
            .iter()
            .map(|t| shared::task_cancelled_event(job_id, *t)),
    );
    settle_dependents::<D>(&mut tx, job_id, at, &mut changes).await?;
    let job = fetch_job::<D>(&mut tx, job_id)
        .await?
        .ok_or(StoreError::NotFound("job"))?;
    append_events::<D>(&mut tx, &changes.events, at).await?;
    D::commit(tx).await?;
    Ok((job, task_ids))
}
