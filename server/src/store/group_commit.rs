//! Group commit: the hot path's writes (job creation, task transitions and
//! agent registrations), many per transaction.
//!
//! Every task costs the store an assignment, an accept and a completion. As
//! one transaction each, the hub would pay a commit (an fsync) per
//! transition, and commits serialise: SQLite has one writer, and Postgres
//! appends events under one advisory lock held until commit. Throughput would
//! be capped at roughly one transition per fsync, whatever the CPU.
//!
//! So these transitions ([`WriteOp`]) go through one writer task per store.
//! Callers put an op on its channel and get a [`Pending`] future for the
//! result. The writer takes everything that is queued (up to [`MAX_BATCH`]),
//! applies the ops in order inside one transaction, appends all their events
//! with one multi-row insert, commits, and only then answers each caller:
//! nothing is acknowledged before it is durable. There is no timer: while
//! one batch commits, the next one collects, so an idle hub commits a lone op
//! at once and a busy one amortises each commit over hundreds of ops.
//!
//! Ops are applied in the order they were queued. A session queues its
//! agent's `accept` before its `complete`, so it can pipeline them without
//! waiting for each commit and still have them applied in order.
//!
//! Failure isolation without savepoints: every op checks its conditions
//! (`Conflict`, `NotFound`, an idempotency mismatch, unknown dependencies)
//! before it writes anything, so an op refused that
//! way leaves the transaction as it was and the batch goes on. Any other
//! error (a database error, corrupt data) aborts the batch: it is rolled
//! back and each of its ops is applied again in a transaction of its own, so
//! only the op at fault fails.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::StoreError;
use super::shared::Changes;
use crate::domain::{
    AgentRecord, AgentRegistration, CreateJobOutcome, Job, NewEvent, NewJob, Task, TaskCompletion,
    TaskFailure, TaskOutcome,
};

/// Most ops in one transaction.
pub const MAX_BATCH: usize = 512;

/// Ops waiting for the writer; beyond this a new op is refused (503 on the
/// REST API, an `internal` error frame for an agent, which sends it again).
const QUEUE_CAPACITY: usize = 16 * 1024;

/// A write that goes through the group-commit writer: a job's creation or a
/// task transition. Each is documented on the [`super::Store`] method that
/// queues it.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// An agent's `hello` (see [`super::Store::register_agent`]): a
    /// reconnect storm registers thousands at once.
    RegisterAgent(Box<AgentRegistration>),
    CreateJob(Box<NewJob>),
    Assign(Assignment),
    Start(Start),
    ExtendLease {
        task_id: Uuid,
        attempt: i32,
        agent_id: Uuid,
        lease_until: DateTime<Utc>,
        progress: serde_json::Value,
    },
    Complete(TaskCompletion),
    Fail(TaskFailure),
    Requeue {
        task_id: Uuid,
        attempt: i32,
        agent_id: Uuid,
        run_at: DateTime<Utc>,
        reason: String,
    },
}

/// See [`super::Store::assign_task`].
#[derive(Debug, Clone)]
pub struct Assignment {
    pub task_id: Uuid,
    pub expected_attempt: i32,
    pub agent_id: Uuid,
    pub accept_by: DateTime<Utc>,
}

/// See [`super::Store::start_task`].
#[derive(Debug, Clone)]
pub struct Start {
    pub task_id: Uuid,
    pub attempt: i32,
    pub agent_id: Uuid,
    pub lease_until: DateTime<Utc>,
}

/// What an applied op returns.
#[derive(Debug)]
pub enum Applied {
    Agent(Box<AgentRecord>),
    Created(Box<Created>),
    Outcome(TaskOutcome),
    Task(Task),
    Done,
}

/// What one op adds to its batch besides its result: the events it appends
/// (stamped with the op's time and request id), and the jobs whose status
/// it changed (read once per batch, after the last op, for the outcomes).
pub struct Applying {
    pub at: DateTime<Utc>,
    pub request_id: Option<String>,
    pub events: Vec<NewEvent>,
    pub jobs: Vec<Uuid>,
}

/// A job creation's result: the outcome, and the task it made ready (none
/// for a replay or a job waiting on its dependencies), so the dispatcher
/// can take it without reading it back.
#[derive(Debug)]
pub struct Created {
    pub outcome: CreateJobOutcome,
    pub ready: Vec<Task>,
}

impl Applying {
    pub fn new(at: DateTime<Utc>, request_id: Option<String>) -> Applying {
        Applying {
            at,
            request_id,
            events: Vec::new(),
            jobs: Vec::new(),
        }
    }

    /// Takes an op's changes: its events and changed jobs go to the batch,
    /// the rest is its outcome (`jobs` filled in after the batch's last op).
    pub(crate) fn outcome(&mut self, task: Option<Task>, changes: Changes) -> TaskOutcome {
        self.events.extend(changes.events);
        self.jobs.extend(changes.jobs);
        TaskOutcome {
            task,
            ready: changes.ready,
            jobs: Vec::new(),
        }
    }
}

/// One event row as appended: the event, its time and its request id.
pub type EventRow<'a> = (&'a NewEvent, DateTime<Utc>, Option<&'a str>);

/// The rows of events appended together at `at` for one request.
pub fn event_rows<'a>(
    events: &'a [NewEvent],
    at: DateTime<Utc>,
    request_id: Option<&'a str>,
) -> Vec<EventRow<'a>> {
    events.iter().map(|e| (e, at, request_id)).collect()
}

/// The rows of a batch's events, each op's with its own time and request id.
pub fn batch_event_rows(groups: &[Applying]) -> Vec<EventRow<'_>> {
    groups
        .iter()
        .flat_map(|g| g.events.iter().map(|e| (e, g.at, g.request_id.as_deref())))
        .collect()
}

/// Gives each op's outcome the jobs it changed, as the batch committed them.
pub fn fill_jobs(results: &mut [Result<Applied, StoreError>], applying: &[Applying], jobs: &[Job]) {
    for (result, cx) in results.iter_mut().zip(applying) {
        if let Ok(Applied::Outcome(outcome)) = result {
            outcome.jobs = cx
                .jobs
                .iter()
                .filter_map(|id| jobs.iter().find(|j| j.id == *id).cloned())
                .collect();
        }
    }
}

/// A backend's side of group commit.
#[async_trait]
pub trait ApplyBatch: Send + Sync + 'static {
    /// Applies `ops` in order in one transaction and commits it. `Ok` holds
    /// one result per op once the transaction is durable (an op refused as
    /// [`is_refusal`] says changed nothing); `Err` means the transaction
    /// as a whole failed and nothing of it is stored.
    async fn apply_batch(
        &self,
        ops: &[(WriteOp, Option<String>)],
    ) -> Result<Vec<Result<Applied, StoreError>>, StoreError>;

    /// Called after every commit (wakes the event pump and webhook tailer).
    fn committed(&self);
}

/// Whether an op's error left the transaction untouched (see the module docs).
pub fn is_refusal(error: &StoreError) -> bool {
    matches!(
        error,
        StoreError::Conflict { .. }
            | StoreError::NotFound(_)
            | StoreError::IdempotencyMismatch { .. }
            | StoreError::UnknownDependencies(_)
    )
}

/// Where a caller waits for its op's result.
enum Reply {
    Agent(oneshot::Sender<Result<AgentRecord, StoreError>>),
    Created(oneshot::Sender<Result<Created, StoreError>>),
    Outcome(oneshot::Sender<Result<TaskOutcome, StoreError>>),
    Task(oneshot::Sender<Result<Task, StoreError>>),
    Done(oneshot::Sender<Result<(), StoreError>>),
}

impl Reply {
    fn send(self, result: Result<Applied, StoreError>) {
        fn mismatch() -> StoreError {
            StoreError::Corrupt("the store answered an op with the wrong kind of result".into())
        }
        // A caller that stopped waiting (its session closed) is fine to miss.
        match self {
            Reply::Agent(tx) => {
                let _ = tx.send(result.and_then(|a| match a {
                    Applied::Agent(record) => Ok(*record),
                    _ => Err(mismatch()),
                }));
            }
            Reply::Created(tx) => {
                let _ = tx.send(result.and_then(|a| match a {
                    Applied::Created(o) => Ok(*o),
                    _ => Err(mismatch()),
                }));
            }
            Reply::Outcome(tx) => {
                let _ = tx.send(result.and_then(|a| match a {
                    Applied::Outcome(o) => Ok(o),
                    _ => Err(mismatch()),
                }));
            }
            Reply::Task(tx) => {
                let _ = tx.send(result.and_then(|a| match a {
                    Applied::Task(t) => Ok(t),
                    _ => Err(mismatch()),
                }));
            }
            Reply::Done(tx) => {
                let _ = tx.send(result.and_then(|a| match a {
                    Applied::Done => Ok(()),
                    _ => Err(mismatch()),
                }));
            }
        }
    }
}

/// One queued op.
struct Queued {
    op: WriteOp,
    request_id: Option<String>,
    reply: Reply,
}

/// The result of a queued op: resolves once its batch has committed.
#[must_use = "a queued op is applied either way; await it to learn its result"]
pub struct Pending<T> {
    rx: Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>,
}

impl<T> Future for Pending<T> {
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.rx {
            Ok(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or_else(|_| Err(closed()))),
            Err(e) => Poll::Ready(Err(std::mem::replace(e, closed()))),
        }
    }
}

fn closed() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}

/// The handle the store keeps: queues ops for its writer task.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<Queued>,
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queued").field("op", &self.op).finish()
    }
}

impl GroupCommit {
    /// Starts the writer task for `backend`. It runs until every handle is
    /// dropped, finishing what was queued.
    pub fn start(backend: Arc<dyn ApplyBatch>) -> GroupCommit {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(writer(backend, rx));
        GroupCommit { tx }
    }

    fn queue<T>(
        &self,
        op: WriteOp,
        reply: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Reply,
    ) -> Pending<T> {
        let (tx, rx) = oneshot::channel();
        let queued = Queued {
            op,
            request_id: crate::events::request_id::current(),
            reply: reply(tx),
        };
        // `try_send` keeps the caller's order without an await; a full queue
        // (16k ops behind a stalled database) is refused rather than growing.
        let rx = match self.tx.try_send(queued) {
            Ok(()) => Ok(rx),
            Err(mpsc::error::TrySendError::Full(_)) => {
                Err(StoreError::Database(sqlx::Error::PoolTimedOut))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(closed()),
        };
        Pending { rx }
    }

    /// Queues an agent's registration.
    pub fn register_agent(&self, registration: AgentRegistration) -> Pending<AgentRecord> {
        self.queue(WriteOp::RegisterAgent(Box::new(registration)), Reply::Agent)
    }

    /// Queues a job's creation.
    pub fn create_job(&self, job: NewJob) -> Pending<Created> {
        self.queue(WriteOp::CreateJob(Box::new(job)), Reply::Created)
    }

    /// Queues an op whose result is a [`TaskOutcome`].
    pub fn outcome(&self, op: WriteOp) -> Pending<TaskOutcome> {
        self.queue(op, Reply::Outcome)
    }

    /// Queues an op whose result is a [`Task`].
    pub fn task(&self, op: WriteOp) -> Pending<Task> {
        self.queue(op, Reply::Task)
    }

    /// Queues an op without a result.
    pub fn done(&self, op: WriteOp) -> Pending<()> {
        self.queue(op, Reply::Done)
    }
}

async fn writer(backend: Arc<dyn ApplyBatch>, mut rx: mpsc::Receiver<Queued>) {
    let mut queued: Vec<Queued> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut queued, MAX_BATCH).await > 0 {
        let (ops, replies): (Vec<_>, Vec<_>) = queued
            .drain(..)
            .map(|q| ((q.op, q.request_id), q.reply))
            .unzip();
        metrics::histogram!("switchyard_store_batch_ops").record(ops.len() as f64);
        let started = std::time::Instant::now();
        match backend.apply_batch(&ops).await {
            Ok(results) => {
                metrics::histogram!("switchyard_store_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                backend.committed();
                for (reply, result) in replies.into_iter().zip(results) {
                    reply.send(result);
                }
            }
            Err(error) if ops.len() == 1 => {
                if let Some(reply) = replies.into_iter().next() {
                    reply.send(Err(error));
                }
            }
            Err(error) => {
                // Find the op at fault: each one again, on its own.
                tracing::warn!(ops = ops.len(), %error, "a group commit failed; applying its ops one by one");
                metrics::counter!("switchyard_store_batch_retries_total").increment(1);
                for (op, reply) in ops.into_iter().zip(replies) {
                    let result = match backend.apply_batch(std::slice::from_ref(&op)).await {
                        Ok(mut results) => {
                            backend.committed();
                            results.pop().unwrap_or_else(|| Err(closed()))
                        }
                        Err(e) => Err(e),
                    };
                    reply.send(result);
                }
            }
        }
    }
}
