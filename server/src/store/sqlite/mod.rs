//! The SQLite store (embedded default).
//!
//! SQLite allows one writer at a time. If several pooled connections each
//! opened a transaction, read, and then tried to write, SQLite would have to
//! refuse one of them with SQLITE_BUSY (a lock upgrade cannot wait, or it
//! could deadlock). So all writes go through a dedicated pool of exactly one
//! connection, and every write transaction starts with `BEGIN IMMEDIATE`
//! (taking the write lock up front, waiting up to `busy_timeout` if another
//! process holds it). Reads use a separate pool: in WAL mode readers never
//! block the writer and always see the last committed state.
//!
//! Durability: `synchronous = FULL` makes every commit fsync the WAL, so
//! nothing is acknowledged before it is on disk.
//!
//! Timestamps are stored as fixed-width UTC text (see [`ts`]) so that text
//! order is time order, and values round-trip exactly.

mod agents;
mod batch;
mod events;
mod finish;
mod items;
mod jobs;
mod reports;
mod tasks;
mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use uuid::Uuid;

use super::group_commit::GroupCommit;
use super::{Backend, SchemaStatus, Store, StoreError, migrate};
use crate::domain::{
    AgentRecord, AgentRegistration, AgentSessionState, AgentSnapshot, CreateJobOutcome, Document,
    Event, Item, ItemCounts, ItemStatus, Job, JobFilter, JobPage, JobStatus, NewItem, NewJob, Task,
};

/// How long a connection waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Exactly one connection: every write and every transaction.
    write: SqlitePool,
    /// Plain reads (the write pool itself for an in-memory database).
    read: SqlitePool,
    /// Bumped after writes; see [`Store::commits`].
    commits: tokio::sync::watch::Sender<u64>,
    /// The hot path's task transitions; see [`super::group_commit`].
    writer: GroupCommit,
}

/// A timestamp as stored: `YYYY-MM-DDTHH:MM:SS.ffffffZ`, fixed width, so text
/// comparison is time comparison. sqlx decodes it back as RFC 3339.
pub(crate) fn ts(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

impl SqliteStore {
    /// Opens (creating it if missing) the database at `url_or_path`
    /// (`sqlite://path`, `sqlite:path`, a plain path, or `sqlite::memory:`)
    /// and applies missing migrations. `read_connections` (at least 1) sizes
    /// the read pool. Fails with [`StoreError::SchemaTooNew`] on a database
    /// migrated by a newer build.
    pub async fn connect(
        url_or_path: &str,
        read_connections: u32,
    ) -> Result<SqliteStore, StoreError> {
        let in_memory = url_or_path.contains(":memory:") || url_or_path.contains("mode=memory");
        let base = if url_or_path.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url_or_path)?
        } else {
            SqliteConnectOptions::new().filename(url_or_path)
        };
        let base = base
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Full);

        if !in_memory {
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
        }

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
            return Ok(SqliteStore::new(pool.clone(), pool));
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
            .max_connections(read_connections.max(1))
            .connect_with(base.pragma("query_only", "ON"))
            .await?;
        Ok(SqliteStore::new(write, read))
    }

    fn new(write: SqlitePool, read: SqlitePool) -> SqliteStore {
        let commits = tokio::sync::watch::Sender::new(0);
        let writer = GroupCommit::start(std::sync::Arc::new(batch::Batch {
            write: write.clone(),
            commits: commits.clone(),
        }));
        SqliteStore {
            write,
            read,
            commits,
            writer,
        }
    }

    fn bump(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Starts a write transaction on the single writer, taking the lock now.
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn writer(&self) -> &GroupCommit {
        &self.writer
    }

    fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn schema_status(&self) -> Result<SchemaStatus, StoreError> {
        migrate::status_sqlite(&self.read).await
    }

    async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    async fn create_job(&self, job: NewJob) -> Result<CreateJobOutcome, StoreError> {
        self.writer.create_job(job).await
    }

    async fn create_jobs(&self, jobs: Vec<NewJob>) -> Result<Vec<CreateJobOutcome>, StoreError> {
        let result = jobs::create_jobs(self, jobs).await;
        self.bump();
        result
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        let mut conn = self.read.acquire().await?;
        jobs::fetch_job(&mut conn, id).await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<JobPage, StoreError> {
        jobs::list_jobs(&self.read, filter).await
    }

    async fn item_counts(&self, job_id: Uuid) -> Result<ItemCounts, StoreError> {
        items::item_counts(&self.read, job_id).await
    }

    async fn get_document(&self, job_id: Uuid) -> Result<Option<Document>, StoreError> {
        jobs::get_document(&self.read, job_id).await
    }

    async fn transition_job(
        &self,
        id: Uuid,
        from: &[JobStatus],
        to: JobStatus,
        reason: Option<String>,
    ) -> Result<Job, StoreError> {
        let result = jobs::transition_job(self, id, from, to, reason).await;
        self.bump();
        result
    }

    async fn cancel_job(&self, id: Uuid, reason: String) -> Result<(Job, Vec<Uuid>), StoreError> {
        let result = jobs::cancel_job(self, id, reason).await;
        self.bump();
        result
    }

    async fn insert_items(&self, new: Vec<NewItem>) -> Result<Vec<Item>, StoreError> {
        let result = items::insert_items(self, new).await;
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
        items::list_items(&self.read, job_id, status, after, limit).await
    }

    async fn task_counts(
        &self,
    ) -> Result<std::collections::HashMap<crate::domain::TaskStatus, i64>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM tasks GROUP BY status")
                .fetch_all(&self.read)
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
        items::pending_tasks(&self.read, job_ids).await
    }

    async fn list_tasks(&self, job_id: Uuid) -> Result<Vec<Task>, StoreError> {
        items::list_tasks(&self.read, job_id).await
    }

    async fn list_events(
        &self,
        job_id: Option<Uuid>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        items::list_events(&self.read, job_id, after_seq, limit).await
    }

    async fn register_agent(
        &self,
        registration: AgentRegistration,
    ) -> Result<AgentRecord, StoreError> {
        let result = agents::register_agent(self, registration).await;
        self.bump();
        result
    }

    async fn set_agent_session_state(
        &self,
        agent_id: Uuid,
        state: AgentSessionState,
    ) -> Result<(), StoreError> {
        let result = agents::set_agent_session_state(self, agent_id, state).await;
        self.bump();
        result
    }

    async fn save_agent_snapshots(&self, snapshots: &[AgentSnapshot]) -> Result<(), StoreError> {
        agents::save_agent_snapshots(self, snapshots).await
    }

    async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        agents::list_agents(&self.read).await
    }

    async fn get_agent(&self, agent_id: Uuid) -> Result<Option<AgentRecord>, StoreError> {
        let mut conn = self.read.acquire().await?;
        agents::fetch_agent(&mut conn, agent_id).await
    }

    async fn open_tasks(&self) -> Result<Vec<Task>, StoreError> {
        tasks::open_tasks(&self.read).await
    }

    async fn task_input(&self, task: &Task) -> Result<serde_json::Value, StoreError> {
        tasks::task_input(&self.read, task).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_and_round_trip() {
        let at = crate::store::shared::now();
        let text = ts(at);
        assert_eq!(text.len(), "2025-01-01T00:00:00.000000Z".len());
        assert_eq!(
            DateTime::parse_from_rfc3339(&text).map(|d| d.to_utc()).ok(),
            Some(at)
        );
    }
}
