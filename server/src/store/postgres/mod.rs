//! The Postgres driver (production).
//!
//! One pool serves reads and writes. Concurrency control is optimistic and
//! row-level: the scripts' updates are conditional on the expected status,
//! so of two racing writers exactly one changes the row; under READ
//! COMMITTED the loser blocks on the row lock, then re-evaluates the
//! condition on the committed row, which is what makes this sound without
//! SERIALIZABLE. Where a script must hold a row still (a job whose tasks
//! finish, a dependency being checked), it takes the lock this driver spells
//! ([`Driver::row_lock`]).
//!
//! Lock order, to stay deadlock free: job rows before task rows, task rows
//! before item rows, a job before the jobs waiting on it, and events last
//! (see [`statements::append_events`]).

mod statements;

use std::borrow::Cow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions};
use sqlx::{Arguments, AssertSqlSafe, PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::driver::{self, Driver, Query, Row, RowLock, Statements, Value};
use super::group_commit::EventRow;
use super::{Backend, SchemaStatus, StoreError, migrate};
use crate::domain::{AgentSnapshot, ContextFilter};

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

/// The Postgres [`Driver`].
#[derive(Debug, Clone, Copy)]
pub struct Pg;

impl Driver for Pg {
    type Conn = PgConnection;
    type Args = PgArguments;
    type Pool = PgPool;
    type Tx = Transaction<'static, Postgres>;
    type Pooled = PoolConnection<Postgres>;

    const BACKEND: Backend = Backend::Postgres;
    const ROW_LOCKS: bool = true;
    const SQL: &'static Statements = &statements::SQL;

    async fn connect(url: &str, connections: u32) -> driver::Result<(PgPool, PgPool)> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        if let Err(err) = migrate::run_postgres(&pool).await {
            // The migrator may hold its advisory lock on a pooled connection
            // when it fails; closing the pool releases it.
            pool.close().await;
            return Err(err);
        }
        Ok((pool.clone(), pool))
    }

    fn add<'q, T: Value<'q>>(
        args: &mut PgArguments,
        value: T,
    ) -> Result<(), sqlx::error::BoxDynError> {
        args.add(value)
    }

    async fn execute(
        conn: &mut PgConnection,
        sql: Cow<'static, str>,
        args: PgArguments,
    ) -> Result<u64, sqlx::Error> {
        let done = sqlx::query_with::<Postgres, _>(AssertSqlSafe(sql), args)
            .execute(conn)
            .await?;
        Ok(done.rows_affected())
    }

    async fn fetch_optional<R: Row>(
        conn: &mut PgConnection,
        sql: Cow<'static, str>,
        args: PgArguments,
    ) -> Result<Option<R>, sqlx::Error> {
        sqlx::query_as_with::<Postgres, R, _>(AssertSqlSafe(sql), args)
            .fetch_optional(conn)
            .await
    }

    async fn fetch_all<R: Row>(
        conn: &mut PgConnection,
        sql: Cow<'static, str>,
        args: PgArguments,
    ) -> Result<Vec<R>, sqlx::Error> {
        sqlx::query_as_with::<Postgres, R, _>(AssertSqlSafe(sql), args)
            .fetch_all(conn)
            .await
    }

    async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        pool.begin().await
    }

    async fn begin_read(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        pool.begin().await
    }

    async fn commit(tx: Transaction<'static, Postgres>) -> Result<(), sqlx::Error> {
        tx.commit().await
    }

    async fn acquire(pool: &PgPool) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        pool.acquire().await
    }

    async fn close(pool: &PgPool) {
        pool.close().await;
    }

    async fn schema_status(pool: &PgPool) -> driver::Result<SchemaStatus> {
        migrate::status_postgres(pool).await
    }

    const NOTIFY_COMMIT: Option<&'static str> = Some("NOTIFY switchyard_commits");

    async fn follow_commits(
        pool: &PgPool,
        wake: Box<dyn Fn() + Send + Sync>,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        // A connection of its own, outside the pool (a listener holds its
        // connection for good, and `pool_size` may be 1). Reconnects after a
        // lost connection; meanwhile readers' poll (once a second) still
        // sees other nodes' commits.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with((*pool.connect_options()).clone());
        while !shutdown.is_cancelled() {
            let mut listener = match sqlx::postgres::PgListener::connect_with(&own).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for other nodes' commits; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            if let Err(e) = listener.listen("switchyard_commits").await {
                tracing::warn!(error = %e, "cannot listen for other nodes' commits; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    received = listener.recv() => match received {
                        Ok(_) if shutdown.is_cancelled() => return,
                        Ok(_) => wake(),
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the commit notifications; reconnecting");
                            wake();
                            break;
                        }
                    },
                }
            }
        }
    }

    fn push_placeholder(sql: &mut String, n: usize) {
        use std::fmt::Write;
        let _ = write!(sql, "${n}");
    }

    fn in_texts_at(placeholder: &str) -> String {
        format!("= ANY({placeholder})")
    }

    fn in_uuids(n: usize) -> String {
        format!("= ANY(${n})")
    }

    fn row_lock(lock: RowLock) -> &'static str {
        match lock {
            RowLock::Share => " FOR SHARE",
            RowLock::Update => " FOR UPDATE",
            RowLock::NoKeyUpdate => " FOR NO KEY UPDATE",
        }
    }

    fn row_lock_of(alias: &'static str) -> &'static str {
        match alias {
            "j" => " FOR NO KEY UPDATE OF j",
            "d" => " FOR NO KEY UPDATE OF d",
            _ => " FOR NO KEY UPDATE",
        }
    }

    /// Containment (`@>`), which the GIN index on `jobs.context` serves.
    fn push_context_filter(q: &mut Query<Self>, filter: &ContextFilter) {
        q.push(" AND (");
        for (i, containment) in filter.containments().into_iter().enumerate() {
            if i > 0 {
                q.push(" OR ");
            }
            q.push("j.context @> ").push_bind(containment);
        }
        q.push(")");
    }

    fn push_contains(q: &mut Query<Self>, expr: &'static str, json: bool, needle: &str) {
        // ASCII letters only, as SQLite's LOWER: both stores find the same rows.
        q.push(" AND POSITION(")
            .push_bind(needle.to_ascii_lowercase())
            .push(" IN TRANSLATE(")
            .push(expr)
            .push(if json { "::text" } else { "" })
            .push(", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')) > 0");
    }

    fn json_text(column: &str, key: &str) -> String {
        format!("{column}->>'{key}'")
    }

    /// See [`crate::store::driver::Driver::append_events`].
    async fn append_events(
        conn: &mut PgConnection,
        rows: &[EventRow<'_>],
    ) -> Result<(), StoreError> {
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

    /// See [`crate::store::driver::Driver::save_agent_snapshots`]: one bulk
    /// UPDATE from arrays, after locking the rows in id order (two flushes never
    /// deadlock).
    async fn save_agent_snapshots(
        conn: &mut PgConnection,
        latest: &[&AgentSnapshot],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let ids: Vec<Uuid> = latest.iter().map(|s| s.id).collect();
        let heartbeats: Vec<Option<DateTime<Utc>>> =
            latest.iter().map(|s| s.last_heartbeat_at).collect();
        let health: Vec<&str> = latest.iter().map(|s| s.health.as_str()).collect();
        let trust: Vec<f64> = latest.iter().map(|s| s.trust_score).collect();
        let in_flight: Vec<i32> = latest.iter().map(|s| s.in_flight).collect();
        sqlx::query("SELECT 1 FROM agents WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
            .bind(&ids)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "UPDATE agents a SET last_heartbeat_at = COALESCE(s.last_heartbeat_at, a.last_heartbeat_at), \
             health = s.health, trust_score = s.trust_score, in_flight = s.in_flight, updated_at = $6 \
             FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::float8[], $5::int4[]) \
             AS s(id, last_heartbeat_at, health, trust_score, in_flight) WHERE a.id = s.id",
        )
        .bind(&ids)
        .bind(&heartbeats)
        .bind(&health)
        .bind(&trust)
        .bind(&in_flight)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
