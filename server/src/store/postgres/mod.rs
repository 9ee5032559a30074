//! The Postgres store (production).
//!
//! One pool; every state change runs in one transaction with its events.
//! Concurrency control is optimistic and row-level: updates are conditional on
//! the expected status (`WHERE status = ANY($n)`), so of two racing writers
//! exactly one changes the row and the other sees zero rows and reports a
//! conflict. Under READ COMMITTED the loser blocks on the row lock, then
//! re-evaluates the condition on the committed row, which is what makes this
//! sound without SERIALIZABLE.
//!
//! Lock order, to stay deadlock free: a transaction locks job rows before
//! task rows, task rows before item rows, a job before the jobs waiting on
//! it, and appends its events last (see [`items::append_events`]). A task
//! that finishes locks its job first (see `finish.rs`), which serialises the
//! completions of one job's tasks.

mod agents;
mod batch;
mod events;
mod finish;
mod items;
mod jobs;
mod reports;
mod tasks;
mod webhooks;

use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use super::group_commit::GroupCommit;
use super::shared;
use super::{Backend, SchemaStatus, Store, StoreError, migrate};
use crate::domain::{
    AgentRecord, AgentRegistration, AgentSessionState, AgentSnapshot, CreateJobOutcome, Document,
    Event, Item, ItemCounts, ItemStatus, Job, JobFilter, JobPage, JobStatus, NewItem, NewJob, Task,
};

/// The Postgres implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Bumped after writes; see [`Store::commits`].
    commits: tokio::sync::watch::Sender<u64>,
    /// The hot path's task transitions; see [`super::group_commit`].
    writer: GroupCommit,
}

impl PgStore {
    /// Connects with a pool of `max_connections` (at least 1) and applies
    /// missing migrations. Fails with [`StoreError::SchemaTooNew`] on a
    /// database migrated by a newer build.
    pub async fn connect(url: &str, max_connections: u32) -> Result<PgStore, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        if let Err(err) = migrate::run_postgres(&pool).await {
            // The migrator may hold its advisory lock on a pooled connection
            // when it fails; closing the pool releases it.
            pool.close().await;
            return Err(err);
        }
        let commits = tokio::sync::watch::Sender::new(0);
        let writer = GroupCommit::start(std::sync::Arc::new(batch::Batch {
            pool: pool.clone(),
            commits: commits.clone(),
        }));
        Ok(PgStore {
            pool,
            commits,
            writer,
        })
    }

    fn bump(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The underlying pool, for code that needs Postgres-only features
    /// (LISTEN/NOTIFY, claims with SKIP LOCKED).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PgStore {
    fn writer(&self) -> &GroupCommit {
        &self.writer
    }

    fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn schema_status(&self) -> Result<SchemaStatus, StoreError> {
        migrate::status_postgres(&self.pool).await
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn create_job(&self, job: NewJob) -> Result<CreateJobOutcome, StoreError> {
        // A keyed create can race a `create_jobs` batch holding the same key:
        // ours then waits on the unique index until the batch commits, and
        // fails. Answer as for a replay.
        let keyed = job.idempotency_key.is_some().then(|| job.clone());
        match (self.writer.create_job(job).await, keyed) {
            (Err(err), Some(job)) if shared::is_unique_violation(&err) => {
                let mut conn = self.pool.acquire().await?;
                jobs::find_by_key(&mut conn, &job)
                    .await?
                    .unwrap_or(Err(err))
            }
            (result, _) => result,
        }
    }

    async fn create_jobs(&self, jobs: Vec<NewJob>) -> Result<Vec<CreateJobOutcome>, StoreError> {
        let result = jobs::create_jobs(&self.pool, jobs).await;
        self.bump();
        result
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        jobs::fetch_job(&mut conn, id).await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<JobPage, StoreError> {
        jobs::list_jobs(&self.pool, filter).await
    }

    async fn item_counts(&self, job_id: Uuid) -> Result<ItemCounts, StoreError> {
        items::item_counts(&self.pool, job_id).await
    }

    async fn get_document(&self, job_id: Uuid) -> Result<Option<Document>, StoreError> {
        jobs::get_document(&self.pool, job_id).await
    }

    async fn transition_job(
        &self,
        id: Uuid,
        from: &[JobStatus],
        to: JobStatus,
        reason: Option<String>,
    ) -> Result<Job, StoreError> {
        let result = jobs::transition_job(&self.pool, id, from, to, reason).await;
        self.bump();
        result
    }

    async fn cancel_job(&self, id: Uuid, reason: String) -> Result<(Job, Vec<Uuid>), StoreError> {
        let result = jobs::cancel_job(&self.pool, id, reason).await;
        self.bump();
        result
    }

    async fn insert_items(&self, new: Vec<NewItem>) -> Result<Vec<Item>, StoreError> {
        let result = items::insert_items(&self.pool, new).await;
        self.bump();
        result
    }

    async fn list_items(
        &self,
        job_id: Uuid,
        status: Option<ItemStatus>,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Item>, StoreError> {
        items::list_items(&self.pool, job_id, status, after, limit).await
    }

    async fn task_counts(
        &self,
    ) -> Result<std::collections::HashMap<crate::domain::TaskStatus, i64>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM tasks GROUP BY status")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(status, n)| {
                status
                    .parse()
                    .map(|s| (s, n))
                    .map_err(|e: crate::domain::status::UnknownStatus| {
                        StoreError::Corrupt(e.to_string())
                    })
            })
            .collect()
    }

    async fn pending_tasks(&self, job_ids: &[Uuid]) -> Result<Vec<Task>, StoreError> {
        items::pending_tasks(&self.pool, job_ids).await
    }

    async fn list_tasks(&self, job_id: Uuid) -> Result<Vec<Task>, StoreError> {
        items::list_tasks(&self.pool, job_id).await
    }

    async fn list_events(
        &self,
        job_id: Option<Uuid>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        items::list_events(&self.pool, job_id, after_seq, limit).await
    }

    async fn register_agent(
        &self,
        registration: AgentRegistration,
    ) -> Result<AgentRecord, StoreError> {
        let result = agents::register_agent(&self.pool, registration).await;
        self.bump();
        result
    }

    async fn set_agent_session_state(
        &self,
        agent_id: Uuid,
        state: AgentSessionState,
    ) -> Result<(), StoreError> {
        let result = agents::set_agent_session_state(&self.pool, agent_id, state).await;
        self.bump();
        result
    }

    async fn save_agent_snapshots(&self, snapshots: &[AgentSnapshot]) -> Result<(), StoreError> {
        agents::save_agent_snapshots(&self.pool, snapshots).await
    }

    async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        agents::list_agents(&self.pool).await
    }

    async fn get_agent(&self, agent_id: Uuid) -> Result<Option<AgentRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        agents::fetch_agent(&mut conn, agent_id).await
    }

    async fn open_tasks(&self) -> Result<Vec<Task>, StoreError> {
        tasks::open_tasks(&self.pool).await
    }

    async fn task_input(&self, task: &Task) -> Result<serde_json::Value, StoreError> {
        tasks::task_input(&self.pool, task).await
    }
}
