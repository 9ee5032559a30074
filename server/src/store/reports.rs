//! Monitoring and reporting: aggregate reads for progress and reports, the
//! monitor's views of stuck work and its repairs, re-runs, and the daily
//! statistics roll-up.
//!
//! A separate trait so each concern's SQL lives in its own files; [`super::Store`]
//! requires it, so callers see one store.
//!
//! Aggregates are computed by the database (`GROUP BY` over one job's rows,
//! found through the `(job_id, ...)` indexes), so a report on a job with
//! 100,000 items moves a few hundred rows to the hub, not 100,000. Reads use
//! the read pool and never take locks the dispatcher waits on.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::StoreError;
use crate::domain::{Job, Task, TaskStatus};

/// One `(stage, capability, status)` group of a job's tasks.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TaskGroup {
    pub stage: i32,
    pub capability: String,
    pub status: String,
    pub count: i64,
    /// How many of them changed since the `since` given (finished ones: finished since).
    pub recent: i64,
    pub first_created_at: DateTime<Utc>,
    pub last_updated_at: DateTime<Utc>,
}

impl TaskGroup {
    /// The status, parsed (rows hold only `as_str()` forms; see the migrations' CHECKs).
    pub fn task_status(&self) -> Option<TaskStatus> {
        self.status.parse().ok()
    }
}

/// One status group of a job's items.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ItemGroup {
    pub status: String,
    pub count: i64,
    /// How many of them changed since the `since` given.
    pub recent: i64,
}

/// Items of a job counted by a key (a tag, a priority, a citation) and status.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyCount {
    /// `None` when items have no value for the key (no priority).
    pub key: Option<String>,
    pub status: String,
    pub count: i64,
}

/// LLM usage of a job's finished tasks, per agent and capability.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UsageGroup {
    pub agent_id: Option<Uuid>,
    /// The agent's name, when the agent is still known.
    pub agent_name: Option<String>,
    pub capability: String,
    /// Tasks that reported usage (succeeded tasks).
    pub tasks: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub requests: i64,
    /// The capability's pricing as the agent last declared it (JSON text).
    pub pricing: Option<String>,
}

/// An item left `validating` while no task works on it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OrphanedItem {
    pub item_id: Uuid,
    pub job_id: Uuid,
    pub stage: i32,
    pub updated_at: DateTime<Utc>,
}

/// An unfinished job with when it last had an event.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ActiveJob {
    pub job_id: Uuid,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub last_event_at: Option<DateTime<Utc>>,
}

/// What `retry_failed` changed.
#[derive(Debug, Clone)]
pub struct RetryOutcome {
    pub job: Job,
    /// The re-queued tasks (`pending`, due now): the dispatcher queues them.
    pub ready: Vec<Task>,
    /// How many failed items went back to `pending`.
    pub items: u64,
}

/// One per-day counter of the daily statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyCounter {
    pub day: NaiveDate,
    pub metric: String,
    pub value: i64,
}

/// What `/metrics` reads from the store at each scrape: cheap aggregates
/// over partial indexes only (unfinished jobs, pending deliveries).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreGauges {
    /// Unfinished jobs (`waiting`, `queued`, `running`) by status.
    pub active_jobs: Vec<(String, i64)>,
    /// Per webhook subscription: pending deliveries and the age in seconds
    /// of the oldest.
    pub webhook_backlog: Vec<(Uuid, i64, f64)>,
}

#[async_trait]
pub trait ReportStore: Send + Sync {
    /// See [`StoreGauges`].
    async fn gauges(&self) -> Result<StoreGauges, StoreError>;

    // ------------------------------------------------------------ aggregates

    /// A job's tasks grouped by stage, capability and status; `recent`
    /// counts those updated at or after `since`.
    async fn task_groups(
        &self,
        job_id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<Vec<TaskGroup>, StoreError>;

    /// A job's items grouped by status; `recent` counts those updated at or after `since`.
    async fn item_groups(
        &self,
        job_id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<Vec<ItemGroup>, StoreError>;

    /// Items per tag (`data.tags`, an array of strings) and status. Items
    /// without tags are not counted; a tag repeated within an item counts once.
    async fn tag_counts(&self, job_id: Uuid) -> Result<Vec<KeyCount>, StoreError>;

    /// Items per priority (`data.priority` when it is a string, else `None`) and status.
    async fn priority_counts(&self, job_id: Uuid) -> Result<Vec<KeyCount>, StoreError>;

    /// Items per citation (`data.citations`, an array of strings) and status.
    async fn citation_counts(&self, job_id: Uuid) -> Result<Vec<KeyCount>, StoreError>;

    /// Usage sums of a job's tasks that stored usage, per agent and capability,
    /// with the capability's pricing as declared by that agent.
    async fn usage_groups(&self, job_id: Uuid) -> Result<Vec<UsageGroup>, StoreError>;

    // ------------------------------------------------------------ the monitor

    /// `assigned`/`running` tasks of unfinished jobs whose lease (or, without
    /// one, last update) ended before `cutoff`, oldest first, at most `limit`.
    async fn expired_tasks(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Task>, StoreError>;

    /// `validating` items of `queued`/`running` jobs, last updated before
    /// `cutoff`, with no `pending`, `assigned` or `running` task working on them.
    async fn orphaned_items(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OrphanedItem>, StoreError>;

    /// Unfinished (`waiting`, `queued`, `running`) jobs, oldest first, with
    /// their last event time and task counts, at most `limit`.
    async fn active_jobs(&self, limit: u32) -> Result<Vec<ActiveJob>, StoreError>;

    /// Gives an orphaned item a new `pending` task of its next stage (the item
    /// becomes `pending`; `task.created`), if it is still `validating` with no
    /// live task in a `queued`/`running` job. Returns the new task, or `None`
    /// when there was nothing to do.
    async fn requeue_item(&self, item_id: Uuid) -> Result<Option<Task>, StoreError>;

    /// Fails an unfinished job for good (`job.failed` with `reason`),
    /// cancels its unfinished tasks (`task.cancelled` each) and fails the
    /// jobs waiting on it, in one transaction. Returns the job and the ids of
    /// the cancelled tasks. A finished job is a Conflict.
    async fn expire_job(
        &self,
        job_id: Uuid,
        reason: String,
    ) -> Result<(Job, Vec<Uuid>), StoreError>;

    /// Re-queues a job's failed work: every `failed` task whose item failed
    /// (or that has no item) goes back to `pending` with no failures, no error
    /// and no agent, due now (`task.retrying` with `reason`); its item
    /// becomes `pending` (last error kept). A `completed` or `failed` job is
    /// reopened (`queued`, `finished_at` cleared, `job.queued` with `reason`).
    /// A `cancelled` job, or one with nothing failed, is a Conflict.
    async fn retry_failed(&self, job_id: Uuid, reason: String) -> Result<RetryOutcome, StoreError>;

    /// Creates `new_id`, a new version of `original`: same pipeline, prompt,
    /// context, priority, labels, document and max attempts, `rerun_of =
    /// original`, created by `created_by`, no dependencies and no
    /// idempotency key, `queued` with its stage-0 task (`job.created`,
    /// `task.created`). One transaction.
    async fn rerun_job(
        &self,
        original: Uuid,
        new_id: Uuid,
        created_by: String,
    ) -> Result<Job, StoreError>;

    /// The job `job_id` re-runs, if it is a re-run.
    async fn rerun_of(&self, job_id: Uuid) -> Result<Option<Uuid>, StoreError>;

    // ------------------------------------------------------------ daily statistics

    /// Rolls up to `max_events` events after the last rolled-up one into the
    /// per-day counters, in one transaction. Returns how many events it read
    /// (0 when caught up).
    async fn roll_up_stats(&self, max_events: u32) -> Result<u64, StoreError>;

    /// Per-day counters from `since` (inclusive, UTC days).
    async fn daily_counters(&self, since: NaiveDate) -> Result<Vec<DailyCounter>, StoreError>;
}

/// The per-day counters of the daily statistics, each counted from one event
/// type, plus the token counters summed from the usage of succeeded tasks.
/// The metric names are stored in `daily_stats.metric` and returned by the API.
pub mod metrics {
    use crate::domain::EventType;

    pub const JOBS_CREATED: &str = "jobs_created";
    pub const JOBS_COMPLETED: &str = "jobs_completed";
    pub const JOBS_FAILED: &str = "jobs_failed";
    pub const JOBS_CANCELLED: &str = "jobs_cancelled";
    pub const ITEMS_INTEGRATED: &str = "items_integrated";
    pub const ITEMS_REJECTED: &str = "items_rejected";
    pub const ITEMS_FAILED: &str = "items_failed";
    pub const TOKENS_IN: &str = "tokens_in";
    pub const TOKENS_OUT: &str = "tokens_out";
    pub const REQUESTS: &str = "requests";

    /// Event type → the counter it increments by one.
    pub const COUNTED: [(EventType, &str); 7] = [
        (EventType::JobCreated, JOBS_CREATED),
        (EventType::JobCompleted, JOBS_COMPLETED),
        (EventType::JobFailed, JOBS_FAILED),
        (EventType::JobCancelled, JOBS_CANCELLED),
        (EventType::ItemIntegrated, ITEMS_INTEGRATED),
        (EventType::ItemRejected, ITEMS_REJECTED),
        (EventType::ItemFailed, ITEMS_FAILED),
    ];

    /// The event whose task's stored usage is summed into the token counters.
    pub const USAGE_EVENT: EventType = EventType::TaskSucceeded;

    /// Every metric, in the order the API lists them.
    pub const ALL: [&str; 10] = [
        JOBS_CREATED,
        JOBS_COMPLETED,
        JOBS_FAILED,
        JOBS_CANCELLED,
        ITEMS_INTEGRATED,
        ITEMS_REJECTED,
        ITEMS_FAILED,
        TOKENS_IN,
        TOKENS_OUT,
        REQUESTS,
    ];

    /// The counted event types and their metrics as two parallel lists (for binding).
    /// [`COUNTED`] as one JSON object, event type to metric name.
    pub fn counted_map() -> serde_json::Value {
        COUNTED
            .iter()
            .map(|(event, metric)| (event.as_str().to_owned(), (*metric).into()))
            .collect::<serde_json::Map<String, serde_json::Value>>()
            .into()
    }
}

/// Conflict messages shared by both backends' retry-failed.
pub(crate) mod messages {
    use uuid::Uuid;

    use crate::domain::JobStatus;

    pub fn not_retryable(job_id: Uuid, status: JobStatus) -> String {
        match status {
            JobStatus::Waiting => format!(
                "job {job_id} is waiting on its dependencies and has not run; there is nothing to retry"
            ),
            _ => format!(
                "job {job_id} is {status}; its failed items cannot be retried, re-run it instead (POST /v1/jobs/{job_id}/rerun)"
            ),
        }
    }

    pub fn nothing_failed(job_id: Uuid) -> String {
        format!("job {job_id} has no failed items or tasks to retry")
    }
}
