//! [`TaskContext`]: what a handler knows about the task it runs, and how it
//! talks back to the hub while running.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::protocol::{ItemMessage, Progress, TaskAssignment, TaskRef, Usage};

/// What a running handler sends to the agent's connection task.
#[derive(Debug)]
pub(crate) enum TaskEvent {
    Item(ItemMessage),
    Progress(Progress),
}

/// What the handler decided besides its output: read by the agent when the
/// handler returns `Ok`.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) rejection: Option<String>,
    pub(crate) usage: Usage,
}

/// The state of one task attempt shared by its context(s) and the agent.
#[derive(Debug)]
pub(crate) struct TaskShared {
    pub(crate) task: TaskRef,
    pub(crate) job_id: Uuid,
    pub(crate) stage: u32,
    pub(crate) capability: String,
    pub(crate) correlation_id: String,
    pub(crate) lease: Duration,
    pub(crate) cancel: CancellationToken,
    pub(crate) outcome: Mutex<Outcome>,
}

impl TaskShared {
    pub(crate) fn new(task: &TaskAssignment, lease: Duration, cancel: CancellationToken) -> Self {
        Self {
            task: TaskRef {
                task_id: task.task_id,
                attempt: task.attempt,
            },
            job_id: task.job_id,
            stage: task.stage,
            capability: task.capability.clone(),
            correlation_id: task.correlation_id.clone(),
            lease,
            cancel,
            outcome: Mutex::new(Outcome::default()),
        }
    }

    /// Takes the verdict and usage out (once, when the handler returned).
    pub(crate) fn take_outcome(&self) -> Outcome {
        std::mem::take(&mut *self.outcome.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Handed to every handler call: identifies the task attempt and lets the
/// handler emit items, report progress, reject its input item, report LLM
/// usage and notice cancellation.
///
/// Cheap to clone; clones talk about the same attempt.
#[derive(Debug, Clone)]
pub struct TaskContext {
    shared: Arc<TaskShared>,
    events: mpsc::Sender<TaskEvent>,
}

impl TaskContext {
    pub(crate) fn new(shared: Arc<TaskShared>, events: mpsc::Sender<TaskEvent>) -> Self {
        Self { shared, events }
    }

    /// The task's id (stable across attempts).
    pub fn task_id(&self) -> Uuid {
        self.shared.task.task_id
    }

    /// The job the task belongs to.
    pub fn job_id(&self) -> Uuid {
        self.shared.job_id
    }

    /// The attempt number (1 for the first try). Every message about the task
    /// carries it; the hub refuses messages of an attempt that is no longer
    /// current.
    pub fn attempt(&self) -> u32 {
        self.shared.task.attempt
    }

    /// The 0-based pipeline stage of the task.
    pub fn stage(&self) -> u32 {
        self.shared.stage
    }

    /// The capability the task was pushed for, e.g. `requirements.extract`.
    pub fn capability(&self) -> &str {
        &self.shared.capability
    }

    /// The id that ties the hub's and the agent's log lines together.
    pub fn correlation_id(&self) -> &str {
        &self.shared.correlation_id
    }

    /// How long the task's lease lasts without [`progress`](Self::progress)
    /// (from the hub's `welcome`). A handler that runs longer should report
    /// progress more often than this, or enable
    /// [`auto_extend_leases`](crate::AgentBuilder::auto_extend_leases).
    pub fn lease(&self) -> Duration {
        self.shared.lease
    }

    /// Emits one result item (a requirement, in the reference pipeline) and
    /// returns its id, a fresh UUIDv7.
    ///
    /// The item is remembered for this attempt and re-sent after a reconnect
    /// (the hub stores an item id once); it becomes the input of one task of
    /// the next stage only if the attempt completes. Emitting after the
    /// handler returned, or for a cancelled task, sends nothing.
    pub async fn emit_item(&self, data: serde_json::Value) -> Uuid {
        let item_id = Uuid::now_v7();
        let item = ItemMessage {
            task_id: self.task_id(),
            attempt: self.attempt(),
            item_id,
            data,
        };
        // Fails only once the agent has stopped: nothing left to send to.
        let _ = self.events.send(TaskEvent::Item(item)).await;
        item_id
    }

    /// Reports progress: `percent` from 0 to 100 when known, and a message.
    /// Every `progress` extends the task's lease on the hub. Sent only while
    /// connected (progress is not re-sent after a reconnect).
    pub async fn progress(&self, percent: Option<f64>, message: Option<String>) {
        let progress = Progress {
            task_id: self.task_id(),
            attempt: self.attempt(),
            percent: percent.map(|p| p.clamp(0.0, 100.0)),
            message,
        };
        let _ = self.events.send(TaskEvent::Progress(progress)).await;
    }

    /// Rejects the task's input item: when the handler returns `Ok`, the
    /// `complete` carries `verdict: rejected` and this reason. The last call
    /// wins.
    pub fn reject(&self, reason: impl Into<String>) {
        self.outcome().rejection = Some(reason.into());
    }

    /// Adds LLM usage to what the `complete` reports: token and request
    /// counts add up; `model` is kept from the last report that names one.
    pub fn report_usage(&self, usage: Usage) {
        let mut outcome = self.outcome();
        let total = &mut outcome.usage;
        total.tokens_in += usage.tokens_in;
        total.tokens_out += usage.tokens_out;
        total.requests += usage.requests;
        if usage.model.is_some() {
            total.model = usage.model;
        }
    }

    /// Fires when the hub cancels this task (its job was cancelled, or the
    /// task was given to another agent) or the agent is killed. The handler's
    /// result is then dropped, so a handler should stop early:
    ///
    /// ```no_run
    /// # async fn f(ctx: switchyard_agent::TaskContext) {
    /// tokio::select! {
    ///     _ = ctx.cancelled().cancelled_owned() => return,
    ///     _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
    /// }
    /// # }
    /// ```
    pub fn cancelled(&self) -> CancellationToken {
        self.shared.cancel.clone()
    }

    /// Whether [`cancelled`](Self::cancelled) has fired.
    pub fn is_cancelled(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }

    fn outcome(&self) -> std::sync::MutexGuard<'_, Outcome> {
        self.shared
            .outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> (TaskContext, mpsc::Receiver<TaskEvent>) {
        let assignment = TaskAssignment {
            task_id: Uuid::from_u128(7),
            attempt: 2,
            job_id: Uuid::from_u128(9),
            capability: "requirements.extract".into(),
            stage: 0,
            input: serde_json::json!({}),
            accept_by: chrono::Utc::now(),
            correlation_id: "corr-1".into(),
        };
        let shared = Arc::new(TaskShared::new(
            &assignment,
            Duration::from_secs(30),
            CancellationToken::new(),
        ));
        let (tx, rx) = mpsc::channel(8);
        (TaskContext::new(shared, tx), rx)
    }

    #[tokio::test]
    async fn emits_items_and_progress_for_its_attempt() {
        let (ctx, mut rx) = context();
        assert_eq!(
            (ctx.task_id(), ctx.attempt(), ctx.job_id(), ctx.stage()),
            (Uuid::from_u128(7), 2, Uuid::from_u128(9), 0)
        );
        assert_eq!(ctx.capability(), "requirements.extract");
        assert_eq!(ctx.correlation_id(), "corr-1");
        let id = ctx.emit_item(serde_json::json!({"text": "x"})).await;
        assert_eq!(id.get_version_num(), 7);
        match rx.recv().await.unwrap() {
            TaskEvent::Item(item) => {
                assert_eq!((item.item_id, item.attempt), (id, 2));
                assert_eq!(item.data["text"], "x");
            }
            other => panic!("{other:?}"),
        }
        ctx.progress(Some(150.0), Some("half".into())).await;
        match rx.recv().await.unwrap() {
            TaskEvent::Progress(p) => assert_eq!(p.percent, Some(100.0)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn usage_accumulates_and_reject_sets_reason() {
        let (ctx, _rx) = context();
        ctx.report_usage(Usage {
            tokens_in: 10,
            tokens_out: 5,
            requests: 1,
            model: Some("m1".into()),
        });
        ctx.report_usage(Usage {
            tokens_in: 1,
            tokens_out: 1,
            requests: 1,
            model: None,
        });
        ctx.reject("too vague");
        let outcome = ctx.shared.take_outcome();
        assert_eq!(outcome.rejection.as_deref(), Some("too vague"));
        assert_eq!(
            (
                outcome.usage.tokens_in,
                outcome.usage.tokens_out,
                outcome.usage.requests
            ),
            (11, 6, 2)
        );
        assert_eq!(outcome.usage.model.as_deref(), Some("m1"));
        assert!(!ctx.is_cancelled());
        ctx.cancelled().cancel();
        assert!(ctx.is_cancelled());
    }
}
