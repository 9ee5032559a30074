//! Dispatch, up to a task's outcome: reloading open tasks,
//! assigning, the task input, accepting, lease renewal and declines.
//! Completion and failure are in [`super::finish`].

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::domain::{EventType, ItemStatus, JobStatus, Task, TaskOutcome, TaskStatus};
use crate::store::StoreError;
use crate::store::driver::{Driver, RowLock, Texts, Ts, query};
use crate::store::group_commit::Applying;
use crate::store::shared::{
    self, ACTIVE_TASK, ASSIGN, CANCELLABLE_JOB, Changes, PROGRESS, REQUEUE, START, StageZeroRow,
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

/// See [`crate::store::Store::assign_task`].
///
/// Lock order is jobs before tasks (as in `cancel_job`), so when the job is
/// still `queued` its row is locked first; a running job is not locked (it
/// cannot go back to queued, and a cancel still finds the task row locked
/// and waits for it).
pub(super) async fn assign_task<D: Driver>(
    conn: &mut D::Conn,
    task_id: Uuid,
    expected_attempt: i32,
    agent_id: Uuid,
    accept_by: DateTime<Utc>,
    cx: &mut Applying,
) -> Result<TaskOutcome, StoreError> {
    let at = cx.at;
    let head: Option<(Uuid, String)> = query::<D>(
        "SELECT t.job_id, j.status FROM tasks t JOIN jobs j ON j.id = t.job_id WHERE t.id = $1",
    )
    .bind(task_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((job_id, job_status)) = head else {
        return Err(StoreError::NotFound("task"));
    };
    let job_status = shared::parse_status::<JobStatus>(&job_status, "job", job_id)?;
    if job_status.is_terminal() {
        return Err(shared::job_finished_conflict(
            task_id,
            expected_attempt,
            job_id,
            job_status,
        ));
    }
    if job_status == JobStatus::Queued && D::ROW_LOCKS {
        query::<D>(format!(
            "SELECT 1 FROM jobs WHERE id = $1{}",
            D::row_lock(RowLock::NoKeyUpdate)
        ))
        .bind(job_id)
        .execute(&mut *conn)
        .await?;
    }
    let row: Option<TaskRow> = query::<D>(format!(
        concat!(
            "UPDATE tasks SET status = $4, attempt = attempt + 1, agent_id = $3, lease_until = $5, \
         updated_at = $6, version = version + 1 \
         WHERE id = $1 AND attempt = $2 AND status {} RETURNING ",
            task_columns!()
        ),
        D::in_texts(7)
    ))
    .bind(task_id)
    .bind(expected_attempt)
    .bind(agent_id)
    .bind(TaskStatus::Assigned.as_str())
    .bind(Ts(accept_by))
    .bind(Ts(at))
    .bind(ASSIGN.start_states())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        let current = task_state::<D>(&mut *conn, task_id).await?;
        return Err(ASSIGN.conflict(task_id, expected_attempt, None, current));
    };
    let task = Task::try_from(row)?;

    let mut changes = Changes::default();
    changes.events.push(shared::task_event(
        EventType::TaskAssigned,
        &task,
        Some(agent_id),
        json!({ "accept_by": accept_by }),
    ));
    if job_status == JobStatus::Queued {
        let started = query::<D>(
            "UPDATE jobs SET status = $2, started_at = COALESCE(started_at, $3), updated_at = $3, \
             version = version + 1 WHERE id = $1 AND status = $4",
        )
        .bind(job_id)
        .bind(JobStatus::Running.as_str())
        .bind(Ts(at))
        .bind(JobStatus::Queued.as_str())
        .execute(&mut *conn)
        .await?;
        if started == 1 {
            changes.events.push(shared::job_status_event(
                EventType::JobStarted,
                job_id,
                JobStatus::Running,
                None,
            ));
            changes.job_changed(job_id);
        }
    }
    Ok(cx.outcome(Some(task), changes))
}

/// See [`crate::store::Store::task_input`].
pub(super) async fn task_input<D: Driver>(
    conn: &mut D::Conn,
    job_id: Uuid,
    item_id: Option<Uuid>,
) -> Result<serde_json::Value, StoreError> {
    // One query per assignment: the job's prompt and context with either
    // its document (stage 0) or the input item (later stages).
    let Some(item_id) = item_id else {
        let row: Option<StageZeroRow> = query::<D>(
            "SELECT j.prompt, j.context, d.file_name, d.content_type, d.size, d.sha256, d.bytes \
             FROM jobs j LEFT JOIN documents d ON d.job_id = j.id WHERE j.id = $1",
        )
        .bind(job_id)
        .fetch_optional(&mut *conn)
        .await?;
        let row = row.ok_or(StoreError::NotFound("job"))?;
        let document = row.document();
        return Ok(shared::stage_zero_input(
            job_id,
            &row.prompt,
            &row.context,
            document.as_ref(),
        ));
    };
    let row: Option<(
        String,
        serde_json::Value,
        Option<i32>,
        Option<serde_json::Value>,
    )> = query::<D>(
        "SELECT j.prompt, j.context, i.stage, i.data \
             FROM jobs j LEFT JOIN items i ON i.id = $2 WHERE j.id = $1",
    )
    .bind(job_id)
    .bind(item_id)
    .fetch_optional(conn)
    .await?;
    let (prompt, context, stage, data) = row.ok_or(StoreError::NotFound("job"))?;
    let (Some(stage), Some(data)) = (stage, data) else {
        return Err(StoreError::NotFound("item"));
    };
    Ok(shared::item_input(
        job_id, &prompt, &context, item_id, stage, &data,
    ))
}

/// See [`crate::store::Store::start_task`].
pub(super) async fn start_task<D: Driver>(
    conn: &mut D::Conn,
    task_id: Uuid,
    attempt: i32,
    agent_id: Uuid,
    lease_until: DateTime<Utc>,
    cx: &mut Applying,
) -> Result<Task, StoreError> {
    let at = cx.at;
    let task = update_held::<D>(
        &mut *conn,
        START,
        (task_id, attempt, agent_id),
        lease_until,
        at,
    )
    .await?;
    if let Some(item_id) = task.item_id {
        query::<D>("UPDATE items SET status = $2, updated_at = $3 WHERE id = $1 AND status = $4")
            .bind(item_id)
            .bind(ItemStatus::Validating.as_str())
            .bind(Ts(at))
            .bind(ItemStatus::Pending.as_str())
            .execute(&mut *conn)
            .await?;
    }
    cx.events.extend([shared::task_event(
        EventType::TaskStarted,
        &task,
        Some(agent_id),
        json!({ "lease_until": lease_until }),
    )]);
    Ok(task)
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
