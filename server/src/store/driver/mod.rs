//! The statement-level driver: what differs between Postgres and SQLite, and
//! nothing else.
//!
//! The store's rules (fencing, job completion, retries, item outcomes,
//! repairs, webhooks) are written once, in [`super::scripts`], as functions
//! generic over a [`Driver`]. A driver knows how to open its database, run a
//! statement with its bound values, begin a transaction, and spell the few
//! things the two dialects spell differently: set membership, row-locking
//! clauses, and a handful of statements whose text cannot be shared (the
//! event append, JSON aggregates). It holds no `if` on a status, an attempt
//! or a count: a reader who wants to know what happens when a task finishes
//! reads `scripts/complete.rs` and `scripts/finish.rs`, once.
//!
//! This follows River (`riverdriver`): one interface, one thin implementation
//! per database, and one contract suite (`tests/it/store_contract`) run
//! against every driver. Dispatch is static (`async fn` in traits, generic
//! scripts), so the abstraction costs no allocation or virtual call per
//! statement.

mod query;
mod values;

use std::future::Future;
use std::ops::DerefMut;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use query::{Query, Tuple, query, with_rows};
pub use values::{Day, Texts, Ts, Uuids, opt_ts};

use super::group_commit::EventRow;
use super::{Backend, SchemaStatus, StoreError};
use crate::domain::{AgentSnapshot, ContextFilter};

/// A value both drivers can bind: integers, strings, UUIDs, JSON, bytes,
/// and the store's own [`Ts`], [`Texts`], [`Uuids`] and [`Day`], each also
/// as an `Option`. The list is closed on purpose: a `DateTime` would bind
/// on both databases but in a form SQLite cannot compare, so it is not a
/// `Value` and a script that binds one does not compile (bind [`Ts`]).
pub trait Value<'q>:
    sqlx::Encode<'q, sqlx::Postgres>
    + sqlx::Type<sqlx::Postgres>
    + sqlx::Encode<'q, sqlx::Sqlite>
    + sqlx::Type<sqlx::Sqlite>
    + Send
{
}

macro_rules! values {
    ($($t:ty),* $(,)?) => {
        $(
            impl<'q> Value<'q> for $t {}
            impl<'q> Value<'q> for Option<$t> {}
        )*
    };
}

values!(
    bool,
    i16,
    i32,
    i64,
    f64,
    String,
    &'q str,
    &'q String,
    Vec<u8>,
    &'q [u8],
    Uuid,
    serde_json::Value,
    &'q serde_json::Value,
    Ts,
    Texts,
    Uuids,
    Day,
);

impl<'q> Value<'q> for &'q Option<String> {}
impl<'q> Value<'q> for &'q Vec<u8> {}
impl<'q, T: serde::Serialize + Send + Sync + 'q> Value<'q> for sqlx::types::Json<T> {}
impl<'q, T: serde::Serialize + Send + Sync + 'q> Value<'q> for Option<sqlx::types::Json<T>> {}

/// A row shape both drivers can decode (the structs of `shared::rows`,
/// tuples of plain values).
pub trait Row:
    for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + Send
    + Unpin
{
}

impl<T> Row for T where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + Send
        + Unpin
{
}

/// Which row lock a `SELECT` takes where the database has row locks
/// (Postgres). SQLite serialises every write transaction instead, so there
/// the clause is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLock {
    /// `FOR SHARE`: the row cannot change until commit.
    Share,
    /// `FOR UPDATE`: exclusive.
    Update,
    /// `FOR NO KEY UPDATE`: exclusive, but does not block the key-share
    /// locks that inserting rows referencing this one take.
    NoKeyUpdate,
}

/// A result a driver statement returns, with `sqlx` errors converted.
pub type Result<T> = std::result::Result<T, StoreError>;

/// One database: connections, transactions, statements and dialect.
/// Every method is one statement (or one set-based batch statement).
pub trait Driver: Send + Sync + Sized + 'static {
    /// A connection (what a transaction or a pooled connection derefs to).
    type Conn: Send;
    /// Bound values of one statement.
    type Args: Default + Send;
    /// A pool of connections.
    type Pool: Clone + Send + Sync + std::fmt::Debug + 'static;
    /// An open transaction; dropped without commit it rolls back.
    type Tx: DerefMut<Target = Self::Conn> + Send;
    /// A connection borrowed from a pool.
    type Pooled: DerefMut<Target = Self::Conn> + Send;

    const BACKEND: Backend;
    /// Whether `SELECT ... FOR ...` locks rows (see [`RowLock`]). Statements
    /// that exist only to take a lock are skipped where this is false.
    const ROW_LOCKS: bool;

    // ---------------------------------------------------------- plumbing

    /// Opens the database named by `url` with `connections` pooled
    /// connections and brings its schema up to date. Returns the pool writes
    /// go to and the pool reads go to (the same pool where the database
    /// allows concurrent writers). Fails with [`StoreError::SchemaTooNew`]
    /// on a database migrated by a newer build.
    fn connect(
        url: &str,
        connections: u32,
    ) -> impl Future<Output = Result<(Self::Pool, Self::Pool)>> + Send;

    /// Binds one value.
    fn add<'q, T: Value<'q>>(
        args: &mut Self::Args,
        value: T,
    ) -> std::result::Result<(), sqlx::error::BoxDynError>;

    fn execute(
        conn: &mut Self::Conn,
        sql: std::borrow::Cow<'static, str>,
        args: Self::Args,
    ) -> impl Future<Output = std::result::Result<u64, sqlx::Error>> + Send;

    fn fetch_optional<R: Row>(
        conn: &mut Self::Conn,
        sql: std::borrow::Cow<'static, str>,
        args: Self::Args,
    ) -> impl Future<Output = std::result::Result<Option<R>, sqlx::Error>> + Send;

    fn fetch_all<R: Row>(
        conn: &mut Self::Conn,
        sql: std::borrow::Cow<'static, str>,
        args: Self::Args,
    ) -> impl Future<Output = std::result::Result<Vec<R>, sqlx::Error>> + Send;

    /// Begins a write transaction (SQLite: `BEGIN IMMEDIATE`, taking the
    /// write lock up front).
    fn begin(
        pool: &Self::Pool,
    ) -> impl Future<Output = std::result::Result<Self::Tx, sqlx::Error>> + Send;

    /// Begins a read-only transaction: what it reads is one snapshot where
    /// the database offers one (SQLite in WAL mode).
    fn begin_read(
        pool: &Self::Pool,
    ) -> impl Future<Output = std::result::Result<Self::Tx, sqlx::Error>> + Send;

    fn commit(tx: Self::Tx) -> impl Future<Output = std::result::Result<(), sqlx::Error>> + Send;

    fn acquire(
        pool: &Self::Pool,
    ) -> impl Future<Output = std::result::Result<Self::Pooled, sqlx::Error>> + Send;

    fn close(pool: &Self::Pool) -> impl Future<Output = ()> + Send;

    /// Applied vs known migrations.
    fn schema_status(pool: &Self::Pool) -> impl Future<Output = Result<SchemaStatus>> + Send;

    /// The statement a group commit ends with when other nodes share the
    /// database, so they learn of it at once (Postgres `NOTIFY`); `None`
    /// where one hub owns the database.
    const NOTIFY_COMMIT: Option<&'static str>;

    /// Calls `wake` whenever another node notifies a commit, until
    /// `shutdown` (returns at once where there are no other nodes).
    fn follow_commits(
        pool: &Self::Pool,
        wake: Box<dyn Fn() + Send + Sync>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> impl Future<Output = ()> + Send;

    // ----------------------------------------------------------- dialect

    /// Appends the placeholder of the `n`th bound value of a statement
    /// built with [`Query::push_bind`], whose placeholders come in bind order.
    fn push_placeholder(sql: &mut String, n: usize);

    /// `<column> <this>`: membership in a [`Texts`] bound as `$n`.
    fn in_texts(n: usize) -> String {
        Self::in_texts_at(&format!("${n}"))
    }
    /// `<column> <this>`: membership in a [`Texts`] bound at `placeholder`.
    fn in_texts_at(placeholder: &str) -> String;
    /// `<column> <this>`: membership in a [`Uuids`] bound as `$n`.
    fn in_uuids(n: usize) -> String;
    /// The clause a `SELECT` ends with to take `lock` (empty without row locks).
    fn row_lock(lock: RowLock) -> &'static str;
    /// [`RowLock::NoKeyUpdate`] on the rows of one joined table, `alias`.
    fn row_lock_of(alias: &'static str) -> &'static str;
    /// Appends ` AND <the context of job j matches filter>`; the rule of
    /// what matches is [`ContextFilter`]'s.
    fn push_context_filter(q: &mut Query<Self>, filter: &ContextFilter);
    /// Appends ` AND <expr contains needle>`, ignoring the case of ASCII
    /// letters only (what SQLite's `LOWER` folds; other letters must match
    /// exactly on every store); with `json`, `expr` is a JSON column searched
    /// as its text.
    fn push_contains(q: &mut Query<Self>, expr: &'static str, json: bool, needle: &str);
    /// The text of the top-level string field `key` of the JSON column `column`.
    fn json_text(column: &str, key: &str) -> String;

    // ------------------------------------------- statements that differ

    /// Appends events in the order given, as the last statement of the
    /// transaction, so that commit order is `seq` order for every reader.
    /// Never called with no rows.
    fn append_events(
        conn: &mut Self::Conn,
        rows: &[EventRow<'_>],
    ) -> impl Future<Output = Result<()>> + Send;

    /// Writes agent snapshots in one statement where the database can
    /// (the last per agent wins; unknown ids ignored).
    fn save_agent_snapshots(
        conn: &mut Self::Conn,
        latest: &[&AgentSnapshot],
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The statements whose whole text differs (JSON and date functions).
    const SQL: &'static Statements;
}

/// Statement texts each driver spells in its own dialect, with the same
/// placeholders and the same result columns.
pub struct Statements {
    /// Per string element of the JSON array `data.tags` of a job's items
    /// (`$1`), per item status: `key, status, count`. Items whose field is
    /// not an array, and elements that are not strings, are skipped.
    pub tag_counts: &'static str,
    /// The same over `data.citations`.
    pub citation_counts: &'static str,
    /// Per `data.priority` of a job's items (`$1`; `NULL` unless a string),
    /// per status: `key, status, count`.
    pub priority_counts: &'static str,
    /// A job's (`$1`) usage per agent and capability: `agent_id,
    /// agent_name, capability, tasks, tokens_in, tokens_out, requests,
    /// pricing` (pricing as JSON text).
    pub usage_groups: &'static str,
    /// Events in `($1, $2]` whose type is a key of the JSON object `$3`,
    /// per UTC day and metric (the key's value): `day, metric, count`.
    pub daily_event_counts: &'static str,
    /// Usage of the tasks named by `$3` events in `($1, $2]`, per UTC day:
    /// `day, tokens_in, tokens_out, requests`.
    pub daily_usage: &'static str,
}
