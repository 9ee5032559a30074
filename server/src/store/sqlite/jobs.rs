//! Jobs on SQLite: creation (with idempotency and dependencies), reads,
//! listing, transitions and cancellation.
//!
//! Writes run on the single writer inside `BEGIN IMMEDIATE`, so the checks a
//! write makes (idempotency key, dependency states, current status) cannot be
//! invalidated before it commits: there is no concurrent writer.

use sqlx::types::Json;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::finish::settle_dependents;
use super::items::{append_batch, append_events, insert_tasks};
use super::{SqliteStore, ts};
use crate::domain::{
    CreateJobOutcome, Document, DocumentMeta, EventType, Job, JobFilter, JobPage, JobStatus,
    NewJob, TaskStatus,
};
use crate::store::StoreError;
use crate::store::group_commit::Applying;
use crate::store::shared::{
    self, ACTIVE_TASK, AttachmentRow, CANCELLABLE_JOB, Changes, JobRow, NewTask, job_select,
};

/// See [`crate::store::Store::create_jobs`]: all in one transaction, all or nothing.
pub(super) async fn create_jobs(
    store: &SqliteStore,
    jobs: Vec<NewJob>,
) -> Result<Vec<CreateJobOutcome>, StoreError> {
    let mut tx = store.begin().await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut applying = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let mut cx = Applying::new(shared::now(), crate::events::request_id::current());
        outcomes.push(create_job_in(&mut tx, job, &mut cx).await?);
        applying.push(cx);
    }
    // Events last, all at once (on Postgres the append lock is taken only
    // after every row lock of the batch, see `items::append_events`).
    append_batch(&mut tx, &applying).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// Creates one job inside the caller's transaction (the group-commit
/// writer's, or `create_jobs`'s).
pub(super) async fn create_job_in(
    tx: &mut SqliteConnection,
    new: &NewJob,
    cx: &mut Applying,
) -> Result<CreateJobOutcome, StoreError> {
    if let Some(outcome) = find_by_key(&mut *tx, new).await? {
        return outcome;
    }

    let labels = shared::normalized_labels(&new.labels);
    let deps = shared::normalized_deps(&new.depends_on);
    let status = if deps.is_empty() {
        JobStatus::Queued
    } else {
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT id, status FROM jobs WHERE id IN (");
        let mut list = qb.separated(", ");
        for dep in &deps {
            list.push_bind(*dep);
        }
        qb.push(")");
        let found: Vec<(Uuid, String)> = qb.build_query_as().fetch_all(&mut *tx).await?;
        let missing: Vec<Uuid> = deps
            .iter()
            .filter(|d| !found.iter().any(|(id, _)| id == *d))
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(StoreError::UnknownDependencies(missing));
        }
        if found
            .iter()
            .all(|(_, s)| s == JobStatus::Completed.as_str())
        {
            JobStatus::Queued
        } else {
            JobStatus::Waiting
        }
    };

    let at = cx.at;
    sqlx::query(
        "INSERT INTO jobs (id, status, pipeline, prompt, context, priority, idempotency_key, \
         request_hash, created_by, max_attempts, created_at, updated_at, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, 1)",
    )
    .bind(new.id)
    .bind(status.as_str())
    .bind(Json(&new.pipeline))
    .bind(&new.prompt)
    .bind(&new.context)
    .bind(new.priority)
    .bind(&new.idempotency_key)
    .bind(&new.request_hash)
    .bind(&new.created_by)
    .bind(new.max_attempts)
    .bind(ts(at))
    .execute(&mut *tx)
    .await?;

    if let Some(doc) = &new.document {
        sqlx::query(
            "INSERT INTO documents (job_id, file_name, content_type, size, sha256, bytes) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new.id)
        .bind(&doc.meta.file_name)
        .bind(&doc.meta.content_type)
        .bind(doc.meta.size)
        .bind(&doc.meta.sha256)
        .bind(&doc.bytes)
        .execute(&mut *tx)
        .await?;
    }
    for chunk in labels.chunks(shared::INSERT_CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO job_labels (job_id, label) ");
        qb.push_values(chunk, |mut row, label| {
            row.push_bind(new.id).push_bind(label.clone());
        });
        qb.build().execute(&mut *tx).await?;
    }
    for chunk in deps.chunks(shared::INSERT_CHUNK) {
        let mut qb =
            QueryBuilder::<Sqlite>::new("INSERT INTO job_dependencies (job_id, depends_on) ");
        qb.push_values(chunk, |mut row, dep| {
            row.push_bind(new.id).push_bind(*dep);
        });
        qb.build().execute(&mut *tx).await?;
    }

    let job = shared::created_job(new, status, labels, deps, at);
    let mut events = vec![shared::job_created_event(&job)];
    if status == JobStatus::Queued
        && let Some(task) = NewTask::first(job.id, &job.pipeline, job.priority, new.max_attempts)
    {
        insert_tasks(&mut *tx, std::slice::from_ref(&task), at).await?;
        events.push(task.event());
    }
    cx.events.extend(events);
    Ok(CreateJobOutcome::Created(job))
}

/// The replay answer when `(created_by, idempotency_key)` names a stored job.
async fn find_by_key(
    conn: &mut SqliteConnection,
    new: &NewJob,
) -> Result<Option<Result<CreateJobOutcome, StoreError>>, StoreError> {
    let Some(key) = &new.idempotency_key else {
        return Ok(None);
    };
    let row: Option<JobRow> = sqlx::query_as(concat!(
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
    let attachments = load_attachments(conn, &[row.id]).await?;
    Ok(Some(shared::replay(row, new, attachments)))
}

/// Labels and dependencies of the given jobs, in one query.
async fn load_attachments(
    conn: &mut SqliteConnection,
    ids: &[Uuid],
) -> Result<Vec<AttachmentRow>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT job_id, label, NULL AS depends_on FROM job_labels WHERE job_id IN (",
    );
    push_id_list(&mut qb, ids);
    qb.push(") UNION ALL SELECT job_id, NULL, depends_on FROM job_dependencies WHERE job_id IN (");
    push_id_list(&mut qb, ids);
    qb.push(")");
    Ok(qb.build_query_as().fetch_all(conn).await?)
}

fn push_id_list(qb: &mut QueryBuilder<Sqlite>, ids: &[Uuid]) {
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
}

/// One job with labels and dependencies, or `None`.
pub(super) async fn fetch_job(
    conn: &mut SqliteConnection,
    id: Uuid,
) -> Result<Option<Job>, StoreError> {
    let row: Option<JobRow> = sqlx::query_as(concat!(job_select!(), " WHERE j.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let attachments = load_attachments(conn, &[id]).await?;
    Ok(shared::into_jobs(vec![row], attachments)?.pop())
}

/// The jobs with these ids (labels and dependencies included), by id.
pub(super) async fn fetch_jobs(
    conn: &mut SqliteConnection,
    ids: &[Uuid],
) -> Result<Vec<Job>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = QueryBuilder::<Sqlite>::new(job_select!());
    qb.push(" WHERE j.id IN (");
    push_id_list(&mut qb, ids);
    qb.push(") ORDER BY j.id");
    let rows: Vec<JobRow> = qb.build_query_as().fetch_all(&mut *conn).await?;
    let attachments = load_attachments(conn, ids).await?;
    shared::into_jobs(rows, attachments)
}

/// See [`crate::store::Store::list_jobs`].
pub(super) async fn list_jobs(
    pool: &SqlitePool,
    filter: &JobFilter,
) -> Result<JobPage, StoreError> {
    let limit = shared::page_limit(filter.limit);
    let mut qb = QueryBuilder::<Sqlite>::new(job_select!());
    qb.push(" WHERE 1 = 1");
    if let Some(status) = filter.status {
        qb.push(" AND j.status = ").push_bind(status.as_str());
    }
    if let Some(label) = &filter.label {
        qb.push(" AND j.id IN (SELECT job_id FROM job_labels WHERE label = ")
            .push_bind(label.clone())
            .push(")");
    }
    if let Some(before) = filter.before {
        qb.push(" AND j.id < ").push_bind(before);
    }
    qb.push(" ORDER BY j.id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);

    // One connection for both queries: they see the same snapshot only inside
    // a transaction, but labels and dependencies never change, so it is enough.
    let mut conn = pool.acquire().await?;
    let mut rows: Vec<JobRow> = qb.build_query_as().fetch_all(&mut *conn).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let attachments = load_attachments(&mut conn, &ids).await?;
    let jobs = shared::into_jobs(rows, attachments)?;
    let next = if more {
        jobs.last().map(|j| j.id)
    } else {
        None
    };
    Ok(JobPage { jobs, next })
}

/// See [`crate::store::Store::get_document`].
pub(super) async fn get_document(
    pool: &SqlitePool,
    job_id: Uuid,
) -> Result<Option<Document>, StoreError> {
    let row: Option<(String, String, i64, String, Vec<u8>)> = sqlx::query_as(
        "SELECT file_name, content_type, size, sha256, bytes FROM documents WHERE job_id = $1",
    )
    .bind(job_id)
    .fetch_optional(pool)
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
async fn current_status(
    conn: &mut SqliteConnection,
    id: Uuid,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// See [`crate::store::Store::transition_job`].
pub(super) async fn transition_job(
    store: &SqliteStore,
    id: Uuid,
    from: &[JobStatus],
    to: JobStatus,
    reason: Option<String>,
) -> Result<Job, StoreError> {
    let Some(kind) = shared::job_event_type(to) else {
        return Err(shared::invalid_target(id, to));
    };
    let at = shared::now();
    let mut qb = QueryBuilder::<Sqlite>::new("UPDATE jobs SET status = ");
    qb.push_bind(to.as_str())
        .push(", status_reason = ")
        .push_bind(reason.clone())
        .push(", updated_at = ")
        .push_bind(ts(at))
        .push(", version = version + 1, started_at = COALESCE(started_at, ")
        .push_bind((to == JobStatus::Running).then(|| ts(at)))
        .push("), finished_at = COALESCE(")
        .push_bind(to.is_terminal().then(|| ts(at)))
        .push(", finished_at) WHERE id = ")
        .push_bind(id)
        .push(" AND status IN (");
    {
        let mut list = qb.separated(", ");
        for s in from {
            list.push_bind(s.as_str());
        }
        if from.is_empty() {
            list.push("NULL");
        }
    }
    qb.push(") RETURNING pipeline, priority, max_attempts");

    let mut tx = store.begin().await?;
    let updated: Option<(Json<Vec<String>>, i16, i32)> =
        qb.build_query_as().fetch_optional(&mut *tx).await?;
    let Some((pipeline, priority, max_attempts)) = updated else {
        return match current_status(&mut tx, id).await? {
            None => Err(StoreError::NotFound("job")),
            Some(current) => Err(shared::transition_conflict(id, &current, from, to)),
        };
    };

    let mut events = vec![shared::job_status_event(kind, id, to, reason.as_deref())];
    if to == JobStatus::Queued {
        let has_tasks: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tasks WHERE job_id = $1)")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if !has_tasks && let Some(task) = NewTask::first(id, &pipeline.0, priority, max_attempts) {
            insert_tasks(&mut tx, std::slice::from_ref(&task), at).await?;
            events.push(task.event());
        }
    }
    if matches!(to, JobStatus::Failed | JobStatus::Cancelled) {
        let mut changes = Changes {
            events,
            ..Changes::default()
        };
        settle_dependents(&mut tx, id, at, &mut changes).await?;
        events = changes.events;
    }
    let job = fetch_job(&mut tx, id)
        .await?
        .ok_or(StoreError::NotFound("job"))?;
    append_events(&mut tx, &events, at).await?;
    tx.commit().await?;
    Ok(job)
}

/// See [`crate::store::Store::cancel_job`].
pub(super) async fn cancel_job(
    store: &SqliteStore,
    id: Uuid,
    reason: String,
) -> Result<(Job, Vec<Uuid>), StoreError> {
    let at = shared::now();
    let cancelled = JobStatus::Cancelled;
    let [w, q, r] = CANCELLABLE_JOB;
    let mut tx = store.begin().await?;
    let updated = sqlx::query(
        "UPDATE jobs SET status = $2, status_reason = $3, updated_at = $4, finished_at = $4, \
         version = version + 1 WHERE id = $1 AND status IN ($5, $6, $7)",
    )
    .bind(id)
    .bind(cancelled.as_str())
    .bind(&reason)
    .bind(ts(at))
    .bind(w.as_str())
    .bind(q.as_str())
    .bind(r.as_str())
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return match current_status(&mut tx, id).await? {
            None => Err(StoreError::NotFound("job")),
            Some(current) => Err(shared::cancel_conflict(id, &current)),
        };
    }

    let [p, a, ru] = ACTIVE_TASK;
    let mut task_ids: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE tasks SET status = $2, updated_at = $3, version = version + 1 \
         WHERE job_id = $1 AND status IN ($4, $5, $6) RETURNING id",
    )
    .bind(id)
    .bind(TaskStatus::Cancelled.as_str())
    .bind(ts(at))
    .bind(p.as_str())
    .bind(a.as_str())
    .bind(ru.as_str())
    .fetch_all(&mut *tx)
    .await?;
    task_ids.sort();

    let mut events = vec![shared::job_status_event(
        EventType::JobCancelled,
        id,
        cancelled,
        Some(&reason),
    )];
    events.extend(
        task_ids
            .iter()
            .map(|t| shared::task_cancelled_event(id, *t)),
    );
    let mut changes = Changes {
        events,
        ..Changes::default()
    };
    settle_dependents(&mut tx, id, at, &mut changes).await?;
    let job = fetch_job(&mut tx, id)
        .await?
        .ok_or(StoreError::NotFound("job"))?;
    append_events(&mut tx, &changes.events, at).await?;
    tx.commit().await?;
    Ok((job, task_ids))
}
