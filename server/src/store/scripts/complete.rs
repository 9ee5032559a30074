//! Completion of task attempts, a batch at a time: every completion of a
//! group commit in a constant number of statements (the task updates, the
//! input items they decide, the items they emit and the tasks those make,
//! and the jobs they complete). Failure and the jobs waiting on a finished
//! one are in [`super::finish`], whose module docs give the lock order.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::finish::{complete_jobs_if_done, job_completed, settle_dependents};
use super::items::{insert_tasks, items_insert};
use super::tasks::{Moved, returned_tasks, task_state, where_held};
use crate::domain::{ItemStatus, NewEvent, NewItem, Task, TaskCompletion, TaskStatus};
use crate::store::StoreError;
use crate::store::driver::{Driver, Texts, Ts, Uuids, query, with_rows};
use crate::store::shared::{self, COMPLETE, Changes, INSERT_CHUNK, JobHead, NewTask, OPEN_ITEM};

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
            .push_bind(Ts(at));
        where_held(&mut q, COMPLETE);
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
            job_completed(changes, job_id);
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
