//! The SQLite driver (embedded default).
//!
//! SQLite allows one writer at a time. If several pooled connections each
//! opened a transaction, read, and then tried to write, SQLite would have to
//! refuse one of them with SQLITE_BUSY (a lock upgrade cannot wait, or it
//! could deadlock). So all writes go through a dedicated pool of exactly one
//! connection, and every write transaction starts with `BEGIN IMMEDIATE`
//! (taking the write lock up front, waiting up to `busy_timeout` if another
//! process holds it). With a single writer, what a transaction reads cannot
//! change before it commits: there are no row locks, and [`Driver::row_lock`]
//! is empty. Reads use a separate pool: in WAL mode readers never block the
//! writer and always see the last committed state.
//!
//! Durability: `synchronous = FULL` makes every commit fsync the WAL, so
//! nothing is acknowledged before it is on disk.
//!
//! Timestamps are stored as fixed-width UTC text (see [`driver::Ts`]); sets
//! are bound as one JSON array and read with `json_each`.

mod statements;

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Arguments, AssertSqlSafe, Sqlite, SqliteConnection, SqlitePool, Transaction};

use super::driver::{self, Driver, Query, Row, RowLock, Statements, Ts, Value, opt_ts, query};
use super::group_commit::EventRow;
use super::shared::INSERT_CHUNK;
use super::{Backend, SchemaStatus, StoreError, migrate};
use crate::domain::{AgentSnapshot, ContextFilter};

/// How long a connection waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite [`Driver`].
#[derive(Debug, Clone, Copy)]
pub struct Lite;

impl Driver for Lite {
    type Conn = SqliteConnection;
    type Args = SqliteArguments;
    type Pool = SqlitePool;
    type Tx = Transaction<'static, Sqlite>;
    type Pooled = PoolConnection<Sqlite>;

    const BACKEND: Backend = Backend::Sqlite;
    const ROW_LOCKS: bool = false;
    const SQL: &'static Statements = &statements::SQL;

    /// `url` is `sqlite://path`, `sqlite:path`, a plain path, or
    /// `sqlite::memory:`; the file and its folder are created when missing.
    /// `connections` sizes the read pool; writes have one connection.
    async fn connect(url: &str, connections: u32) -> driver::Result<(SqlitePool, SqlitePool)> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let base = if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url)?
        } else {
            SqliteConnectOptions::new().filename(url)
        };
        let base = base
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Full);

        if in_memory {
            // One connection that never closes: the database lives as long as it does.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(base)
                .await?;
            migrate::run_sqlite(&pool).await?;
            return Ok((pool.clone(), pool));
        }

        // Like `create_if_missing` for the file, but for its folder.
        let parent = base
            .get_filename()
            .parent()
            .filter(|p| !p.as_os_str().is_empty());
        if let Some(parent) = parent {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(sqlx::Error::Io)?;
        }
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone().journal_mode(SqliteJournalMode::Wal))
            .await?;
        if let Err(err) = migrate::run_sqlite(&write).await {
            write.close().await;
            return Err(err);
        }
        // The journal mode is a property of the file, set by the writer above;
        // readers refuse writes so that no write can bypass the single writer.
        let read = SqlitePoolOptions::new()
            .max_connections(connections.max(1))
            .connect_with(base.pragma("query_only", "ON"))
            .await?;
        Ok((write, read))
    }

    fn add<'q, T: Value<'q>>(
        args: &mut SqliteArguments,
        value: T,
    ) -> Result<(), sqlx::error::BoxDynError> {
        args.add(value)
    }

    async fn execute(
        conn: &mut SqliteConnection,
        sql: Cow<'static, str>,
        args: SqliteArguments,
    ) -> Result<u64, sqlx::Error> {
        let done = sqlx::query_with::<Sqlite, _>(AssertSqlSafe(sql), args)
            .execute(conn)
            .await?;
        Ok(done.rows_affected())
    }

    async fn fetch_optional<R: Row>(
        conn: &mut SqliteConnection,
        sql: Cow<'static, str>,
        args: SqliteArguments,
    ) -> Result<Option<R>, sqlx::Error> {
        sqlx::query_as_with::<Sqlite, R, _>(AssertSqlSafe(sql), args)
            .fetch_optional(conn)
            .await
    }

    async fn fetch_all<R: Row>(
        conn: &mut SqliteConnection,
        sql: Cow<'static, str>,
        args: SqliteArguments,
    ) -> Result<Vec<R>, sqlx::Error> {
        sqlx::query_as_with::<Sqlite, R, _>(AssertSqlSafe(sql), args)
            .fetch_all(conn)
            .await
    }

    async fn begin(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    async fn begin_read(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        pool.begin().await
    }

    async fn commit(tx: Transaction<'static, Sqlite>) -> Result<(), sqlx::Error> {
        tx.commit().await
    }

    async fn acquire(pool: &SqlitePool) -> Result<PoolConnection<Sqlite>, sqlx::Error> {
        pool.acquire().await
    }

    async fn close(pool: &SqlitePool) {
        pool.close().await;
    }

    async fn schema_status(pool: &SqlitePool) -> driver::Result<SchemaStatus> {
        migrate::status_sqlite(pool).await
    }

    /// One hub owns an SQLite database.
    const NOTIFY_COMMIT: Option<&'static str> = None;

    async fn follow_commits(
        _pool: &SqlitePool,
        _wake: Box<dyn Fn() + Send + Sync>,
        _shutdown: tokio_util::sync::CancellationToken,
    ) {
    }

    /// An anonymous `?`: SQLite numbers it after the highest index so far,
    /// which is `n` when placeholders come in bind order. Numbered or named
    /// placeholders (`$n`) would cost a linear name lookup per value at bind
    /// time, quadratic in a long `VALUES` list.
    fn push_placeholder(sql: &mut String, _n: usize) {
        sql.push('?');
    }

    fn in_texts_at(placeholder: &str) -> String {
        format!("IN (SELECT value FROM json_each({placeholder}))")
    }

    fn in_uuids(n: usize) -> String {
        format!("IN (SELECT unhex(value) FROM json_each(${n}))")
    }

    fn row_lock(_lock: RowLock) -> &'static str {
        ""
    }

    fn row_lock_of(_alias: &'static str) -> &'static str {
        ""
    }

    /// The compact JSON text at the path (`->`), one of the candidates'.
    fn push_context_filter(q: &mut Query<Self>, filter: &ContextFilter) {
        q.push(" AND j.context -> ").push_bind(filter.json_path());
        q.push(" IN (");
        for (i, text) in filter.candidate_texts().into_iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push_bind(text);
        }
        q.push(")");
    }

    fn push_contains(q: &mut Query<Self>, expr: &'static str, _json: bool, needle: &str) {
        // JSON is stored as its text already; LOWER folds ASCII letters only.
        q.push(" AND INSTR(LOWER(")
            .push(expr)
            .push("), ")
            .push_bind(needle.to_ascii_lowercase())
            .push(") > 0");
    }

    fn json_text(column: &str, key: &str) -> String {
        format!("json_extract({column}, '$.{key}')")
    }

    /// See [`crate::store::driver::Driver::append_events`]. With a single
    /// writer, commit order is seq order, so a reader following `seq` never
    /// skips an event.
    async fn append_events(
        conn: &mut SqliteConnection,
        rows: &[EventRow<'_>],
    ) -> Result<(), StoreError> {
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut q = query::<Lite>(
                "INSERT INTO events (job_id, type, payload, created_at, request_id) ",
            );
            q.push_values(chunk, |row, (e, at, request_id)| {
                row.bind(e.job_id)
                    .bind(e.kind.as_str())
                    .bind(&e.payload)
                    .bind(Ts(*at))
                    .bind(*request_id);
            });
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// See [`crate::store::driver::Driver::save_agent_snapshots`]: one
    /// (prepared, cached) UPDATE per agent.
    async fn save_agent_snapshots(
        conn: &mut SqliteConnection,
        latest: &[&AgentSnapshot],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for s in latest {
            query::<Lite>(
                "UPDATE agents SET last_heartbeat_at = COALESCE($2, last_heartbeat_at), health = $3, \
                 trust_score = $4, in_flight = $5, updated_at = $6 WHERE id = $1",
            )
            .bind(s.id)
            .bind(opt_ts(s.last_heartbeat_at))
            .bind(s.health.as_str())
            .bind(s.trust_score)
            .bind(s.in_flight)
            .bind(Ts(at))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}
