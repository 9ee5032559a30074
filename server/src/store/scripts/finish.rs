//! What happens when a task finishes: failure of an attempt (completion,
//! set-based, is in [`super::complete`]), the job's outcome, and the release (or failure) of the jobs
//! waiting on it. The decisions are in `shared::dispatch`; this file runs
//! their SQL.
//!
//! Locking (Postgres; SQLite has one writer): a finishing task first locks
//! its job row (`FOR NO KEY UPDATE`: it does not block the key-share locks
//! that inserting tasks and items takes). That orders jobs before tasks, as `cancel_job` does, and
//! serialises the tasks of one job as they finish, so of two last tasks
//! finishing at once the second sees the first and completes the job (under
//! READ COMMITTED each would otherwise see the other still running).
//! Dependents are locked after the job they depend on, which follows the
//! dependency graph, a DAG: dependencies always exist before their dependents.

use std::collections::{HashSet, VecDeque};

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::types::Json;
use uuid::Uuid;

use super::items::insert_tasks;
use super::tasks::task_state;
use crate::domain::{EventType, ItemStatus, JobStatus, Task, TaskFailure, TaskOutcome, TaskStatus};
use crate::store::StoreError;
use crate::store::driver::{Driver, Texts, Ts, Uuids, query};
use crate::store::group_commit::Applying;
use crate::store::shared::{
    self, ACTIVE_TASK, Changes, FAIL, FINISHABLE_JOB, FailurePlan, JobHead, NewTask, OPEN_ITEM,
    Release, TaskRow, task_columns,
};

/// Locks the job of a task (see the module docs); `NotFound("task")`.
async fn lock_job_of_task<D: Driver>(
    conn: &mut D::Conn,
    task_id: Uuid,
) -> Result<JobHead, StoreError> {
    let job: Option<JobHead> = query::<D>(format!(
        "SELECT j.id, j.pipeline, j.priority, j.max_attempts FROM tasks t \
         JOIN jobs j ON j.id = t.job_id WHERE t.id = $1{}",
        D::row_lock_of("j")
    ))
    .bind(task_id)
    .fetch_optional(conn)
    .await?;
    job.ok_or(StoreError::NotFound("task"))
}

/// See [`crate::store::Store::fail_task`].
pub(super) async fn fail_task<D: Driver>(
    conn: &mut D::Conn,
    f: &TaskFailure,
    cx: &mut Applying,
) -> Result<TaskOutcome, StoreError> {
    let at = cx.at;
    let job = lock_job_of_task::<D>(&mut *conn, f.task_id).await?;
    let row: TaskRow = query::<D>(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE id = $1"
    ))
    .bind(f.task_id)
    .fetch_one(&mut *conn)
    .await?;
    let before = Task::try_from(row)?;
    FAIL.check(f.task_id, f.attempt, f.agent_id, Some((&before).into()))?;
    let plan = shared::plan_failure(&before, f, at, rand::random());

    // Conditional on what the plan was made from: the attempt, its holder,
    // and the failure count (only ever changed under the job lock we hold).
    let (status, next_run_at) = match &plan {
        FailurePlan::Retry { next_run_at } => (TaskStatus::Pending, *next_run_at),
        FailurePlan::Fail { .. } => (TaskStatus::Failed, before.next_run_at),
    };
    let retry = matches!(plan, FailurePlan::Retry { .. });
    let row: Option<TaskRow> = query::<D>(format!(
        concat!(
            "UPDATE tasks SET status = $5, failures = failures + 1, error = $6, \
             next_run_at = $7, lease_until = NULL, \
             agent_id = CASE WHEN $8 THEN NULL ELSE agent_id END, \
             updated_at = $9, version = version + 1 \
             WHERE id = $1 AND attempt = $2 AND ($11 OR agent_id = $3) \
             AND failures = $4 AND status {} RETURNING ",
            task_columns!()
        ),
        D::in_texts(10)
    ))
    .bind(f.task_id)
    .bind(f.attempt)
    .bind(f.agent_id)
    .bind(before.failures)
    .bind(status.as_str())
    .bind(&f.error)
    .bind(Ts(next_run_at))
    .bind(retry)
    .bind(Ts(at))
    .bind(FAIL.start_states())
    .bind(f.agent_id.is_none())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        let current = task_state::<D>(&mut *conn, f.task_id).await?;
        return Err(FAIL.conflict(f.task_id, f.attempt, f.agent_id, current));
    };
    let task = Task::try_from(row)?;

    let mut changes = Changes::default();
    match plan {
        FailurePlan::Retry { next_run_at } => {
            changes.events.push(shared::task_event(
                EventType::TaskRetrying,
                &task,
                before.agent_id,
                json!({ "error": f.error, "failures": task.failures, "next_run_at": next_run_at }),
            ));
            changes.ready.push(task.clone());
        }
        FailurePlan::Fail { job_reason } => {
            changes.events.push(shared::task_event(
                EventType::TaskFailed,
                &task,
                before.agent_id,
                json!({ "error": f.error, "failures": task.failures }),
            ));
            if let Some(item_id) = task.item_id {
                let updated = query::<D>(format!(
                    "UPDATE items SET status = $2, last_error = $3, retry_count = $4, \
                     updated_at = $5 WHERE id = $1 AND status {}",
                    D::in_texts(6)
                ))
                .bind(item_id)
                .bind(ItemStatus::Failed.as_str())
                .bind(&f.error)
                .bind(task.failures)
                .bind(Ts(at))
                .bind(Texts::of(OPEN_ITEM))
                .execute(&mut *conn)
                .await?;
                if updated == 1 {
                    changes.events.push(shared::item_event(
                        EventType::ItemFailed,
                        item_id,
                        task.job_id,
                        task.stage - 1,
                        Some(&f.error),
                    ));
                }
            }
            match job_reason {
                Some(reason) => {
                    fail_job::<D>(&mut *conn, job.id, &reason, at, &mut changes).await?
                }
                None => complete_job_if_done::<D>(&mut *conn, job.id, at, &mut changes).await?,
            }
        }
    }
    Ok(cx.outcome(Some(task), changes))
}

/// A queued or running job whose first stage failed for good: `failed`, and
/// so are the jobs waiting on it.
async fn fail_job<D: Driver>(
    conn: &mut D::Conn,
    job_id: Uuid,
    reason: &str,
    at: DateTime<Utc>,
    changes: &mut Changes,
) -> Result<(), StoreError> {
    let failed = query::<D>(format!(
        "UPDATE jobs SET status = $2, status_reason = $3, updated_at = $4, finished_at = $4, \
         version = version + 1 WHERE id = $1 AND status {}",
        D::in_texts(5)
    ))
    .bind(job_id)
    .bind(JobStatus::Failed.as_str())
    .bind(reason)
    .bind(Ts(at))
    .bind(Texts::of(FINISHABLE_JOB))
    .execute(&mut *conn)
    .await?;
    if failed == 1 {
        changes.events.push(shared::job_status_event(
            EventType::JobFailed,
            job_id,
            JobStatus::Failed,
            Some(reason),
        ));
        changes.job_changed(job_id);
        settle_dependents::<D>(conn, job_id, at, changes).await?;
    }
    Ok(())
}

/// A queued or running job with no unfinished task left: `completed`, and
/// the jobs waiting on it are settled.
async fn complete_job_if_done<D: Driver>(
    conn: &mut D::Conn,
    job_id: Uuid,
    at: DateTime<Utc>,
    changes: &mut Changes,
) -> Result<(), StoreError> {
    if complete_jobs_if_done::<D, _>(&mut *conn, &[(job_id, ())], at)
        .await?
        .is_empty()
    {
        return Ok(());
    }
    job_completed(changes, job_id);
    settle_dependents::<D>(conn, job_id, at, changes).await
}

/// Records in `changes` that `job_id` just completed (`job.completed`).
pub(super) fn job_completed(changes: &mut Changes, job_id: Uuid) {
    changes.events.push(shared::job_status_event(
        EventType::JobCompleted,
        job_id,
        JobStatus::Completed,
        None,
    ));
    changes.job_changed(job_id);
}

/// Of `jobs` (locked, with a tag each), those that were queued or running
/// with no unfinished task left are now `completed`; returns them with
/// their tags. One statement: the job row is already locked, so the check
/// sees every completion that committed before this one.
pub(super) async fn complete_jobs_if_done<D: Driver, T: Copy>(
    conn: &mut D::Conn,
    jobs: &[(Uuid, T)],
    at: DateTime<Utc>,
) -> Result<Vec<(Uuid, T)>, StoreError> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(Uuid,)> = query::<D>(format!(
        "UPDATE jobs SET status = $1, updated_at = $2, finished_at = $2, version = version + 1 \
         WHERE id {} AND status {} \
         AND NOT EXISTS (SELECT 1 FROM tasks WHERE job_id = jobs.id AND status {}) RETURNING id",
        D::in_uuids(3),
        D::in_texts(4),
        D::in_texts(5)
    ))
    .bind(JobStatus::Completed.as_str())
    .bind(Ts(at))
    .bind(Uuids(jobs.iter().map(|(id, _)| *id).collect()))
    .bind(Texts::of(FINISHABLE_JOB))
    .bind(Texts::of(ACTIVE_TASK))
    .fetch_all(conn)
    .await?;
    let completed: HashSet<Uuid> = rows.into_iter().map(|(id,)| id).collect();
    Ok(jobs
        .iter()
        .filter(|(id, _)| completed.contains(id))
        .copied()
        .collect())
}

/// `finished` just became terminal: each job waiting on it is released
/// (`queued`, with its stage-0 task in `changes.ready`), failed (and its own
/// dependents settled in turn), or left waiting, per [`shared::release`].
pub(super) async fn settle_dependents<D: Driver>(
    conn: &mut D::Conn,
    finished: Uuid,
    at: DateTime<Utc>,
    changes: &mut Changes,
) -> Result<(), StoreError> {
    let mut work = VecDeque::from([finished]);
    while let Some(done) = work.pop_front() {
        let waiting: Vec<(Uuid,)> = query::<D>(format!(
            "SELECT j.id FROM job_dependencies d JOIN jobs j ON j.id = d.job_id \
             WHERE d.depends_on = $1 AND j.status = $2 ORDER BY j.id{}",
            D::row_lock_of("j")
        ))
        .bind(done)
        .bind(JobStatus::Waiting.as_str())
        .fetch_all(&mut *conn)
        .await?;
        for (job_id,) in waiting {
            let deps: Vec<(Uuid, String)> = query::<D>(
                "SELECT d.depends_on, j.status FROM job_dependencies d \
                 JOIN jobs j ON j.id = d.depends_on WHERE d.job_id = $1 ORDER BY d.depends_on",
            )
            .bind(job_id)
            .fetch_all(&mut *conn)
            .await?;
            match shared::release(&deps)? {
                Release::Wait => {}
                Release::Queue => {
                    let row: Option<(Json<Vec<String>>, i16, i32)> = query::<D>(
                        "UPDATE jobs SET status = $2, updated_at = $3, version = version + 1 \
                         WHERE id = $1 AND status = $4 RETURNING pipeline, priority, max_attempts",
                    )
                    .bind(job_id)
                    .bind(JobStatus::Queued.as_str())
                    .bind(Ts(at))
                    .bind(JobStatus::Waiting.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
                    let Some((pipeline, priority, max_attempts)) = row else {
                        continue;
                    };
                    changes.events.push(shared::job_status_event(
                        EventType::JobQueued,
                        job_id,
                        JobStatus::Queued,
                        None,
                    ));
                    changes.job_changed(job_id);
                    if let Some(task) = NewTask::first(job_id, &pipeline.0, priority, max_attempts)
                    {
                        insert_tasks::<D>(conn, std::slice::from_ref(&task), at).await?;
                        changes.events.push(task.event());
                        changes.ready.push(task.to_task(at));
                    }
                }
                Release::Fail(reason) => {
                    let failed = query::<D>(
                        "UPDATE jobs SET status = $2, status_reason = $3, updated_at = $4, \
                         finished_at = $4, version = version + 1 WHERE id = $1 AND status = $5",
                    )
                    .bind(job_id)
                    .bind(JobStatus::Failed.as_str())
                    .bind(&reason)
                    .bind(Ts(at))
                    .bind(JobStatus::Waiting.as_str())
                    .execute(&mut *conn)
                    .await?;
                    if failed == 1 {
                        changes.events.push(shared::job_status_event(
                            EventType::JobFailed,
                            job_id,
                            JobStatus::Failed,
                            Some(&reason),
                        ));
                        changes.job_changed(job_id);
                        work.push_back(job_id);
                    }
                }
            }
        }
    }
    Ok(())
}
