//! Items, tasks and the event log on Postgres.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::{Event, Item, ItemCounts, ItemStatus, NewEvent, NewItem, Task, TaskStatus};
use crate::store::StoreError;
use crate::store::group_commit::{self, Applying, batch_event_rows, event_rows};
use crate::store::shared::{self, EventRow, INSERT_CHUNK, ItemRow, NewTask, TaskRow, task_columns};

/// Key of the transaction-scoped advisory lock that orders event appends.
///
/// An identity column hands out `seq` at insert time, but transactions commit
/// in their own order: without this lock a reader could see seq 11 committed
/// while seq 10 is still in flight, move its cursor past 10 and never see it.
/// Taking the lock right before appending, and holding it to commit, makes
/// commit order equal seq order. Appending events is therefore always the last
/// statement of a transaction, so the lock is held only for the insert and
/// the commit, and a holder never waits for a row lock (no deadlock).
const EVENT_APPEND_LOCK: i64 = 0x5359_4556; // "SYEV"

/// Appends events in order, as the last step of a transaction, stamped with
/// the current request id (`events::request_id`).
pub(super) async fn append_events(
    conn: &mut PgConnection,
    events: &[NewEvent],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    // The HTTP request this transaction runs for, if any (see `events::request_id`).
    let request_id = crate::events::request_id::current();
    insert_events(conn, &event_rows(events, at, request_id.as_deref())).await
}

/// Appends the events of a group commit (see `store::group_commit`), each
/// op's with its own time and request id, as the last step of its transaction.
pub(super) async fn append_batch(
    conn: &mut PgConnection,
    groups: &[Applying],
) -> Result<(), StoreError> {
    insert_events(conn, &batch_event_rows(groups)).await
}

async fn insert_events(
    conn: &mut PgConnection,
    rows: &[group_commit::EventRow<'_>],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(EVENT_APPEND_LOCK)
        .execute(&mut *conn)
        .await?;
    // One statement text whatever the row count (arrays, not a VALUES list),
    // so Postgres plans it once per connection; rows keep their order.
    let job_ids: Vec<Option<Uuid>> = rows.iter().map(|(e, _, _)| e.job_id).collect();
    let kinds: Vec<&str> = rows.iter().map(|(e, _, _)| e.kind.as_str()).collect();
    let payloads: Vec<&serde_json::Value> = rows.iter().map(|(e, _, _)| &e.payload).collect();
    let times: Vec<DateTime<Utc>> = rows.iter().map(|(_, at, _)| *at).collect();
    let request_ids: Vec<Option<&str>> = rows.iter().map(|(_, _, r)| *r).collect();
    sqlx::query(
        "INSERT INTO events (job_id, type, payload, created_at, request_id) \
         SELECT job_id, type, payload, created_at, request_id \
         FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::timestamptz[], $5::text[]) \
         WITH ORDINALITY AS e(job_id, type, payload, created_at, request_id, n) ORDER BY n",
    )
    .bind(job_ids)
    .bind(kinds)
    .bind(payloads)
    .bind(times)
    .bind(request_ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts tasks, `pending`, attempt 0 and due now (stage-0 tasks of
/// queued jobs, next-stage tasks of emitted items).
pub(super) async fn insert_tasks(
    conn: &mut PgConnection,
    tasks: &[NewTask],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    for chunk in tasks.chunks(INSERT_CHUNK) {
        let mut qb = QueryBuilder::<Postgres>::new(
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
                .push_bind(at)
                .push_bind(at)
                .push_bind(at)
                .push_bind(1_i64);
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// See [`crate::store::Store::insert_items`].
pub(super) async fn insert_items(
    pool: &PgPool,
    new: Vec<NewItem>,
) -> Result<Vec<Item>, StoreError> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let at = shared::now();
    let mut tx = pool.begin().await?;
    for chunk in new.chunks(INSERT_CHUNK) {
        let mut qb = QueryBuilder::<Postgres>::new(
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
                .push_bind(at)
                .push_bind(at);
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
    pool: &PgPool,
    job_id: Uuid,
    status: Option<ItemStatus>,
    after: Option<Uuid>,
    limit: u32,
) -> Result<Vec<Item>, StoreError> {
    let mut qb = QueryBuilder::<Postgres>::new(
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
pub(super) async fn item_counts(pool: &PgPool, job_id: Uuid) -> Result<ItemCounts, StoreError> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM items WHERE job_id = $1 GROUP BY status")
            .bind(job_id)
            .fetch_all(pool)
            .await?;
    shared::item_counts(rows, job_id)
}

/// See [`crate::store::Store::list_tasks`].
pub(super) async fn list_tasks(pool: &PgPool, job_id: Uuid) -> Result<Vec<Task>, StoreError> {
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
    pool: &PgPool,
    job_ids: &[Uuid],
) -> Result<Vec<Task>, StoreError> {
    let rows: Vec<TaskRow> = sqlx::query_as(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE job_id = ANY($1) AND status = 'pending' ORDER BY id"
    ))
    .bind(job_ids)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Task::try_from).collect()
}

/// See [`crate::store::Store::list_events`].
pub(super) async fn list_events(
    pool: &PgPool,
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
