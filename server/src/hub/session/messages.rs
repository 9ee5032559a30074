//! The agent's messages after `hello`, handled in order; each one's store write
//! is queued without waiting for its commit (see `in_flight`).

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use chrono::Utc;
use futures::StreamExt;
use futures::stream::SplitStream;
use switchyard_agent::protocol::{
    Ack, AgentMessage, Complete, Decline, Fail, HubMessage, ItemMessage, Progress, TaskRef,
    parse_agent_message,
};
use tracing::Instrument;
use uuid::Uuid;

use super::in_flight::{Done, MAX_IN_FLIGHT};
use super::socket_error::closing_for;
use super::{Held, Session, close_with, send_error};
use crate::domain::storable::{NUL_PROBLEM, nul_path_in_json};
use crate::domain::{TaskCompletion, TaskFailure};
use crate::hub::assign::frame;
use crate::hub::command::{Command, Outbound};
use crate::hub::schema::check;
use crate::store::StoreError;

/// Items one attempt may emit before further items are refused (bounds memory).
const MAX_ITEMS_PER_ATTEMPT: usize = 100_000;

impl Session {
    /// Reads until the socket closes; returns whether the agent closed
    /// cleanly. Settles the results of queued writes as they commit (see
    /// `in_flight`), and stops reading while too many are queued.
    pub(super) async fn read_loop(&mut self, stream: &mut SplitStream<WebSocket>) -> bool {
        loop {
            tokio::select! {
                Some(done) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    self.settle(done);
                }
                next = stream.next(), if self.in_flight.len() < MAX_IN_FLIGHT => {
                    if let Some(clean) = self.on_frame(next).await {
                        return clean;
                    }
                }
            }
        }
    }

    /// One frame from the agent; `Some(clean)` when the session ends.
    async fn on_frame(&mut self, next: Option<Result<Message, axum::Error>>) -> Option<bool> {
        let message = match next {
            None => return Some(false),
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                let text = e.to_string();
                if let Some(closing) = closing_for(e, self.hub.settings.max_frame_bytes) {
                    close_with(&self.out, closing);
                }
                tracing::info!(agent_id = %self.agent_id, error = %text, "agent socket error");
                return Some(false);
            }
        };
        // Tell the dispatcher the agent is alive at most every tenth of a
        // heartbeat interval.
        let now = tokio::time::Instant::now();
        let every = self.hub.settings.heartbeat_interval / 10;
        if self
            .seen_sent
            .is_none_or(|at| now.duration_since(at) >= every)
        {
            self.seen_sent = Some(now);
            self.hub.send(Command::Seen {
                agent_id: self.agent_id,
                session_id: self.session_id,
            });
        }
        match message {
            Message::Text(text) => {
                // Over the per-session rate, the session paces its reads:
                // the agent is slowed by TCP backpressure, and no message is lost.
                if self.limiter.check().is_err() {
                    metrics::counter!("switchyard_agent_messages_paced_total").increment(1);
                    self.limiter.until_ready().await;
                }
                self.handle(text.as_str()).await;
            }
            Message::Binary(_) => send_error(
                &self.out,
                "invalid_message",
                "binary frames are not supported; send JSON text frames",
                None,
            ),
            Message::Close(_) => return Some(true),
            Message::Ping(_) | Message::Pong(_) => {}
        }
        None
    }

    /// The span of one frame about `task_id`, a child of the task's
    /// dispatch span when traces are exported (disabled otherwise).
    fn frame_span(&self, kind: &'static str, task_id: Uuid) -> tracing::Span {
        if !crate::telemetry::links::enabled() {
            return tracing::Span::none();
        }
        let span = tracing::info_span!("agent_frame", kind, %task_id, agent_id = %self.agent_id);
        crate::telemetry::links::follow(&span, task_id);
        span
    }

    async fn handle(&mut self, text: &str) {
        let message = match parse_agent_message(text) {
            Ok(message) => message,
            Err(problem) => return send_error(&self.out, "invalid_message", problem, None),
        };
        let message = match nul_path_in_json(text.as_bytes()) {
            None => message,
            Some(path) => match self.unstorable(message, &path) {
                Some(message) => message,
                None => return,
            },
        };
        match message {
            AgentMessage::Hello(_) => send_error(
                &self.out,
                "invalid_message",
                "`hello` was already received on this session",
                None,
            ),
            AgentMessage::Heartbeat(hb) => {
                let load = if hb.load.is_finite() {
                    hb.load.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                self.hub.send(Command::Heartbeat {
                    agent_id: self.agent_id,
                    session_id: self.session_id,
                    health: hb.status,
                    load,
                    at: Utc::now(),
                });
            }
            AgentMessage::Accept(task) => {
                let _span = self.frame_span("accept", task.task_id).entered();
                self.accept(task)
            }
            AgentMessage::Progress(p) => {
                let _span = self.frame_span("progress", p.task_id).entered();
                self.progress(p)
            }
            AgentMessage::Item(item) => {
                let _span = self.frame_span("item", item.task_id).entered();
                self.item(item)
            }
            AgentMessage::Complete(c) => {
                let span = self.frame_span("complete", c.task_id);
                self.complete(c).instrument(span).await
            }
            AgentMessage::Fail(f) => {
                let _span = self.frame_span("fail", f.task_id).entered();
                self.fail(f)
            }
            AgentMessage::Decline(d) => {
                let _span = self.frame_span("decline", d.task_id).entered();
                self.decline(d)
            }
            AgentMessage::Drain(_) => self.hub.send(Command::Drain {
                agent_id: self.agent_id,
                reply: None,
            }),
        }
    }

    /// A message holding a NUL (see `domain::storable`). Free-text reasons
    /// of `fail` and `decline` are kept with the NUL replaced (returned to be
    /// handled); anything else is refused naming the field, and an attempt
    /// whose item or result cannot be stored fails now rather than later.
    fn unstorable(&mut self, message: AgentMessage, path: &str) -> Option<AgentMessage> {
        let problem = format!("`{path}` {NUL_PROBLEM}");
        let (task, fails_attempt) = match message {
            AgentMessage::Fail(mut f) => {
                f.error = f.error.replace('\0', "\u{fffd}");
                return Some(AgentMessage::Fail(f));
            }
            AgentMessage::Decline(mut d) => {
                d.reason = d.reason.map(|r| r.replace('\0', "\u{fffd}"));
                return Some(AgentMessage::Decline(d));
            }
            AgentMessage::Item(i) => (Some((i.task_id, i.attempt)), true),
            AgentMessage::Complete(c) => (Some((c.task_id, c.attempt)), true),
            AgentMessage::Progress(p) => (Some((p.task_id, p.attempt)), false),
            _ => (None, false),
        };
        send_error(
            &self.out,
            "invalid_message",
            problem.clone(),
            task.map(|t| t.0),
        );
        if let Some((task_id, attempt)) = task
            && fails_attempt
            && self
                .running
                .get(&task_id)
                .is_some_and(|held| held.attempt == attempt as i32)
        {
            let task = TaskRef { task_id, attempt };
            self.record_failure(task, format!("the agent sent {problem}"), true);
        }
        None
    }

    /// Reports a refused message about a task, and counts it against trust.
    pub(super) fn refused(&self, task_id: Uuid, error: &StoreError) {
        let (code, message) = match error {
            StoreError::Conflict { message } => ("stale_attempt", message.clone()),
            StoreError::NotFound(_) => (
                "unknown_task",
                format!("task {task_id} is not known to this hub"),
            ),
            other if other.is_transient() => (
                "internal",
                format!("could not record the message: {other}; send it again"),
            ),
            other => (
                "unstorable",
                format!(
                    "the hub cannot store this message: {other}; sending it again fails the same way"
                ),
            ),
        };
        if code == "stale_attempt" || code == "unknown_task" {
            self.hub.send(Command::Refused {
                agent_id: self.agent_id,
            });
        }
        send_error(&self.out, code, message, Some(task_id));
    }

    /// The task must be held by this session at this attempt.
    fn held(&self, task_id: Uuid, attempt: u32, what: &str) -> Option<&Held> {
        match self.running.get(&task_id) {
            Some(held) if held.attempt == attempt as i32 => Some(held),
            Some(held) => {
                self.hub.send(Command::Refused {
                    agent_id: self.agent_id,
                });
                send_error(
                    &self.out,
                    "stale_attempt",
                    format!(
                        "`{what}` for task {task_id} attempt {attempt} refused: this session holds attempt {}",
                        held.attempt
                    ),
                    Some(task_id),
                );
                None
            }
            None => {
                send_error(
                    &self.out,
                    "not_accepted",
                    format!(
                        "`{what}` for task {task_id} attempt {attempt} refused: the task is not running on this session; send `accept` first (or the attempt is no longer yours)"
                    ),
                    Some(task_id),
                );
                None
            }
        }
    }

    pub(super) fn ack(&self, task: TaskRef, of: &str) {
        let ack = HubMessage::Ack(Ack {
            task_id: task.task_id,
            attempt: task.attempt,
            of: of.to_owned(),
            item_id: None,
        });
        let _ = self.out.try_send(Outbound::Frame(frame(&ack)));
    }

    fn accept(&mut self, task: TaskRef) {
        if self.running.contains_key(&task.task_id) {
            return send_error(
                &self.out,
                "already_accepted",
                format!("task {} was already accepted on this session", task.task_id),
                Some(task.task_id),
            );
        }
        let lease_until = Utc::now() + self.hub.settings.lease;
        let result = self.store.start_task(
            task.task_id,
            task.attempt as i32,
            self.agent_id,
            lease_until,
        );
        // Held at once: the agent's next messages about the task are queued
        // behind the accept instead of refused; a refused accept takes it back.
        self.running.insert(
            task.task_id,
            Held {
                attempt: task.attempt as i32,
                capability: None,
                items: Vec::new(),
            },
        );
        self.in_flight(async move {
            Done::Started {
                task,
                result: result.await,
            }
        });
    }

    fn progress(&mut self, p: Progress) {
        if self.held(p.task_id, p.attempt, "progress").is_none() {
            return;
        }
        let lease_until = Utc::now() + self.hub.settings.lease;
        let detail = serde_json::json!({ "percent": p.percent, "message": p.message });
        let result = self.store.extend_lease(
            p.task_id,
            p.attempt as i32,
            self.agent_id,
            lease_until,
            detail,
        );
        let task = TaskRef {
            task_id: p.task_id,
            attempt: p.attempt,
        };
        self.in_flight(async move {
            Done::LeaseExtended {
                task,
                result: result.await,
            }
        });
    }

    /// Items belong to their attempt: kept here and written with its `complete`.
    fn item(&mut self, item: ItemMessage) {
        if self.held(item.task_id, item.attempt, "item").is_none() {
            return;
        }
        let Some(held) = self.running.get_mut(&item.task_id) else {
            return;
        };
        if held.items.iter().any(|(id, _)| *id == item.item_id) {
            return; // re-sent after a reconnect: already here
        }
        if held.items.len() >= MAX_ITEMS_PER_ATTEMPT {
            return send_error(
                &self.out,
                "too_many_items",
                format!("an attempt may emit at most {MAX_ITEMS_PER_ATTEMPT} items"),
                Some(item.task_id),
            );
        }
        held.items.push((item.item_id, item.data));
    }

    async fn complete(&mut self, c: Complete) {
        // The output schema depends on the task's capability, which the
        // session learns when the accept commits; wait for that only when
        // the agent's capabilities have different output schemas.
        while self.schema_unknown(c.task_id) {
            let Some(done) = self.in_flight.next().await else {
                break;
            };
            self.settle(done);
        }
        let Some(held) = self.held(c.task_id, c.attempt, "complete") else {
            return;
        };
        let task = TaskRef {
            task_id: c.task_id,
            attempt: c.attempt,
        };
        if let Some((capability, schema)) = self.output_schema(held.capability.as_deref())
            && let Err(problem) = check(&schema, &c.output)
        {
            let error =
                format!("the output does not match the output schema of `{capability}`: {problem}");
            send_error(&self.out, "invalid_output", error.clone(), Some(c.task_id));
            return self.record_failure(task, error, true);
        }
        let Some(held) = self.running.remove(&c.task_id) else {
            return;
        };
        self.release(task);
        let completion = TaskCompletion {
            task_id: c.task_id,
            attempt: c.attempt as i32,
            agent_id: self.agent_id,
            output: c.output,
            verdict: c.verdict,
            reason: c.reason,
            usage: c.usage,
            items: held.items.clone(),
        };
        let result = self.store.complete_task(completion);
        self.in_flight(async move {
            Done::Completed {
                task,
                held,
                result: result.await,
            }
        });
    }

    /// Whether the output schema of a held task is not known yet (see `complete`).
    fn schema_unknown(&self, task_id: Uuid) -> bool {
        self.running
            .get(&task_id)
            .is_some_and(|held| held.capability.is_none())
            && self.output_schemas.len() > 1
            && self.output_schemas.values().any(Option::is_some)
    }

    /// The capability and output schema that apply to a held task, if any.
    /// Without its capability (accept not committed yet) the agent has at
    /// most one capability, or none with a schema (see `schema_unknown`).
    fn output_schema(
        &self,
        capability: Option<&str>,
    ) -> Option<(String, Arc<jsonschema::Validator>)> {
        let (name, schema) = match capability {
            Some(name) => self.output_schemas.get_key_value(name)?,
            None => self.output_schemas.iter().next()?,
        };
        schema.clone().map(|schema| (name.clone(), schema))
    }

    fn fail(&mut self, f: Fail) {
        let task = TaskRef {
            task_id: f.task_id,
            attempt: f.attempt,
        };
        self.record_failure(task, f.error, f.retryable);
    }

    /// Records a failed attempt (assigned or running) held by this agent.
    pub(super) fn record_failure(&mut self, task: TaskRef, error: String, retryable: bool) {
        let failure = TaskFailure {
            task_id: task.task_id,
            attempt: task.attempt as i32,
            agent_id: Some(self.agent_id),
            error,
            retry: retryable.then_some(self.hub.settings.retry),
        };
        if self.running.remove(&task.task_id).is_some() {
            self.release(task);
        }
        let result = self.store.fail_task(failure);
        self.in_flight(async move {
            Done::Failed {
                task,
                result: result.await,
            }
        });
    }

    /// Frees the agent's slot for `task` in the dispatcher now, before its
    /// result commits (see `Command::Released`).
    fn release(&self, task: TaskRef) {
        self.hub.send(Command::Released {
            agent_id: self.agent_id,
            task_id: task.task_id,
            attempt: task.attempt as i32,
        });
    }

    fn decline(&mut self, d: Decline) {
        let task = TaskRef {
            task_id: d.task_id,
            attempt: d.attempt,
        };
        let delay = (self.hub.settings.accept_timeout / 4).min(std::time::Duration::from_secs(1));
        let reason = d.reason.unwrap_or_else(|| "declined by the agent".into());
        self.running.remove(&d.task_id);
        let result = self.store.requeue_task(
            d.task_id,
            d.attempt as i32,
            self.agent_id,
            Utc::now() + delay,
            reason,
        );
        self.in_flight(async move {
            Done::Declined {
                task,
                result: result.await,
            }
        });
    }
}
