//! The agent's messages after `hello`, one at a time, in order.

use axum::extract::ws::{Message, WebSocket};
use chrono::Utc;
use futures::StreamExt;
use futures::stream::SplitStream;
use switchyard_agent::protocol::{
    Ack, AgentMessage, Complete, Decline, Fail, HubMessage, ItemMessage, Progress, TaskRef,
    parse_agent_message,
};
use uuid::Uuid;

use super::{Held, Session, send_error};
use crate::domain::{TaskCompletion, TaskFailure, TaskOutcome};
use crate::hub::assign::frame;
use crate::hub::command::{Command, Outbound};
use crate::hub::schema::check;
use crate::store::StoreError;

/// Items one attempt may emit before further items are refused (bounds memory).
const MAX_ITEMS_PER_ATTEMPT: usize = 100_000;

impl Session {
    /// Reads until the socket closes; returns whether the agent closed cleanly.
    pub(super) async fn read_loop(&mut self, stream: &mut SplitStream<WebSocket>) -> bool {
        loop {
            let message = match stream.next().await {
                None => return false,
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    let text = e.to_string();
                    if text.contains("too long")
                        || text.contains("Space limit")
                        || text.contains("too big")
                    {
                        let limit = self.hub.settings.max_frame_bytes;
                        send_error(
                            &self.out,
                            "frame_too_large",
                            format!(
                                "a frame was larger than this hub accepts ({limit} bytes, max_frame_bytes)"
                            ),
                            None,
                        );
                        let _ = self.out.try_send(Outbound::Close {
                            code: 1009,
                            reason: format!("frame larger than {limit} bytes"),
                        });
                    }
                    tracing::info!(agent_id = %self.agent_id, error = %text, "agent socket error");
                    return false;
                }
            };
            self.hub.send(Command::Seen {
                agent_id: self.agent_id,
                session_id: self.session_id,
            });
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
                Message::Close(_) => return true,
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
    }

    async fn handle(&mut self, text: &str) {
        let message = match parse_agent_message(text) {
            Ok(message) => message,
            Err(problem) => return send_error(&self.out, "invalid_message", problem, None),
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
            AgentMessage::Accept(task) => self.accept(task).await,
            AgentMessage::Progress(p) => self.progress(p).await,
            AgentMessage::Item(item) => self.item(item),
            AgentMessage::Complete(c) => self.complete(c).await,
            AgentMessage::Fail(f) => self.fail(f).await,
            AgentMessage::Decline(d) => self.decline(d).await,
            AgentMessage::Drain(_) => self.hub.send(Command::Drain {
                agent_id: self.agent_id,
                reply: None,
            }),
        }
    }

    /// Reports a refused message about a task, and counts it against trust.
    fn refused(&self, task_id: Uuid, error: &StoreError) {
        let (code, message) = match error {
            StoreError::Conflict { message } => ("stale_attempt", message.clone()),
            StoreError::NotFound(_) => (
                "unknown_task",
                format!("task {task_id} is not known to this hub"),
            ),
            other => (
                "internal",
                format!("could not record the message: {other}; send it again"),
            ),
        };
        if code != "internal" {
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

    fn ack(&self, task: TaskRef, of: &str) {
        let ack = HubMessage::Ack(Ack {
            task_id: task.task_id,
            attempt: task.attempt,
            of: of.to_owned(),
            item_id: None,
        });
        let _ = self.out.try_send(Outbound::Frame(frame(&ack)));
    }

    async fn accept(&mut self, task: TaskRef) {
        if self.running.contains_key(&task.task_id) {
            return send_error(
                &self.out,
                "already_accepted",
                format!("task {} was already accepted on this session", task.task_id),
                Some(task.task_id),
            );
        }
        let lease_until = Utc::now() + self.hub.settings.lease;
        match self
            .store
            .start_task(
                task.task_id,
                task.attempt as i32,
                self.agent_id,
                lease_until,
            )
            .await
        {
            Ok(started) => {
                self.running.insert(
                    task.task_id,
                    Held {
                        attempt: started.attempt,
                        capability: started.capability.clone(),
                        items: Vec::new(),
                    },
                );
                self.hub.send(Command::Started {
                    agent_id: self.agent_id,
                    task: started,
                });
            }
            Err(e) => self.refused(task.task_id, &e),
        }
    }

    async fn progress(&mut self, p: Progress) {
        if self.held(p.task_id, p.attempt, "progress").is_none() {
            return;
        }
        let lease_until = Utc::now() + self.hub.settings.lease;
        let detail = serde_json::json!({ "percent": p.percent, "message": p.message });
        match self
            .store
            .extend_lease(
                p.task_id,
                p.attempt as i32,
                self.agent_id,
                lease_until,
                detail,
            )
            .await
        {
            Ok(()) => self.hub.send(Command::LeaseExtended {
                agent_id: self.agent_id,
                task_id: p.task_id,
                attempt: p.attempt as i32,
            }),
            Err(e) => {
                self.running.remove(&p.task_id);
                self.refused(p.task_id, &e);
            }
        }
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
        let Some(held) = self.held(c.task_id, c.attempt, "complete") else {
            return;
        };
        let capability = held.capability.clone();
        let task = TaskRef {
            task_id: c.task_id,
            attempt: c.attempt,
        };
        if let Some(Some(schema)) = self.output_schemas.get(&capability)
            && let Err(problem) = check(schema, &c.output)
        {
            let error =
                format!("the output does not match the output schema of `{capability}`: {problem}");
            send_error(&self.out, "invalid_output", error.clone(), Some(c.task_id));
            return self.record_failure(task, error, true).await;
        }
        let items = self
            .running
            .get_mut(&c.task_id)
            .map(|h| std::mem::take(&mut h.items))
            .unwrap_or_default();
        let completion = TaskCompletion {
            task_id: c.task_id,
            attempt: c.attempt as i32,
            agent_id: self.agent_id,
            output: c.output,
            verdict: c.verdict,
            reason: c.reason,
            usage: c.usage,
            items: items.clone(),
        };
        match self.store.complete_task(completion).await {
            Ok(outcome) => {
                self.running.remove(&c.task_id);
                self.hub.send(Command::Finished {
                    agent_id: Some(self.agent_id),
                    task_id: c.task_id,
                    outcome,
                    success: Some(true),
                });
                self.ack(task, "complete");
            }
            Err(e @ StoreError::Conflict { .. }) | Err(e @ StoreError::NotFound(_)) => {
                self.running.remove(&c.task_id);
                self.refused(c.task_id, &e);
            }
            Err(e) => {
                // Not recorded: keep the items so a resent `complete` carries them.
                if let Some(held) = self.running.get_mut(&c.task_id) {
                    held.items = items;
                }
                self.refused(c.task_id, &e);
            }
        }
    }

    async fn fail(&mut self, f: Fail) {
        let task = TaskRef {
            task_id: f.task_id,
            attempt: f.attempt,
        };
        self.record_failure(task, f.error, f.retryable).await;
    }

    /// Records a failed attempt (assigned or running) held by this agent.
    async fn record_failure(&mut self, task: TaskRef, error: String, retryable: bool) {
        let failure = TaskFailure {
            task_id: task.task_id,
            attempt: task.attempt as i32,
            agent_id: Some(self.agent_id),
            error,
            retry: retryable.then_some(self.hub.settings.retry),
        };
        self.running.remove(&task.task_id);
        match self.store.fail_task(failure).await {
            Ok(outcome) => {
                self.hub.send(Command::Finished {
                    agent_id: Some(self.agent_id),
                    task_id: task.task_id,
                    outcome,
                    success: Some(false),
                });
                self.ack(task, "fail");
            }
            Err(e) => self.refused(task.task_id, &e),
        }
    }

    async fn decline(&mut self, d: Decline) {
        let task = TaskRef {
            task_id: d.task_id,
            attempt: d.attempt,
        };
        let delay = (self.hub.settings.accept_timeout / 4).min(std::time::Duration::from_secs(1));
        let reason = d.reason.unwrap_or_else(|| "declined by the agent".into());
        self.running.remove(&d.task_id);
        match self
            .store
            .requeue_task(
                d.task_id,
                d.attempt as i32,
                self.agent_id,
                Utc::now() + delay,
                reason,
            )
            .await
        {
            Ok(requeued) => {
                let outcome = TaskOutcome {
                    task: Some(requeued),
                    ..Default::default()
                };
                self.hub.send(Command::Finished {
                    agent_id: Some(self.agent_id),
                    task_id: d.task_id,
                    outcome,
                    success: None,
                });
                self.ack(task, "decline");
            }
            Err(e) => self.refused(d.task_id, &e),
        }
    }
}
