//! Dispatch, up to a task's outcome: reloading open tasks,
//! assigning, the task input, accepting, lease renewal and declines.
//! Completion and failure are in [`super::finish`].

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::domain::{EventType, ItemStatus, JobStatus, Task, TaskStatus};
use crate::store::StoreError;
use std::collections::{BTreeSet, HashMap, HashSet};

use crate::store::driver::{Driver, Query, RowLock, Texts, Ts, Uuids, query, with_rows};
use crate::store::group_commit::{Applying, Assignment, Start};
use crate::store::shared::{
    self, ACTIVE_TASK, ASSIGN, CANCELLABLE_JOB, Changes, DocumentRow, PROGRESS, REQUEUE, START,
    TaskAction, TaskRow, TaskState, task_columns,
};

/// The state of a task for a conflict message, or `None`.
pub(super) async fn task_state<D: Driver>(
    conn: &mut D::Conn,
    id: Uuid,
) -> Result<Option<TaskState>, StoreError> {
    query::<D>("SELECT status, attempt, agent_id FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// See [`crate::store::Store::open_tasks`]. A sequential scan of `tasks`
/// (there is deliberately no index on status): it runs once at start-up.
pub(super) async fn open_tasks<D: Driver>(conn: &mut D::Conn) -> Result<Vec<Task>, StoreError> {
    let rows: Vec<TaskRow> = query::<D>(format!(
        concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE status {} \
             AND job_id IN (SELECT id FROM jobs WHERE status {}) ORDER BY id"
        ),
        D::in_texts(1),
        D::in_texts(2)
    ))
    .bind(Texts::of(ACTIVE_TASK))
    .bind(Texts::of(CANCELLABLE_JOB))
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Task::try_from).collect()
}

/// A transition's result per op: the task as it now is and what else
/// changed, or why it was refused.
pub(super) type Moved = Result<(Task, Changes), StoreError>;

/// See [`crate::store::Store::assign_task`]: every assignment of a batch in
/// a constant number of statements, whatever their number. The batch holds
/// each task at most once (see `batch.rs`).
///
/// Lock order is jobs before tasks (as in `cancel_job`), so jobs still
/// `queued` are locked first (in id order); a running job is not locked (it
/// cannot go back to queued, and a cancel still finds the task row locked
/// and waits for it).
pub(super) async fn assign_tasks<D: Driver>(
    conn: &mut D::Conn,
    ops: &[&Assignment],
    at: DateTime<Utc>,
) -> Result<Vec<Moved>, StoreError> {
    let ids: Vec<Uuid> = ops.iter().map(|a| a.task_id).collect();
    let heads: Vec<(Uuid, Uuid, String)> = query::<D>(format!(
        "SELECT t.id, t.job_id, j.status FROM tasks t JOIN jobs j ON j.id = t.job_id \
         WHERE t.id {}",
        D::in_uuids(1)
    ))
    .bind(Uuids(ids))
    .fetch_all(&mut *conn)
    .await?;
    let mut jobs = HashMap::with_capacity(heads.len());
    for (task_id, job_id, status) in heads {
        let status = shared::parse_status::<JobStatus>(&status, "job", job_id)?;
        jobs.insert(task_id, (job_id, status));
    }

    let mut results: Vec<Option<Moved>> = Vec::with_capacity(ops.len());
    let mut todo = Vec::with_capacity(ops.len());
    for (i, a) in ops.iter().enumerate() {
        results.push(match jobs.get(&a.task_id) {
            None => Some(Err(StoreError::NotFound("task"))),
            Some(&(job_id, status)) if status.is_terminal() => Some(Err(
                shared::job_finished_conflict(a.task_id, a.expected_attempt, job_id, status),
            )),
            Some(_) => {
                todo.push(i);
                None
            }
        });
    }
    let queued: BTreeSet<Uuid> = todo
        .iter()
        .filter_map(|&i| jobs.get(&ops[i].task_id))
        .filter(|(_, status)| *status == JobStatus::Queued)
        .map(|(job_id, _)| *job_id)
        .collect();
    let queued: Vec<Uuid> = queued.into_iter().collect();
    if !queued.is_empty() && D::ROW_LOCKS {
        query::<D>(format!(
            "SELECT 1 FROM jobs WHERE id {} ORDER BY id{}",
            D::in_uuids(1),
            D::row_lock(RowLock::NoKeyUpdate)
        ))
        .bind(Uuids(queued.clone()))
        .execute(&mut *conn)
        .await?;
    }

    let mut updated = if todo.is_empty() {
        HashMap::new()
    } else {
        let mut q = with_rows::<D, _>("v_id, v_attempt, v_agent, v_until", &todo, |row, &i| {
            let a = ops[i];
            row.bind(a.task_id)
                .bind(a.expected_attempt)
                .bind(a.agent_id)
                .bind(Ts(a.accept_by));
        });
        q.push("UPDATE tasks SET status = ")
            .push_bind(TaskStatus::Assigned.as_str())
            .push(
                ", attempt = attempt + 1, agent_id = v_agent, lease_until = v_until, updated_at = ",
            )
            .push_bind(Ts(at))
            .push(
                ", version = version + 1 FROM v WHERE id = v_id AND attempt = v_attempt AND status",
            )
            .push_in_texts(ASSIGN.start_states())
            .push(concat!(" RETURNING ", task_columns!()));
        returned_tasks::<D>(conn, q).await?
    };

    // Jobs still queued start with their first assignment.
    let started: HashSet<Uuid> = if queued.is_empty() || updated.is_empty() {
        HashSet::new()
    } else {
        let rows: Vec<(Uuid,)> = query::<D>(format!(
            "UPDATE jobs SET status = $1, started_at = COALESCE(started_at, $2), updated_at = $2, \
             version = version + 1 WHERE status = $3 AND id {} RETURNING id",
            D::in_uuids(4)
        ))
        .bind(JobStatus::Running.as_str())
        .bind(Ts(at))
        .bind(JobStatus::Queued.as_str())
        .bind(Uuids(queued))
        .fetch_all(&mut *conn)
        .await?;
        rows.into_iter().map(|(id,)| id).collect()
    };

    let mut announced = HashSet::new();
    for i in todo {
        let a = ops[i];
        results[i] = Some(match updated.remove(&a.task_id) {
            None => {
                let current = task_state::<D>(&mut *conn, a.task_id).await?;
                Err(ASSIGN.conflict(a.task_id, a.expected_attempt, None, current))
            }
            Some(task) => {
                let mut changes = Changes::default();
                changes.events.push(shared::task_event(
                    EventType::TaskAssigned,
                    &task,
                    Some(a.agent_id),
                    json!({ "accept_by": a.accept_by }),
                ));
                if started.contains(&task.job_id) && announced.insert(task.job_id) {
                    changes.events.push(shared::job_status_event(
                        EventType::JobStarted,
                        task.job_id,
                        JobStatus::Running,
                        None,
                    ));
                    changes.job_changed(task.job_id);
                }
                Ok((task, changes))
            }
        });
    }
    Ok(results.into_iter().flatten().collect())
}

/// Ends a set-based update of held attempts (`SET ...` pushed by the
/// caller, rows `v (v_id, v_attempt, v_agent, ...)`): one version more,
/// only for the attempt held by that agent in a state `action` starts from,
/// returning the tasks.
pub(super) fn where_held<D: Driver>(q: &mut Query<D>, action: TaskAction) {
    q.push(
        ", version = version + 1 FROM v \
         WHERE id = v_id AND attempt = v_attempt AND agent_id = v_agent AND status",
    )
    .push_in_texts(action.start_states())
    .push(concat!(" RETURNING ", task_columns!()));
}

/// Runs a set-based task update and maps the rows it returned by task id.
pub(super) async fn returned_tasks<D: Driver>(
    conn: &mut D::Conn,
    q: Query<D>,
) -> Result<HashMap<Uuid, Task>, StoreError> {
    let rows: Vec<TaskRow> = q.fetch_all(conn).await?;
    rows.into_iter()
        .map(|row| Task::try_from(row).map(|t| (t.id, t)))
        .collect()
}

/// See [`crate::store::Store::inputs_of`]: the inputs of many tasks in at
/// most three queries (their jobs, the documents of stage-0 tasks, the
/// input items of later stages), whatever their number.
pub(super) async fn task_inputs<D: Driver>(
    conn: &mut D::Conn,
    wanted: &[(Uuid, Option<Uuid>)],
) -> Result<Vec<Result<serde_json::Value, StoreError>>, StoreError> {
    let job_ids: BTreeSet<Uuid> = wanted.iter().map(|(job, _)| *job).collect();
    let jobs: Vec<(Uuid, String, serde_json::Value)> = query::<D>(format!(
        "SELECT id, prompt, context FROM jobs WHERE id {}",
        D::in_uuids(1)
    ))
    .bind(Uuids(job_ids.into_iter().collect()))
    .fetch_all(&mut *conn)
    .await?;
    let jobs: HashMap<Uuid, (String, serde_json::Value)> =
        jobs.into_iter().map(|(id, p, c)| (id, (p, c))).collect();

    let first_stage: BTreeSet<Uuid> = wanted
        .iter()
        .filter(|(_, item)| item.is_none())
        .map(|(job, _)| *job)
        .collect();
    let mut documents = HashMap::new();
    if !first_stage.is_empty() {
        let rows: Vec<DocumentRow> = query::<D>(format!(
            "SELECT job_id, file_name, content_type, size, sha256, bytes FROM documents \
             WHERE job_id {}",
            D::in_uuids(1)
        ))
        .bind(Uuids(first_stage.into_iter().collect()))
        .fetch_all(&mut *conn)
        .await?;
        documents.extend(rows.into_iter().map(|r| (r.job_id, r.into_document())));
    }

    let item_ids: Vec<Uuid> = wanted.iter().filter_map(|(_, item)| *item).collect();
    let mut items = HashMap::new();
    if !item_ids.is_empty() {
        let rows: Vec<(Uuid, i32, serde_json::Value)> = query::<D>(format!(
            "SELECT id, stage, data FROM items WHERE id {}",
            D::in_uuids(1)
        ))
        .bind(Uuids(item_ids))
        .fetch_all(&mut *conn)
        .await?;
        items.extend(
            rows.into_iter()
                .map(|(id, stage, data)| (id, (stage, data))),
        );
    }

    Ok(wanted
        .iter()
        .map(|(job_id, item_id)| {
            let (prompt, context) = jobs.get(job_id).ok_or(StoreError::NotFound("job"))?;
            let Some(item_id) = item_id else {
                let document = documents.get(job_id);
                return Ok(crate::domain::job::stage0_input(
                    *job_id, prompt, context, document,
                ));
            };
            let (stage, data) = items.get(item_id).ok_or(StoreError::NotFound("item"))?;
            Ok(shared::item_input(
                *job_id, prompt, context, *item_id, *stage, data,
            ))
        })
        .collect())
}

/// See [`crate::store::Store::start_task`]: every start of a batch in a
/// constant number of statements (the batch holds each task at most once).
pub(super) async fn start_tasks<D: Driver>(
    conn: &mut D::Conn,
    ops: &[&Start],
    at: DateTime<Utc>,
) -> Result<Vec<Moved>, StoreError> {
    let mut q = with_rows::<D, _>("v_id, v_attempt, v_agent, v_until", ops, |row, s| {
        row.bind(s.task_id)
            .bind(s.attempt)
            .bind(s.agent_id)
            .bind(Ts(s.lease_until));
    });
    q.push("UPDATE tasks SET status = ")
        .push_bind(TaskStatus::Running.as_str())
        .push(", lease_until = v_until, updated_at = ")
        .push_bind(Ts(at));
    where_held(&mut q, START);
    let mut updated = returned_tasks::<D>(&mut *conn, q).await?;

    // Their input items are being validated.
    let items: Vec<Uuid> = updated.values().filter_map(|t| t.item_id).collect();
    if !items.is_empty() {
        query::<D>(format!(
            "UPDATE items SET status = $1, updated_at = $2 WHERE status = $3 AND id {}",
            D::in_uuids(4)
        ))
        .bind(ItemStatus::Validating.as_str())
        .bind(Ts(at))
        .bind(ItemStatus::Pending.as_str())
        .bind(Uuids(items))
        .execute(&mut *conn)
        .await?;
    }

    let mut results = Vec::with_capacity(ops.len());
    for s in ops {
        results.push(match updated.remove(&s.task_id) {
            None => {
                let current = task_state::<D>(&mut *conn, s.task_id).await?;
                Err(START.conflict(s.task_id, s.attempt, Some(s.agent_id), current))
            }
            Some(task) => {
                let mut changes = Changes::default();
                changes.events.push(shared::task_event(
                    EventType::TaskStarted,
                    &task,
                    Some(s.agent_id),
                    json!({ "lease_until": s.lease_until }),
                ));
                Ok((task, changes))
            }
        });
    }
    Ok(results)
}

/// See [`crate::store::Store::extend_lease`].
pub(super) async fn extend_lease<D: Driver>(
    conn: &mut D::Conn,
    (task_id, attempt, agent_id): (Uuid, i32, Uuid),
    lease_until: DateTime<Utc>,
    progress: serde_json::Value,
    cx: &mut Applying,
) -> Result<(), StoreError> {
    let at = cx.at;
    let task = update_held::<D>(
        &mut *conn,
        PROGRESS,
        (task_id, attempt, agent_id),
        lease_until,
        at,
    )
    .await?;
    cx.events.extend([shared::task_event(
        EventType::TaskProgress,
        &task,
        Some(agent_id),
        json!({ "lease_until": lease_until, "progress": progress }),
    )]);
    Ok(())
}

/// Start (`assigned` → `running`) or lease renewal (`running`) of the
/// attempt `(task, attempt, agent)`: the task is `running` until `lease_until`.
async fn update_held<D: Driver>(
    conn: &mut D::Conn,
    action: TaskAction,
    (task_id, attempt, agent_id): (Uuid, i32, Uuid),
    lease_until: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<Task, StoreError> {
    let row: Option<TaskRow> = query::<D>(format!(
        concat!(
            "UPDATE tasks SET status = $4, lease_until = $5, updated_at = $6, version = version + 1 \
         WHERE id = $1 AND attempt = $2 AND agent_id = $3 AND status {} RETURNING ",
            task_columns!()
        ),
        D::in_texts(7)
    ))
    .bind(task_id)
    .bind(attempt)
    .bind(agent_id)
    .bind(TaskStatus::Running.as_str())
    .bind(Ts(lease_until))
    .bind(Ts(at))
    .bind(action.start_states())
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Task::try_from(row),
        None => {
            let current = task_state::<D>(conn, task_id).await?;
            Err(action.conflict(task_id, attempt, Some(agent_id), current))
        }
    }
}

/// See [`crate::store::Store::requeue_task`].
pub(super) async fn requeue_task<D: Driver>(
    conn: &mut D::Conn,
    (task_id, attempt, agent_id): (Uuid, i32, Uuid),
    run_at: DateTime<Utc>,
    reason: String,
    cx: &mut Applying,
) -> Result<Task, StoreError> {
    let at = cx.at;
    let row: Option<TaskRow> = query::<D>(format!(
        concat!(
            "UPDATE tasks SET status = $4, agent_id = NULL, lease_until = NULL, next_run_at = $5, \
         updated_at = $6, version = version + 1 \
         WHERE id = $1 AND attempt = $2 AND agent_id = $3 AND status {} RETURNING ",
            task_columns!()
        ),
        D::in_texts(7)
    ))
    .bind(task_id)
    .bind(attempt)
    .bind(agent_id)
    .bind(TaskStatus::Pending.as_str())
    .bind(Ts(run_at))
    .bind(Ts(at))
    .bind(REQUEUE.start_states())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        let current = task_state::<D>(&mut *conn, task_id).await?;
        return Err(REQUEUE.conflict(task_id, attempt, Some(agent_id), current));
    };
    let task = Task::try_from(row)?;
    cx.events.extend([shared::task_event(
        EventType::TaskRequeued,
        &task,
        Some(agent_id),
        json!({ "reason": reason, "next_run_at": run_at }),
    )]);
    Ok(task)
}
