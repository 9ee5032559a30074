//! Items, tasks and the event log on SQLite.

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::{SqliteStore, ts};
use crate::domain::{Event, Item, ItemCounts, ItemStatus, NewEvent, NewItem, Task, TaskStatus};
use crate::store::StoreError;
use crate::store::group_commit::{self, Applying, batch_event_rows, event_rows};
use crate::store::shared::{self, EventRow, INSERT_CHUNK, ItemRow, NewTask, TaskRow, task_columns};

/// Appends events in order. With a single writer, commit order is seq order,
/// so a reader following `seq` never skips an event. Each event is stamped
/// with the current request id (`events::request_id`).
pub(super) async fn append_events(
    conn: &mut SqliteConnection,
    events: &[NewEvent],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    // The HTTP request this transaction runs for, if any (see `events::request_id`).
    let request_id = crate::events::request_id::current();
    insert_events(conn, &event_rows(events, at, request_id.as_deref())).await
}

/// Appends the events of a group commit (see `store::group_commit`), each
/// op's with its own time and request id.
pub(super) async fn append_batch(
    conn: &mut SqliteConnection,
    groups: &[Applying],
) -> Result<(), StoreError> {
    insert_events(conn, &batch_event_rows(groups)).await
}

async fn insert_events(
    conn: &mut SqliteConnection,
    rows: &[group_commit::EventRow<'_>],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (job_id, type, payload, created_at, request_id) ",
        );
        qb.push_values(chunk, |mut row, (e, at, request_id)| {
            row.push_bind(e.job_id)
                .push_bind(e.kind.as_str())
                .push_bind(&e.payload)
                .push_bind(ts(*at))
                .push_bind(*request_id);
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts tasks, `pending`, attempt 0 and due now (stage-0 tasks of
/// queued jobs, next-stage tasks of emitted items).
pub(super) async fn insert_tasks(
    conn: &mut SqliteConnection,
    tasks: &[NewTask],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let at_text = ts(at);
    for chunk in tasks.chunks(INSERT_CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO tasks (id, job_id, stage, capability, status, item_id, priority, attempt, \
             failures, max_attempts, next_run_at, created_at, updated_at, version) ",
        );
        qb.push_values(chunk, |mut row, t| {
            row.push_bind(t.id)
                .push_bind(t.job_id)
                .push_bind(t.stage)
                .push_bind(t.capability.clone())
                .push_bind(TaskStatus::Pending.as_str())
                .push_bind(t.item_id)
                .push_bind(t.priority)
                .push_bind(0_i32)
                .push_bind(0_i32)
                .push_bind(t.max_attempts)
                .push_bind(at_text.clone())
                .push_bind(at_text.clone())
                .push_bind(at_text.clone())
                .push_bind(1_i64);
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// See [`crate::store::Store::insert_items`].
pub(super) async fn insert_items(
    store: &SqliteStore,
    new: Vec<NewItem>,
) -> Result<Vec<Item>, StoreError> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let at = shared::now();
    let at_text = ts(at);
    let mut tx = store.begin().await?;
    for chunk in new.chunks(INSERT_CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO items (id, job_id, source_task_id, stage, status, data, retry_count, \
             created_at, updated_at) ",
        );
        qb.push_values(chunk, |mut row, item| {
            row.push_bind(item.id)
                .push_bind(item.job_id)
                .push_bind(item.source_task_id)
                .push_bind(item.stage)
                .push_bind(ItemStatus::Pending.as_str())
                .push_bind(&item.data)
                .push_bind(0_i32)
                .push_bind(at_text.clone())
                .push_bind(at_text.clone());
        });
        qb.build().execute(&mut *tx).await?;
    }
    let events: Vec<NewEvent> = new.iter().map(shared::item_created_event).collect();
    append_events(&mut tx, &events, at).await?;
    tx.commit().await?;
    Ok(new
        .into_iter()
        .map(|n| shared::created_item(n, at))
        .collect())
}

/// See [`crate::store::Store::list_items`].
pub(super) async fn list_items(
    pool: &SqlitePool,
    job_id: Uuid,
    status: Option<ItemStatus>,
    after: Option<Uuid>,
    limit: u32,
) -> Result<Vec<Item>, StoreError> {
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT id, job_id, source_task_id, stage, status, data, rejection_reason, last_error, \
         retry_count, created_at, updated_at FROM items WHERE job_id = ",
    );
    qb.push_bind(job_id);
    if let Some(status) = status {
        qb.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(after) = after {
        qb.push(" AND id > ").push_bind(after);
    }
    qb.push(" ORDER BY id LIMIT ")
        .push_bind(i64::from(shared::page_limit(limit)));
    let rows: Vec<ItemRow> = qb.build_query_as().fetch_all(pool).await?;
    rows.into_iter().map(Item::try_from).collect()
}

/// See [`crate::store::Store::item_counts`].
pub(super) async fn item_counts(pool: &SqlitePool, job_id: Uuid) -> Result<ItemCounts, StoreError> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM items WHERE job_id = $1 GROUP BY status")
            .bind(job_id)
            .fetch_all(pool)
            .await?;
    shared::item_counts(rows, job_id)
}

/// See [`crate::store::Store::list_tasks`].
pub(super) async fn list_tasks(pool: &SqlitePool, job_id: Uuid) -> Result<Vec<Task>, StoreError> {
    let rows: Vec<TaskRow> = sqlx::query_as(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE job_id = $1 ORDER BY id"
    ))
    .bind(job_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Task::try_from).collect()
}

/// See [`crate::store::Store::pending_tasks`].
pub(super) async fn pending_tasks(
    pool: &SqlitePool,
    job_ids: &[Uuid],
) -> Result<Vec<Task>, StoreError> {
    let mut tasks = Vec::new();
    // SQLite has no array parameters: one query per chunk of ids.
    for chunk in job_ids.chunks(500) {
        let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE status = 'pending' AND job_id IN ("
        ));
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        query.push(") ORDER BY id");
        let rows: Vec<TaskRow> = query.build_query_as().fetch_all(pool).await?;
        for row in rows {
            tasks.push(Task::try_from(row)?);
        }
    }
    Ok(tasks)
}

/// See [`crate::store::Store::list_events`].
pub(super) async fn list_events(
    pool: &SqlitePool,
    job_id: Option<Uuid>,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let limit = i64::from(shared::page_limit(limit));
    let rows: Vec<EventRow> = match job_id {
        Some(job_id) => {
            sqlx::query_as(
                "SELECT seq, job_id, type, payload, created_at, request_id FROM events \
                 WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(job_id)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query_as(
                "SELECT seq, job_id, type, payload, created_at, request_id FROM events \
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after_seq)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
    };
    Ok(rows.into_iter().map(Event::from).collect())
}
