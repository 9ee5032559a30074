//! The agent's local tasks: starting handlers, recording their items and
//! results, cancellation, and the checks that run while connected.

use std::sync::Arc;

use tokio::time::Instant;
use tracing::{Instrument, debug, warn};
use uuid::Uuid;

use super::{Runner, SessionEnd, TASK_GONE_ERRORS, TRANSIENT_ERRORS};
use crate::connection::WsStream;
use crate::context::{TaskContext, TaskEvent, TaskShared};
use crate::error::TaskError;
use crate::protocol::{
    AgentMessage, Complete, Decline, ErrorMessage, Fail, ItemMessage, Progress, TaskAssignment,
    TaskRef, Verdict,
};

/// A task attempt this agent runs or has results of that are not yet acked.
pub(super) struct LocalTask {
    pub(super) shared: Arc<TaskShared>,
    /// Every item emitted by the attempt, in order (re-sent after reconnects).
    pub(super) items: Vec<ItemMessage>,
    /// `complete`/`fail`, once the handler returned.
    pub(super) result: Option<AgentMessage>,
    /// When `result` was sent on the current connection.
    pub(super) result_sent_at: Option<Instant>,
    /// How often the hub refused `result` as "for now" (see `on_error`).
    pub(super) result_refusals: u32,
    pub(super) last_progress: Instant,
}

/// Transient refusals of one result before the SDK stops sending it: a
/// `complete` becomes a `fail` naming the refusal, and a refused `fail` is
/// dropped. Each refusal costs an ack timeout and a reconnect, so this
/// bounds how long a result the hub cannot take holds a slot.
pub const MAX_RESULT_REFUSALS: u32 = 5;

impl LocalTask {
    pub(super) fn task(&self) -> TaskRef {
        self.shared.task
    }
    pub(super) fn is_running(&self) -> bool {
        self.result.is_none()
    }
}

impl Runner {
    pub(super) async fn on_task(
        &mut self,
        ws: &mut WsStream,
        task: TaskAssignment,
    ) -> Result<(), SessionEnd> {
        let task_ref = TaskRef {
            task_id: task.task_id,
            attempt: task.attempt,
        };
        let decline = |reason: String| {
            AgentMessage::Decline(Decline {
                task_id: task.task_id,
                attempt: task.attempt,
                reason: Some(reason),
            })
        };
        if self.draining {
            return self.send(ws, decline("draining".into())).await;
        }
        let Some((handler, limit)) = self.config.handlers.get(&task.capability).cloned() else {
            let reason = format!("no handler for capability `{}`", task.capability);
            return self.send(ws, decline(reason)).await;
        };
        if let Some(existing) = self.tasks.get(&task.task_id).map(LocalTask::task) {
            if existing.attempt == task.attempt {
                // Pushed again (e.g. our accept was lost): accept again, run once.
                return self.send(ws, AgentMessage::Accept(task_ref)).await;
            }
            if existing.attempt > task.attempt {
                warn!(task_id = %task.task_id, attempt = task.attempt, "ignoring a push of an older attempt");
                return Ok(());
            }
            self.drop_task(task.task_id);
        }
        let running = self
            .tasks
            .values()
            .filter(|t| t.is_running() && t.shared.capability == task.capability)
            .count();
        if running >= limit {
            let reason = format!(
                "at capacity: {running} of {limit} `{}` tasks running",
                task.capability
            );
            return self.send(ws, decline(reason)).await;
        }
        self.send(ws, AgentMessage::Accept(task_ref)).await?;
        debug!(task_id = %task.task_id, attempt = task.attempt, job_id = %task.job_id, correlation_id = %task.correlation_id, "task accepted");
        let shared = Arc::new(TaskShared::new(
            &task,
            self.lease,
            self.shared.kill.child_token(),
        ));
        let ctx = TaskContext::new(Arc::clone(&shared), self.events_tx.clone());
        let span = tracing::info_span!("task", task_id = %task.task_id, attempt = task.attempt, correlation_id = %task.correlation_id);
        let abort = self
            .handlers
            .spawn(handler(ctx, task.input).instrument(span));
        self.handler_tasks.insert(abort.id(), task_ref);
        self.tasks.insert(
            task.task_id,
            LocalTask {
                shared,
                items: Vec::new(),
                result: None,
                result_sent_at: None,
                result_refusals: 0,
                last_progress: Instant::now(),
            },
        );
        Ok(())
    }

    pub(super) fn on_error(&mut self, e: ErrorMessage) {
        warn!(code = %e.code, message = %e.message, task_id = ?e.task_id, "the hub reported an error");
        let Some(task_id) = e.task_id else { return };
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return;
        };
        // A refused result cannot be fixed by sending it again, unless the
        // refusal was transient: then the missing ack leads to a reconnect
        // and the result is re-sent, MAX_RESULT_REFUSALS times at most.
        let transient = TRANSIENT_ERRORS.contains(&e.code.as_str());
        if TASK_GONE_ERRORS.contains(&e.code.as_str()) || (task.result.is_some() && !transient) {
            warn!(task_id = %task_id, "dropping the task locally");
            self.drop_task(task_id);
            return;
        }
        if !transient || task.result.is_none() {
            return;
        }
        task.result_refusals += 1;
        if task.result_refusals < MAX_RESULT_REFUSALS {
            return;
        }
        // The hub kept refusing: the attempt ends as failed, with the reason
        // (a failure is small and plain, so the hub can record it where it
        // could not record the result). If even that is refused, let go.
        match task.result {
            Some(AgentMessage::Complete(_)) => {
                let TaskRef { task_id, attempt } = task.task();
                warn!(%task_id, refusals = task.result_refusals, "the hub keeps refusing the result: failing the attempt instead");
                task.result = Some(AgentMessage::Fail(Fail {
                    task_id,
                    attempt,
                    error: format!(
                        "the hub refused this attempt's result {MAX_RESULT_REFUSALS} times: {}: {}",
                        e.code, e.message
                    ),
                    retryable: true,
                }));
                task.result_refusals = 0;
            }
            _ => {
                warn!(%task_id, "the hub keeps refusing the failure: dropping the task locally");
                self.drop_task(task_id);
            }
        }
    }

    /// Whether `(task_id, attempt)` is a task this agent holds.
    pub(super) fn owns(&self, task_id: Uuid, attempt: u32) -> bool {
        self.tasks
            .get(&task_id)
            .is_some_and(|t| t.task().attempt == attempt)
    }

    /// Forgets a task: its handler is cancelled and its results never sent.
    pub(super) fn drop_task(&mut self, task_id: Uuid) {
        if let Some(task) = self.tasks.remove(&task_id) {
            task.shared.cancel.cancel();
        }
    }

    /// Records an item or progress; returns the frame to send if connected.
    pub(super) fn on_event(&mut self, event: TaskEvent) -> Option<AgentMessage> {
        match event {
            TaskEvent::Item(item) => {
                let task = self.tasks.get_mut(&item.task_id)?;
                if task.task().attempt != item.attempt || !task.is_running() {
                    debug!(task_id = %item.task_id, "dropping an item of a finished or dropped attempt");
                    return None;
                }
                task.items.push(item.clone());
                Some(AgentMessage::Item(item))
            }
            TaskEvent::Progress(progress) => {
                let task = self.tasks.get_mut(&progress.task_id)?;
                if task.task().attempt != progress.attempt || !task.is_running() {
                    return None;
                }
                task.last_progress = Instant::now();
                Some(AgentMessage::Progress(progress))
            }
        }
    }

    /// Handles everything handlers queued so far; called before a finished
    /// handler's result is recorded, as its items precede its result (and
    /// items of a finished attempt are refused). Returns the frames to send
    /// if connected.
    pub(super) fn drain_events(&mut self) -> Vec<AgentMessage> {
        let mut out = Vec::new();
        while let Ok(event) = self.events_rx.try_recv() {
            out.extend(self.on_event(event));
        }
        out
    }

    /// Turns a finished handler into the outcome of its attempt; returns the
    /// task id when that attempt is still ours.
    pub(super) fn on_handler_done(
        &mut self,
        joined: Result<
            (tokio::task::Id, Result<serde_json::Value, TaskError>),
            tokio::task::JoinError,
        >,
    ) -> Option<Uuid> {
        let (id, outcome) = match joined {
            Ok((id, result)) => (id, result),
            Err(e) if e.is_panic() => {
                let id = e.id();
                let message = panic_message(e.into_panic());
                warn!(%message, "a task handler panicked");
                (
                    id,
                    Err(TaskError::retryable(format!("handler panicked: {message}"))),
                )
            }
            Err(e) => {
                self.handler_tasks.remove(&e.id());
                return None;
            }
        };
        let task_ref = self.handler_tasks.remove(&id)?;
        let task = self.tasks.get_mut(&task_ref.task_id)?;
        if task.task() != task_ref || task.result.is_some() {
            return None;
        }
        let result = match outcome {
            Ok(output) => {
                let decided = task.shared.take_outcome();
                let verdict = if decided.rejection.is_some() {
                    Verdict::Rejected
                } else {
                    Verdict::Accepted
                };
                AgentMessage::Complete(Complete {
                    task_id: task_ref.task_id,
                    attempt: task_ref.attempt,
                    output,
                    verdict,
                    reason: decided.rejection,
                    usage: decided.usage,
                })
            }
            Err(e) => AgentMessage::Fail(Fail {
                task_id: task_ref.task_id,
                attempt: task_ref.attempt,
                error: e.message().to_owned(),
                retryable: e.is_retryable(),
            }),
        };
        task.result = Some(result);
        Some(task_ref.task_id)
    }

    /// The result to send now for a task whose handler just finished.
    pub(super) fn finish_task(&mut self, task_id: Uuid) -> Option<AgentMessage> {
        let task = self.tasks.get_mut(&task_id)?;
        task.result_sent_at = Some(Instant::now());
        task.result.clone()
    }

    pub(super) async fn housekeeping(&mut self, ws: &mut WsStream) -> Result<(), SessionEnd> {
        let ack_timeout = self.config.ack_timeout;
        if let Some(t) = self.tasks.values().find(|t| {
            t.result_sent_at
                .is_some_and(|at| at.elapsed() >= ack_timeout)
        }) {
            return Err(SessionEnd::Lost(format!(
                "no ack for the result of task {} within {ack_timeout:?}",
                t.task().task_id
            )));
        }
        if self.config.auto_extend_leases {
            let every = self.lease / 3;
            let due: Vec<TaskRef> = self
                .tasks
                .values_mut()
                .filter(|t| t.is_running() && t.last_progress.elapsed() >= every)
                .map(|t| {
                    t.last_progress = Instant::now();
                    t.task()
                })
                .collect();
            for task in due {
                let progress = Progress {
                    task_id: task.task_id,
                    attempt: task.attempt,
                    percent: None,
                    message: None,
                };
                self.send(ws, AgentMessage::Progress(progress)).await?;
            }
        }
        Ok(())
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}
