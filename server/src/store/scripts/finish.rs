//! What happens when a task finishes: completion and failure of
//! an attempt, the job's outcome, and the release (or failure) of the jobs
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

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::types::Json;
use uuid::Uuid;

use super::items::{insert_tasks, items_insert};
use super::tasks::{Moved, returned_tasks, task_state};
use crate::domain::{
    EventType, ItemStatus, JobStatus, NewEvent, NewItem, Task, TaskCompletion, TaskFailure,
    TaskOutcome, TaskStatus,
};
use crate::store::StoreError;
use crate::store::driver::{Driver, Texts, Ts, Uuids, query, with_rows};
use crate::store::group_commit::Applying;
use crate::store::shared::{
    self, ACTIVE_TASK, COMPLETE, Changes, FAIL, FINISHABLE_JOB, FailurePlan, INSERT_CHUNK, JobHead,
    NewTask, OPEN_ITEM, Release, TaskRow, task_columns,
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

/// See [`crate::store::Store::complete_task`]: every completion of a batch
/// in a constant number of statements (the batch holds each task at most
/// once). Their jobs are locked first, in id order (see the module docs).
pub(super) async fn complete_tasks<D: Driver>(
    conn: &mut D::Conn,
    ops: &[&TaskCompletion],
    at: DateTime<Utc>,
) -> Result<Vec<Moved>, StoreError> {
    let ids: Vec<Uuid> = ops.iter().map(|c| c.task_id).collect();
    let heads: Vec<JobOfTask> = query::<D>(format!(
        "SELECT t.id AS task_id, j.id, j.pipeline, j.priority, j.max_attempts FROM tasks t \
         JOIN jobs j ON j.id = t.job_id WHERE t.id {} ORDER BY j.id{}",
        D::in_uuids(1),
        D::row_lock_of("j")
    ))
    .bind(Uuids(ids))
    .fetch_all(&mut *conn)
    .await?;
    let mut jobs: HashMap<Uuid, JobHead> = HashMap::with_capacity(heads.len());
    let mut job_of = HashMap::with_capacity(heads.len());
    for JobOfTask { task_id, job } in heads {
        job_of.insert(task_id, job.id);
        jobs.entry(job.id).or_insert(job);
    }

    let known: Vec<&TaskCompletion> = ops
        .iter()
        .filter(|c| job_of.contains_key(&c.task_id))
        .copied()
        .collect();
    let mut updated = if known.is_empty() {
        HashMap::new()
    } else {
        let mut q = with_rows::<D, _>(
            "v_id, v_attempt, v_agent, v_output, v_usage",
            &known,
            |row, c| {
                row.bind(c.task_id)
                    .bind(c.attempt)
                    .bind(c.agent_id)
                    .bind(&c.output)
                    .bind(json!(c.usage));
            },
        );
        q.push("UPDATE tasks SET status = ")
            .push_bind(TaskStatus::Succeeded.as_str())
            .push(", output = v_output, usage = v_usage, lease_until = NULL, updated_at = ")
            .push_bind(Ts(at))
            .push(
                ", version = version + 1 FROM v \
                 WHERE id = v_id AND attempt = v_attempt AND agent_id = v_agent AND status",
            )
            .push_in_texts(COMPLETE.start_states())
            .push(concat!(" RETURNING ", task_columns!()));
        returned_tasks::<D>(&mut *conn, q).await?
    };

    // Per op, in order: the task, or why it was refused.
    let mut done: Vec<Result<(Task, &TaskCompletion), StoreError>> = Vec::with_capacity(ops.len());
    for c in ops {
        done.push(match updated.remove(&c.task_id) {
            Some(task) => Ok((task, *c)),
            None if !job_of.contains_key(&c.task_id) => Err(StoreError::NotFound("task")),
            None => {
                let current = task_state::<D>(&mut *conn, c.task_id).await?;
                Err(COMPLETE.conflict(c.task_id, c.attempt, Some(c.agent_id), current))
            }
        });
    }
    let finished: Vec<(&Task, &TaskCompletion)> =
        done.iter().flatten().map(|(t, c)| (t, *c)).collect();

    let decided = decide_input_items::<D>(&mut *conn, &finished, at).await?;
    let (emitted, next) = emit_items::<D>(&mut *conn, &finished, &jobs, at).await?;
    insert_tasks::<D>(&mut *conn, &next, at).await?;

    let mut results = Vec::with_capacity(ops.len());
    let mut emitted = emitted.into_iter();
    let mut last_of_job = HashMap::new();
    for (i, result) in done.into_iter().enumerate() {
        results.push(result.map(|(task, c)| {
            let mut changes = Changes::default();
            changes.events.push(shared::succeeded_event(&task, c));
            if let Some(decision) = shared::input_item_decision(&task, c)
                && decided.contains(&decision.item_id)
            {
                changes.events.push(decision.event());
            }
            if let Some((tasks, events)) = emitted.next() {
                changes.events.extend(events);
                changes.ready.extend(tasks.iter().map(|t| t.to_task(at)));
            }
            last_of_job.insert(task.job_id, i);
            (task, changes)
        }));
    }

    // Jobs with no unfinished task left complete; the event goes with the
    // last op of the batch that finished one of their tasks.
    let mut finishing: Vec<(Uuid, usize)> = last_of_job.into_iter().collect();
    finishing.sort_unstable();
    let completed = complete_jobs_if_done::<D, _>(&mut *conn, &finishing, at).await?;
    let awaited = awaited_jobs::<D, _>(&mut *conn, &completed).await?;
    for (job_id, i) in completed {
        if let Some(Ok((_, changes))) = results.get_mut(i) {
            changes.events.push(shared::job_status_event(
                EventType::JobCompleted,
                job_id,
                JobStatus::Completed,
                None,
            ));
            changes.job_changed(job_id);
            if awaited.contains(&job_id) {
                settle_dependents::<D>(&mut *conn, job_id, at, changes).await?;
            }
        }
    }
    Ok(results)
}

/// Which of `jobs` other jobs depend on, in one query: only those have
/// dependents to settle.
async fn awaited_jobs<D: Driver, T>(
    conn: &mut D::Conn,
    jobs: &[(Uuid, T)],
) -> Result<HashSet<Uuid>, StoreError> {
    if jobs.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<(Uuid,)> = query::<D>(format!(
        "SELECT DISTINCT depends_on FROM job_dependencies WHERE depends_on {}",
        D::in_uuids(1)
    ))
    .bind(Uuids(jobs.iter().map(|(id, _)| *id).collect()))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// The input items the finished tasks decided (`integrated` or
/// `rejected`), in one statement; returns the ids whose row changed.
async fn decide_input_items<D: Driver>(
    conn: &mut D::Conn,
    finished: &[(&Task, &TaskCompletion)],
    at: DateTime<Utc>,
) -> Result<HashSet<Uuid>, StoreError> {
    let decisions: Vec<_> = finished
        .iter()
        .filter_map(|(t, c)| shared::input_item_decision(t, c))
        .collect();
    if decisions.is_empty() {
        return Ok(HashSet::new());
    }
    let mut q = with_rows::<D, _>("v_id, v_status, v_reason", &decisions, |row, d| {
        row.bind(d.item_id)
            .bind(d.status.as_str())
            .bind(d.reason.as_deref());
    });
    q.push("UPDATE items SET status = v_status, rejection_reason = v_reason, updated_at = ")
        .push_bind(Ts(at))
        .push(" FROM v WHERE id = v_id AND status")
        .push_in_texts(Texts::of(OPEN_ITEM))
        .push(" RETURNING id");
    let rows: Vec<(Uuid,)> = q.fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// A finishing task's job, read (on Postgres: locked) with it.
#[derive(sqlx::FromRow)]
struct JobOfTask {
    task_id: Uuid,
    #[sqlx(flatten)]
    job: JobHead,
}

/// Per finished task, its next-stage tasks and the events of its emission.
type Settled = Vec<(Vec<NewTask>, Vec<NewEvent>)>;

/// Stores the items the finished tasks emitted (an id emitted twice is
/// kept once, for the first task that emitted it) and returns, per
/// finished task in order, its next-stage tasks and events, with the
/// next-stage tasks of all of them (to insert).
async fn emit_items<D: Driver>(
    conn: &mut D::Conn,
    finished: &[(&Task, &TaskCompletion)],
    jobs: &HashMap<Uuid, JobHead>,
    at: DateTime<Utc>,
) -> Result<(Settled, Vec<NewTask>), StoreError> {
    let mut claimed = HashSet::new();
    let mut plans = Vec::with_capacity(finished.len());
    for (task, c) in finished {
        let Some(job) = jobs.get(&task.job_id) else {
            return Err(StoreError::Corrupt(format!(
                "task {} lost its job",
                task.id
            )));
        };
        let mut emission = shared::emission(task, job, &c.items);
        emission.items.retain(|item| claimed.insert(item.id));
        plans.push(emission);
    }
    let mut stored = HashSet::new();
    for status in [ItemStatus::Pending, ItemStatus::Integrated] {
        let items: Vec<NewItem> = plans
            .iter()
            .filter(|e| e.status == status)
            .flat_map(|e| e.items.iter().cloned())
            .collect();
        stored.extend(insert_new_items::<D>(&mut *conn, &items, status, at).await?);
    }
    let settled: Vec<_> = plans.iter().map(|e| e.settle(&stored)).collect();
    let next = settled
        .iter()
        .flat_map(|(t, _)| t.iter().cloned())
        .collect();
    Ok((settled, next))
}

/// Inserts items whose id is not stored yet; returns the ids it stored.
async fn insert_new_items<D: Driver>(
    conn: &mut D::Conn,
    items: &[NewItem],
    status: ItemStatus,
    at: DateTime<Utc>,
) -> Result<HashSet<Uuid>, StoreError> {
    let mut stored = HashSet::new();
    for chunk in items.chunks(INSERT_CHUNK) {
        let mut qb = items_insert::<D>(chunk, status, at);
        qb.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
        let ids: Vec<(Uuid,)> = qb.fetch_all(&mut *conn).await?;
        stored.extend(ids.into_iter().map(|(id,)| id));
    }
    Ok(stored)
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
    changes.events.push(shared::job_status_event(
        EventType::JobCompleted,
        job_id,
        JobStatus::Completed,
        None,
    ));
    changes.job_changed(job_id);
    settle_dependents::<D>(conn, job_id, at, changes).await
}

/// Of `jobs` (locked, with a tag each), those that were queued or running
/// with no unfinished task left are now `completed`; returns them with
/// their tags. One statement: the job row is already locked, so the check
/// sees every completion that committed before this one.
async fn complete_jobs_if_done<D: Driver, T: Copy>(
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
