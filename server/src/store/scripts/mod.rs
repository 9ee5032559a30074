//! The store's transaction scripts, written once for every driver.
//!
//! Each script is one transaction of the hub (create a job, assign, accept,
//! complete or fail a task, cancel, repair, roll up statistics, claim a
//! webhook delivery), generic over a [`Driver`]. The decisions they apply
//! (which states a transition starts from, what a failure does, when a job
//! completes) are in [`super::shared`]; the SQL is here, in the dialect both
//! databases read, with the few differences spelled by the driver.
//! [`SqlStore`] is the [`Store`] over a driver: Postgres is
//! `SqlStore<Pg>`, SQLite `SqlStore<Lite>`.

mod agents;
mod batch;
mod browse;
mod complete;
mod create;
mod events;
mod finish;
mod items;
mod jobs;
mod nodes;
mod reports;
mod tasks;
mod webhooks;

use std::collections::HashMap;

use async_trait::async_trait;
use uuid::Uuid;

use super::driver::{Driver, query};
use super::group_commit::{Created, GroupCommit};
use super::{Backend, SchemaStatus, Store, StoreError, shared};
use crate::domain::{
    AgentRecord, AgentRegistration, AgentSessionState, AgentSnapshot, Document, Event, Item,
    ItemCounts, ItemStatus, Job, JobFilter, JobPage, JobStatus, NewItem, NewJob, Task, TaskStatus,
};

/// The [`Store`] over a [`Driver`].
#[derive(Debug)]
pub struct SqlStore<D: Driver> {
    /// Where writes go (SQLite: the one writer connection).
    write: D::Pool,
    /// Where plain reads go (the same pool on Postgres).
    read: D::Pool,
    /// Bumped after writes; see [`Store::commits`].
    commits: tokio::sync::watch::Sender<u64>,
    /// The hot path's task transitions; see [`super::group_commit`].
    writer: GroupCommit,
    /// Other nodes share the database (see [`Store::set_peers`]).
    peers: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<D: Driver> SqlStore<D> {
    /// Opens the database (see [`Driver::connect`]) and starts its
    /// group-commit writer.
    pub async fn connect(url: &str, connections: u32) -> Result<SqlStore<D>, StoreError> {
        let (write, read) = D::connect(url, connections).await?;
        let commits = tokio::sync::watch::Sender::new(0);
        let peers = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = GroupCommit::start(std::sync::Arc::new(batch::Batch::<D> {
            write: write.clone(),
            commits: commits.clone(),
            peers: peers.clone(),
        }));
        Ok(SqlStore {
            write,
            read,
            commits,
            writer,
            peers,
        })
    }

    fn bump(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Runs a write and wakes the commit watchers, whatever its result.
    async fn written<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        self.bump();
        result
    }

    /// A connection of the read pool.
    async fn reader(&self) -> Result<D::Pooled, StoreError> {
        Ok(D::acquire(&self.read).await?)
    }
}

#[async_trait]
impl<D: Driver> Store for SqlStore<D> {
    fn writer(&self) -> &GroupCommit {
        &self.writer
    }

    fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    fn set_peers(&self, peers: bool) {
        self.peers
            .store(peers, std::sync::atomic::Ordering::Relaxed);
    }

    async fn follow_peers(&self, shutdown: tokio_util::sync::CancellationToken) {
        let commits = self.commits.clone();
        let wake = Box::new(move || commits.send_modify(|n| *n = n.wrapping_add(1)));
        D::follow_commits(&self.write, wake, shutdown).await;
    }

    fn backend(&self) -> Backend {
        D::BACKEND
    }

    async fn ping(&self) -> Result<(), StoreError> {
        query::<D>("SELECT 1")
            .execute(&mut *self.reader().await?)
            .await?;
        Ok(())
    }

    async fn schema_status(&self) -> Result<SchemaStatus, StoreError> {
        D::schema_status(&self.read).await
    }

    async fn close(&self) {
        D::close(&self.read).await;
        D::close(&self.write).await;
    }

    async fn submit_job(&self, job: NewJob) -> Result<Created, StoreError> {
        // A keyed create can race a `create_jobs` batch holding the same key
        // (on Postgres, where writers run concurrently): ours then waits on
        // the unique index until the batch commits, and fails. Answer as for
        // a replay.
        let keyed = job.idempotency_key.is_some().then(|| job.clone());
        match (self.writer.create_job(job).await, keyed) {
            (Err(err), Some(job)) if shared::is_unique_violation(&err) => {
                let outcome = jobs::find_by_key::<D>(&mut *self.reader().await?, &job)
                    .await?
                    .unwrap_or(Err(err))?;
                Ok(Created {
                    outcome,
                    ready: Vec::new(),
                })
            }
            (result, _) => result,
        }
    }

    async fn submit_jobs(&self, jobs: Vec<NewJob>) -> Result<Vec<Created>, StoreError> {
        self.written(jobs::create_jobs::<D>(&self.write, jobs).await)
            .await
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        jobs::fetch_job::<D>(&mut *self.reader().await?, id).await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<JobPage, StoreError> {
        jobs::list_jobs::<D>(&mut *self.reader().await?, filter).await
    }

    async fn item_counts(&self, job_id: Uuid) -> Result<ItemCounts, StoreError> {
        items::item_counts::<D>(&mut *self.reader().await?, job_id).await
    }

    async fn get_document(&self, job_id: Uuid) -> Result<Option<Document>, StoreError> {
        jobs::get_document::<D>(&mut *self.reader().await?, job_id).await
    }

    async fn transition_job(
        &self,
        id: Uuid,
        from: &[JobStatus],
        to: JobStatus,
        reason: Option<String>,
    ) -> Result<Job, StoreError> {
        self.written(jobs::transition_job::<D>(&self.write, id, from, to, reason).await)
            .await
    }

    async fn cancel_job(&self, id: Uuid, reason: String) -> Result<(Job, Vec<Uuid>), StoreError> {
        self.written(jobs::cancel_job::<D>(&self.write, id, reason).await)
            .await
    }

    async fn insert_items(&self, new: Vec<NewItem>) -> Result<Vec<Item>, StoreError> {
        self.written(items::insert_items::<D>(&self.write, new).await)
            .await
    }

    async fn list_items(
        &self,
        job_id: Uuid,
        status: Option<ItemStatus>,
        text: Option<&str>,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Item>, StoreError> {
        items::list_items::<D>(
            &mut *self.reader().await?,
            job_id,
            status,
            text,
            after,
            limit,
        )
        .await
    }

    async fn task_counts(&self) -> Result<HashMap<TaskStatus, i64>, StoreError> {
        let rows: Vec<(String, i64)> =
            query::<D>("SELECT status, COUNT(*) FROM tasks GROUP BY status")
                .fetch_all(&mut *self.reader().await?)
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
        items::pending_tasks::<D>(&mut *self.reader().await?, job_ids).await
    }

    async fn held_tasks(&self, agent_id: Uuid, task_ids: &[Uuid]) -> Result<Vec<Task>, StoreError> {
        items::held_tasks::<D>(&mut *self.reader().await?, agent_id, task_ids).await
    }

    async fn list_tasks(&self, job_id: Uuid) -> Result<Vec<Task>, StoreError> {
        items::list_tasks::<D>(&mut *self.reader().await?, job_id).await
    }

    async fn list_events(
        &self,
        job_id: Option<Uuid>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        items::list_events::<D>(&mut *self.reader().await?, job_id, after_seq, limit).await
    }

    async fn register_agent(
        &self,
        registration: AgentRegistration,
    ) -> Result<AgentRecord, StoreError> {
        self.writer.register_agent(registration).await
    }

    async fn set_agent_session_state(
        &self,
        agent_id: Uuid,
        state: AgentSessionState,
    ) -> Result<(), StoreError> {
        self.written(agents::set_agent_session_state::<D>(&self.write, agent_id, state).await)
            .await
    }

    async fn save_agent_snapshots(&self, snapshots: &[AgentSnapshot]) -> Result<(), StoreError> {
        agents::save_agent_snapshots::<D>(&self.write, snapshots).await
    }

    async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        agents::list_agents::<D>(&self.read).await
    }

    async fn get_agent(&self, agent_id: Uuid) -> Result<Option<AgentRecord>, StoreError> {
        agents::fetch_agent::<D>(&mut *self.reader().await?, agent_id).await
    }

    async fn open_tasks(&self) -> Result<Vec<Task>, StoreError> {
        tasks::open_tasks::<D>(&mut *self.reader().await?).await
    }

    async fn inputs_of(
        &self,
        wanted: &[(Uuid, Option<Uuid>)],
    ) -> Result<Vec<Result<serde_json::Value, StoreError>>, StoreError> {
        tasks::task_inputs::<D>(&mut *self.reader().await?, wanted).await
    }
}
