//! Persistence: the [`Store`] trait, written once over two drivers.
//!
//! All SQL of the hub lives in this folder and is parameterised; nothing else
//! sees SQL. The layers, top down:
//!
//! - [`Store`] (this file) and its companions [`events::EventStore`],
//!   [`browse::BrowseStore`] (what the dashboard pages through),
//!   [`webhooks::WebhookStore`], [`reports::ReportStore`]: what the hub asks.
//! - `scripts/`: one transaction script per operation, generic over a
//!   driver; [`SqlStore`] implements the traits with them.
//! - `shared/`: the rules the scripts apply (fencing, failure plans, job
//!   completion) and the row shapes they read.
//! - [`driver`]: the statement-level interface, implemented by
//!   [`postgres::Pg`] (production) and [`sqlite::Lite`] (the embedded
//!   default), which hold only connections, dialect and statement text.
//!
//! Both drivers pass the same contract suite (`tests/it/store_contract.rs`).
//!
//! Every state change is conditional on the state it expects (`WHERE status
//! IN (expected)`), and appends its event in the same transaction, so two racing
//! writers give exactly one winner and the loser gets [`StoreError::Conflict`].
//! Task transitions are conditional on the task's status and attempt (and the
//! agent holding it, when given); their conflicts name the task, the attempt
//! and the task's current attempt and status.

pub mod browse;
pub mod driver;
pub mod events;
pub mod group_commit;
pub mod migrate;
pub mod nodes;
pub mod postgres;
pub mod provision;
pub mod reports;
mod scripts;
mod shared;
pub mod sqlite;
pub mod webhooks;

pub use scripts::SqlStore;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use chrono::{DateTime, Utc};

pub use group_commit::{Created, Pending};

use crate::domain::{
    AgentRecord, AgentRegistration, AgentSessionState, AgentSnapshot, CreateJobOutcome, Document,
    Event, Item, ItemCounts, ItemStatus, Job, JobFilter, JobPage, JobStatus, NewItem, NewJob, Task,
    TaskCompletion, TaskFailure, TaskOutcome, TaskStatus,
};

/// A shared handle to whichever store is configured.
pub type DynStore = Arc<dyn Store>;

/// Which database a store runs on: the one answer to that question for
/// configuration, the store, the benchmarks and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }

    /// The database a URL names: `postgres://` and `postgresql://` are
    /// Postgres; `sqlite:` URLs and plain file paths are SQLite; any other
    /// scheme (`mysql://`, a typo) is `None`.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else if url.starts_with("sqlite:") || !url.contains("://") {
            Some(Backend::Sqlite)
        } else {
            None
        }
    }
}

/// Where the database schema stands relative to this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Highest migration version applied to the database (0 when none).
    pub applied: i64,
    /// Highest migration version this build knows.
    pub known: i64,
}

impl SchemaStatus {
    pub fn is_current(&self) -> bool {
        self.applied == self.known
    }
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A conditional update lost: the row was not in the expected state.
    #[error("{message}")]
    Conflict { message: String },
    /// The idempotency key was used before with a different request.
    #[error(
        "idempotency key `{key}` was already used with a different request (job {job_id}); use a new key for a new job"
    )]
    IdempotencyMismatch { key: String, job_id: Uuid },
    /// Jobs named in `depends_on` do not exist.
    #[error("depends_on names jobs that do not exist: {}", .0.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(", "))]
    UnknownDependencies(Vec<Uuid>),
    /// The database has migrations this build does not know.
    #[error(
        "the database schema is at version {applied} but this build of switchyard only knows up to version {known}; run a newer switchyard against this database"
    )]
    SchemaTooNew { applied: i64, known: i64 },
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database failure (connection, constraint, I/O, ...).
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// A stored value could not be decoded (corrupt or foreign data).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// What went wrong opening the database at `url` (shown without its
    /// password) and what to do about it, in place of the driver's text.
    pub fn explain_open(&self, url: &str) -> String {
        let target = url.rsplit('@').next().unwrap_or(url);
        let host = target
            .split_once("://")
            .map_or(target, |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or_default();
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => match db.code().as_deref() {
                Some("3D000") => {
                    let name = url.rsplit('/').next().unwrap_or_default();
                    let name = name.split('?').next().unwrap_or(name);
                    format!(
                        "the database `{name}` does not exist on {host}: create it (`createdb {name}`, or `CREATE DATABASE \"{name}\"`), or correct database_url"
                    )
                }
                Some("28P01" | "28000") => format!(
                    "{host} refused the user or password: {}; check database_url's user and password (or database_password_file)",
                    db.message()
                ),
                _ => format!("the database answered: {}", db.message()),
            },
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) => format!(
                "no connection to a database server at {host}: is it running and reachable (host, port, firewall)? Correct database_url if it is elsewhere"
            ),
            other => other.to_string(),
        }
    }

    /// Whether the same write may succeed if sent again: the connection or
    /// pool failed, the database was busy, shutting down or out of a
    /// resource, or the transaction lost a serialization race. Everything
    /// else (a value the database cannot hold, a constraint, corrupt data)
    /// fails the same way every time, so nobody should be told to resend.
    pub fn is_transient(&self) -> bool {
        let StoreError::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                // Postgres SQLSTATE classes: 08 connection, 40 rollback
                // (serialization, deadlock), 53 resources, 57 operator
                // intervention (shutdown), 58 system (I/O).
                let postgres = ["08", "40", "53", "57", "58"]
                    .iter()
                    .any(|class| code.starts_with(class));
                // SQLite primary result codes (extended codes keep them in
                // the low byte): BUSY 5, LOCKED 6, IOERR 10, FULL 13.
                let sqlite = code.len() < 5
                    && code
                        .parse::<i32>()
                        .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13));
                postgres || sqlite
            }
            _ => false,
        }
    }
}

/// Decoding failures mean the stored data is not what this build wrote:
/// they become [`StoreError::Corrupt`]; everything else stays a database error.
impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(err.to_string())
            }
            other => StoreError::Database(other),
        }
    }
}

/// Opens the store named by `database_url` and brings its schema up to date:
/// Postgres for `postgres://` and `postgresql://` URLs (a pool of `pool_size`
/// connections), SQLite for anything else (`sqlite://path`, `sqlite:path` or a
/// plain file path; one writer plus `pool_size` readers).
pub async fn open(database_url: &str, pool_size: u32) -> Result<DynStore, StoreError> {
    if Backend::of_url(database_url) == Some(Backend::Postgres) {
        Ok(Arc::new(
            SqlStore::<postgres::Pg>::connect(database_url, pool_size).await?,
        ))
    } else {
        Ok(Arc::new(
            SqlStore::<sqlite::Lite>::connect(database_url, pool_size).await?,
        ))
    }
}

/// The persistence contract of the hub. See the module docs.
///
/// The task transitions of the hot path (`assign_task`, `start_task`,
/// `extend_lease`, `complete_task`, `fail_task`, `requeue_task`) are queued to
/// the store's group-commit writer when called (see [`group_commit`]) and
/// applied in call order; the returned [`Pending`] resolves once the batch
/// holding the op has committed.
#[async_trait]
pub trait Store:
    events::EventStore
    + browse::BrowseStore
    + webhooks::WebhookStore
    + reports::ReportStore
    + nodes::NodeStore
    + Send
    + Sync
    + 'static
{
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Cheap round trip to the database.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Applied vs known migration version.
    async fn schema_status(&self) -> Result<SchemaStatus, StoreError>;

    /// Closes the pool; waits for connections to be returned.
    async fn close(&self);

    /// The group-commit writer the hot path's ops are queued to.
    fn writer(&self) -> &group_commit::GroupCommit;

    /// Bumped after every write that may have appended events: the event
    /// pump and the webhook tailer wait on it instead of polling.
    fn commits(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Whether other nodes share the database: the group commit then tells
    /// them of each commit (Postgres `NOTIFY`), so their streams, webhook
    /// tailers and dispatchers wake at once. Off, nothing is sent.
    fn set_peers(&self, peers: bool);

    /// Wakes [`Store::commits`] on other nodes' commits until `shutdown`
    /// (Postgres `LISTEN`; returns at once on SQLite).
    async fn follow_peers(&self, shutdown: tokio_util::sync::CancellationToken);

    /// Stores a job, its document, labels and dependencies (both stored as
    /// sets and returned sorted), its first task
    /// (status `pending`, stage 0, unless the job is `waiting`) and the
    /// `job.created` event, in one transaction.
    ///
    /// The job starts `waiting` when any dependency has not completed yet,
    /// else `queued`. With an idempotency key already used by the same
    /// `created_by`: the same `request_hash` returns [`CreateJobOutcome::Existing`],
    /// a different one [`StoreError::IdempotencyMismatch`]. Unknown dependency
    /// ids give [`StoreError::UnknownDependencies`] and store nothing.
    async fn create_job(&self, job: NewJob) -> Result<CreateJobOutcome, StoreError> {
        Ok(self.submit_job(job).await?.outcome)
    }

    /// [`Store::create_job`], with the task it made ready (for the dispatcher,
    /// which then needs not read it back).
    async fn submit_job(&self, job: NewJob) -> Result<Created, StoreError>;

    /// Stores many jobs in one transaction, all or nothing, each as
    /// [`Store::create_job`] would (idempotency keys honoured per job). The
    /// first failure aborts the whole batch.
    async fn create_jobs(&self, jobs: Vec<NewJob>) -> Result<Vec<CreateJobOutcome>, StoreError> {
        let created = self.submit_jobs(jobs).await?;
        Ok(created.into_iter().map(|c| c.outcome).collect())
    }

    /// [`Store::create_jobs`], with the tasks each job made ready.
    async fn submit_jobs(&self, jobs: Vec<NewJob>) -> Result<Vec<Created>, StoreError>;

    /// One job without item counts (`items: None`), or `None`.
    async fn get_job(&self, id: Uuid) -> Result<Option<Job>, StoreError>;

    /// Jobs newest first (by id, UUIDv7), filtered; at most `filter.limit`.
    /// Every `limit` of the store is clamped to 1..=1000.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<JobPage, StoreError>;

    /// Item counts of a job by status.
    async fn item_counts(&self, job_id: Uuid) -> Result<ItemCounts, StoreError>;

    /// The job's document with its bytes, or `None` when it has none.
    async fn get_document(&self, job_id: Uuid) -> Result<Option<Document>, StoreError>;

    /// Moves a job from one of `from` to `to`, bumping its version, setting
    /// `started_at` (to running) / `finished_at` (to a terminal status) and
    /// `status_reason`, and appends the matching `job.*` event.
    /// Moving a job that has no task yet (a released `waiting` job) to
    /// `queued` also creates its stage-0 task and `task.created`, as
    /// `create_job` does for a job that is queued at once.
    /// Moving a job to `failed` or `cancelled` fails the jobs waiting on it in
    /// the same transaction (`job.failed`, reason `"dependency <id> failed"`
    /// or `"dependency <id> was cancelled"`), and the jobs waiting on those,
    /// transitively. Moving it
    /// to `completed` releases nobody: a release creates a task the
    /// dispatcher must be told about, which only `complete_task` (through
    /// `TaskOutcome::ready`) does; the waiting jobs stay `waiting` until
    /// moved to `queued` here. Active tasks are left as they are.
    /// Not found: [`StoreError::NotFound`]; not in `from`: [`StoreError::Conflict`]
    /// naming the current status; `to == waiting` is a conflict too (a job
    /// only starts there).
    async fn transition_job(
        &self,
        id: Uuid,
        from: &[JobStatus],
        to: JobStatus,
        reason: Option<String>,
    ) -> Result<Job, StoreError>;

    /// Cancels a non-terminal job: the job becomes `cancelled`, its
    /// non-terminal tasks `cancelled`; items are left as they are. One
    /// transaction, with `job.cancelled` and one `task.cancelled` per task.
    /// Jobs waiting on it fail (`"dependency <id> was cancelled"`, with
    /// `job.failed`), and the jobs waiting on those, transitively.
    /// Returns the job and the ids of the tasks that were cancelled.
    /// A terminal job gives [`StoreError::Conflict`].
    async fn cancel_job(&self, id: Uuid, reason: String) -> Result<(Job, Vec<Uuid>), StoreError>;

    /// Stores items and their `item.created` events in one transaction.
    async fn insert_items(&self, items: Vec<NewItem>) -> Result<Vec<Item>, StoreError>;

    /// A job's items in creation order, optionally by status and by text
    /// (`text` in the item's data, ignoring ASCII case); at most `limit`
    /// after the item id `after`.
    async fn list_items(
        &self,
        job_id: Uuid,
        status: Option<ItemStatus>,
        text: Option<&str>,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Item>, StoreError>;

    /// How many tasks are in each status (benchmarks verify exact counts with it).
    async fn task_counts(&self) -> Result<std::collections::HashMap<TaskStatus, i64>, StoreError>;

    /// The `pending` tasks of the given jobs (what a batch of new jobs made ready).
    async fn pending_tasks(&self, job_ids: &[Uuid]) -> Result<Vec<Task>, StoreError>;

    /// Of `task_ids`, the tasks `agent_id` holds (assigned or running): what
    /// an agent resuming on this node held through another one.
    async fn held_tasks(&self, agent_id: Uuid, task_ids: &[Uuid]) -> Result<Vec<Task>, StoreError>;

    /// A job's tasks in creation order.
    async fn list_tasks(&self, job_id: Uuid) -> Result<Vec<Task>, StoreError>;

    /// Events after `after_seq` (exclusive) in sequence order, optionally of one job.
    async fn list_events(
        &self,
        job_id: Option<Uuid>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;
    // ------------------------------------------------------------ agents

    /// Upserts an agent by name (a new name gets `new_id`, health `active`
    /// and trust 1.0; a known name keeps its id, health, trust, in-flight
    /// count and history), replaces its capabilities (one per name, the first
    /// declaration wins, `max_concurrency` at least 1), sets it `connected`,
    /// and appends `agent.connected`. One transaction. Returns the stored
    /// record, capabilities sorted by name.
    async fn register_agent(
        &self,
        registration: AgentRegistration,
    ) -> Result<AgentRecord, StoreError>;

    /// Sets an agent's session state and appends the matching event
    /// (`agent.connected`/`agent.draining`/`agent.disconnected`/`agent.offline`).
    async fn set_agent_session_state(
        &self,
        agent_id: Uuid,
        state: AgentSessionState,
    ) -> Result<(), StoreError>;

    /// Writes the in-memory state of many agents (last heartbeat, health,
    /// trust, in-flight) in one transaction, without events: heartbeats are
    /// flushed in batches, never one write each. The last snapshot of an
    /// agent in the batch wins; `last_heartbeat_at: None` keeps the stored
    /// value; ids of unknown agents are ignored.
    async fn save_agent_snapshots(&self, snapshots: &[AgentSnapshot]) -> Result<(), StoreError>;

    /// Every known agent with its capabilities, by name.
    async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError>;

    /// One agent with its capabilities.
    async fn get_agent(&self, agent_id: Uuid) -> Result<Option<AgentRecord>, StoreError>;

    // ------------------------------------------------------------ dispatch

    /// Unfinished tasks (`pending`, `assigned`, `running`) of unfinished jobs:
    /// what the dispatcher reloads at start-up.
    async fn open_tasks(&self) -> Result<Vec<Task>, StoreError>;

    /// Hands a `pending` task whose attempt is `expected_attempt` to an agent:
    /// status `assigned`, `attempt + 1`, `agent_id`, `lease_until = accept_by`,
    /// `task.assigned` event; a `queued` job becomes `running` (`job.started`).
    /// Anything else (cancelled meanwhile, another attempt, a job that has
    /// finished) is a Conflict; an unknown task is `NotFound("task")`.
    /// Returns the task and, when its job started, the job (`ready` is empty).
    fn assign_task(
        &self,
        task_id: Uuid,
        expected_attempt: i32,
        agent_id: Uuid,
        accept_by: DateTime<Utc>,
    ) -> Pending<TaskOutcome> {
        self.writer()
            .outcome(group_commit::WriteOp::Assign(group_commit::Assignment {
                task_id,
                expected_attempt,
                agent_id,
                accept_by,
            }))
    }

    /// The JSON input pushed to the agent for this task. Stage 0:
    /// `{"job_id", "prompt", "context", "document": null | {"file_name",
    /// "content_type", "size", "sha256", "content_base64"}}`; later stages:
    /// `{"job_id", "prompt", "context", "item": {"id", "stage", "data"}}`.
    /// `content_base64` is standard base64 (with padding) of the bytes.
    async fn task_input(&self, task: &Task) -> Result<serde_json::Value, StoreError> {
        let mut inputs = self.inputs_of(&[(task.job_id, task.item_id)]).await?;
        inputs.pop().unwrap_or(Err(StoreError::NotFound("job")))
    }

    /// [`Store::task_input`] of many tasks at once, each named by its job
    /// and the item it works on (`None` at stage 0), in a constant number of
    /// queries: the dispatcher reads the inputs of everything it hands out
    /// in one pass together. One result per task, in order.
    async fn inputs_of(
        &self,
        wanted: &[(Uuid, Option<Uuid>)],
    ) -> Result<Vec<Result<serde_json::Value, StoreError>>, StoreError>;

    /// The agent accepted: `assigned` → `running` with a lease, only for the
    /// current attempt held by `agent_id`; the input item becomes
    /// `validating`; `task.started` event.
    fn start_task(
        &self,
        task_id: Uuid,
        attempt: i32,
        agent_id: Uuid,
        lease_until: DateTime<Utc>,
    ) -> Pending<Task> {
        self.writer()
            .task(group_commit::WriteOp::Start(group_commit::Start {
                task_id,
                attempt,
                agent_id,
                lease_until,
            }))
    }

    /// `progress`: extends the lease of a running attempt; `task.progress`
    /// event with `progress` as payload.
    fn extend_lease(
        &self,
        task_id: Uuid,
        attempt: i32,
        agent_id: Uuid,
        lease_until: DateTime<Utc>,
        progress: serde_json::Value,
    ) -> Pending<()> {
        self.writer().done(group_commit::WriteOp::ExtendLease {
            task_id,
            attempt,
            agent_id,
            lease_until,
            progress,
        })
    }

    /// A running attempt succeeded. In one transaction: the task becomes
    /// `succeeded` with output and usage (`task.succeeded`); its input item
    /// becomes `integrated` or `rejected` with the reason, by verdict; each
    /// emitted item is stored (ids are the agent's, a repeated id is stored
    /// once) and either gets a `pending` next-stage task (status `pending`,
    /// `item.created` + `task.created`) or, after the last stage, becomes
    /// `integrated` at once; when the job has no unfinished task left it
    /// becomes `completed` (`job.completed`) and the jobs waiting on it are
    /// released (`queued` with their first task) or, when another dependency
    /// failed, failed. Returns the new ready tasks and the changed jobs.
    ///
    /// Emitted items get `stage = task.stage` and `source_task_id = task.id`;
    /// next-stage tasks take the job's priority and max_attempts. Events, in
    /// order: `task.succeeded`; `item.integrated`/`item.rejected` for the
    /// input item; per stored item `item.created` then `task.created` (or
    /// `item.integrated`); `job.completed`; the dependents' `job.queued` +
    /// `task.created` or `job.failed`. Only for the current attempt, running
    /// and held by `agent_id`; otherwise a Conflict that changes nothing.
    fn complete_task(&self, completion: TaskCompletion) -> Pending<TaskOutcome> {
        self.writer()
            .outcome(group_commit::WriteOp::Complete(completion))
    }

    /// An `assigned` or `running` attempt failed. With a retry policy and
    /// `failures + 1 < max_attempts`: back to `pending` with `failures + 1`,
    /// no agent, `next_run_at` per the policy (`task.retrying`; the task is in
    /// `ready`). Otherwise `failed` (`task.failed`, `failures + 1`, the agent
    /// kept for the record); its input item becomes `failed` with the error as
    /// `last_error` and `retry_count` = the task's failed attempts; a failed
    /// stage-0 task fails the job (`job.failed`, reason
    /// `"stage 1 (<capability>) failed: <error>"`, and jobs waiting on it
    /// fail too); otherwise the job
    /// completes when nothing is left. Conditional on the attempt (and the
    /// agent, when given).
    fn fail_task(&self, failure: TaskFailure) -> Pending<TaskOutcome> {
        self.writer().outcome(group_commit::WriteOp::Fail(failure))
    }

    /// The agent declined (or lost a task it never accepted through no fault
    /// of the task): `assigned` → `pending` without counting a failure,
    /// `next_run_at = run_at`, `task.requeued`. Conditional on attempt and agent.
    fn requeue_task(
        &self,
        task_id: Uuid,
        attempt: i32,
        agent_id: Uuid,
        run_at: DateTime<Utc>,
        reason: String,
    ) -> Pending<Task> {
        self.writer().task(group_commit::WriteOp::Requeue {
            task_id,
            attempt,
            agent_id,
            run_at,
            reason,
        })
    }
}
