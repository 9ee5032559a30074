//! Items, tasks and the event log.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{Event, Item, ItemCounts, ItemStatus, NewEvent, NewItem, Task, TaskStatus};
use crate::store::StoreError;
use crate::store::driver::{Driver, Query, Ts, Uuids, query};
use crate::store::group_commit::{self, Applying, batch_event_rows, event_rows};
use crate::store::shared::{self, EventRow, INSERT_CHUNK, ItemRow, NewTask, TaskRow, task_columns};

/// Appends events in order, as the last step of a transaction, stamped with
/// the current request id (`events::request_id`).
pub(super) async fn append_events<D: Driver>(
    conn: &mut D::Conn,
    events: &[NewEvent],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    // The HTTP request this transaction runs for, if any (see `events::request_id`).
    let request_id = crate::events::request_id::current();
    insert_events::<D>(conn, &event_rows(events, at, request_id.as_deref())).await
}

/// Appends the events of a group commit (see `store::group_commit`), each
/// op's with its own time and request id, as the last step of its transaction.
pub(super) async fn append_batch<D: Driver>(
    conn: &mut D::Conn,
    groups: &[Applying],
) -> Result<(), StoreError> {
    insert_events::<D>(conn, &batch_event_rows(groups)).await
}

async fn insert_events<D: Driver>(
    conn: &mut D::Conn,
    rows: &[group_commit::EventRow<'_>],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    D::append_events(conn, rows).await
}

/// Inserts tasks, `pending`, attempt 0 and due now (stage-0 tasks of
/// queued jobs, next-stage tasks of emitted items).
pub(super) async fn insert_tasks<D: Driver>(
    conn: &mut D::Conn,
    tasks: &[NewTask],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    for chunk in tasks.chunks(INSERT_CHUNK) {
        let mut qb = query::<D>(
            "INSERT INTO tasks (id, job_id, stage, capability, status, item_id, priority, attempt, \
             failures, max_attempts, next_run_at, created_at, updated_at, version) ",
        );
        qb.push_values(chunk, |row, t| {
            row.bind(t.id)
                .bind(t.job_id)
                .bind(t.stage)
                .bind(t.capability.as_str())
                .bind(TaskStatus::Pending.as_str())
                .bind(t.item_id)
                .bind(t.priority)
                .bind(0_i32)
                .bind(0_i32)
                .bind(t.max_attempts)
                .bind(Ts(at))
                .bind(Ts(at))
                .bind(Ts(at))
                .bind(1_i64);
        });
        qb.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `INSERT INTO items ... VALUES` for `items` (at most [`INSERT_CHUNK`]),
/// each with `status`, no retries, created and updated `at`.
pub(super) fn items_insert<D: Driver>(
    items: &[NewItem],
    status: ItemStatus,
    at: DateTime<Utc>,
) -> Query<D> {
    let mut q = query::<D>(
        "INSERT INTO items (id, job_id, source_task_id, stage, status, data, retry_count, \
         created_at, updated_at) ",
    );
    q.push_values(items, |row, item| {
        row.bind(item.id)
            .bind(item.job_id)
            .bind(item.source_task_id)
            .bind(item.stage)
            .bind(status.as_str())
            .bind(&item.data)
            .bind(0_i32)
            .bind(Ts(at))
            .bind(Ts(at));
    });
    q
}

/// See [`crate::store::Store::insert_items`].
pub(super) async fn insert_items<D: Driver>(
    pool: &D::Pool,
    new: Vec<NewItem>,
) -> Result<Vec<Item>, StoreError> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let at = shared::now();
    let mut tx = D::begin(pool).await?;
    for chunk in new.chunks(INSERT_CHUNK) {
        items_insert::<D>(chunk, ItemStatus::Pending, at)
            .execute(&mut *tx)
            .await?;
    }
    let events: Vec<NewEvent> = new.iter().map(shared::item_created_event).collect();
    append_events::<D>(&mut tx, &events, at).await?;
    D::commit(tx).await?;
    Ok(new
        .into_iter()
        .map(|n| shared::created_item(n, at))
        .collect())
}

/// See [`crate::store::Store::list_items`].
pub(super) async fn list_items<D: Driver>(
    conn: &mut D::Conn,
    job_id: Uuid,
    status: Option<ItemStatus>,
    text: Option<&str>,
    after: Option<Uuid>,
    limit: u32,
) -> Result<Vec<Item>, StoreError> {
    let mut qb = query::<D>(
        "SELECT id, job_id, source_task_id, stage, status, data, rejection_reason, last_error, \
         retry_count, created_at, updated_at FROM items WHERE job_id = ",
    );
    qb.push_bind(job_id);
    if let Some(status) = status {
        qb.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(text) = text {
        D::push_contains(&mut qb, "data", true, text);
    }
    if let Some(after) = after {
        qb.push(" AND id > ").push_bind(after);
    }
    qb.push(" ORDER BY id LIMIT ")
        .push_bind(i64::from(shared::page_limit(limit)));
    let rows: Vec<ItemRow> = qb.fetch_all(conn).await?;
    rows.into_iter().map(Item::try_from).collect()
}

/// See [`crate::store::Store::item_counts`].
pub(super) async fn item_counts<D: Driver>(
    conn: &mut D::Conn,
    job_id: Uuid,
) -> Result<ItemCounts, StoreError> {
    let rows: Vec<(String, i64)> =
        query::<D>("SELECT status, COUNT(*) FROM items WHERE job_id = $1 GROUP BY status")
            .bind(job_id)
            .fetch_all(&mut *conn)
            .await?;
    shared::item_counts(rows, job_id)
}

/// See [`crate::store::Store::list_tasks`].
pub(super) async fn list_tasks<D: Driver>(
    conn: &mut D::Conn,
    job_id: Uuid,
) -> Result<Vec<Task>, StoreError> {
    let rows: Vec<TaskRow> = query::<D>(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE job_id = $1 ORDER BY id"
    ))
    .bind(job_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(Task::try_from).collect()
}

/// See [`crate::store::Store::pending_tasks`].
pub(super) async fn pending_tasks<D: Driver>(
    conn: &mut D::Conn,
    job_ids: &[Uuid],
) -> Result<Vec<Task>, StoreError> {
    let rows: Vec<TaskRow> = query::<D>(format!(
        concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE job_id {} AND status = 'pending' ORDER BY id"
        ),
        D::in_uuids(1)
    ))
    .bind(Uuids(job_ids.to_vec()))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(Task::try_from).collect()
}

/// See [`crate::store::Store::held_tasks`].
pub(super) async fn held_tasks<D: Driver>(
    conn: &mut D::Conn,
    agent_id: Uuid,
    task_ids: &[Uuid],
) -> Result<Vec<Task>, StoreError> {
    let rows: Vec<TaskRow> = query::<D>(format!(
        concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE id {} AND agent_id = $2 AND status IN ('assigned', 'running') ORDER BY id"
        ),
        D::in_uuids(1)
    ))
    .bind(Uuids(task_ids.to_vec()))
    .bind(agent_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(Task::try_from).collect()
}

/// See [`crate::store::Store::list_events`].
pub(super) async fn list_events<D: Driver>(
    conn: &mut D::Conn,
    job_id: Option<Uuid>,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let limit = i64::from(shared::page_limit(limit));
    let rows: Vec<EventRow> = match job_id {
        Some(job_id) => {
            query::<D>(
                "SELECT seq, job_id, type, payload, created_at, request_id FROM events \
                 WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(job_id)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?
        }
        None => {
            query::<D>(
                "SELECT seq, job_id, type, payload, created_at, request_id FROM events \
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after_seq)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    Ok(rows.into_iter().map(Event::from).collect())
}
