//! The agent's messages whose store writes are still being committed.
//!
//! A session does not wait for one message's commit before reading the next:
//! that would cap an agent at one transition per commit. It queues the write
//! (the store applies writes in the order they were queued, see
//! `store::group_commit`), keeps the pending result here, and goes on
//! reading. Results are settled in the order the messages came, so the
//! dispatcher always hears of a task's start before its finish, and the
//! agent gets its `ack`s in order.

use std::pin::Pin;

use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use switchyard_agent::protocol::TaskRef;

use super::{Held, Session};
use crate::domain::{Task, TaskOutcome};
use crate::hub::command::Command;
use crate::store::StoreError;
use crate::store::group_commit::is_refusal;

/// Writes one session may have queued before it stops reading (backpressure
/// on the agent's socket rather than unbounded memory).
pub(super) const MAX_IN_FLIGHT: usize = 256;

/// A queued write and what to do with its result.
pub(super) enum Done {
    Started {
        task: TaskRef,
        result: Result<Task, StoreError>,
    },
    LeaseExtended {
        task: TaskRef,
        result: Result<(), StoreError>,
    },
    Completed {
        task: TaskRef,
        /// What the session held, restored when the write could not be recorded
        /// (so a re-sent `complete` carries the items again).
        held: Held,
        result: Result<TaskOutcome, StoreError>,
    },
    Failed {
        task: TaskRef,
        result: Result<TaskOutcome, StoreError>,
    },
    Declined {
        task: TaskRef,
        result: Result<Task, StoreError>,
    },
}

/// The session's queue of writes waiting for their commit.
pub(super) type InFlight = FuturesOrdered<BoxFuture<'static, Done>>;

impl Session {
    /// Queues the result of a write already handed to the store.
    pub(super) fn in_flight(&mut self, done: impl Future<Output = Done> + Send + 'static) {
        let done: Pin<Box<dyn Future<Output = Done> + Send>> = Box::pin(done);
        self.in_flight.push_back(done);
    }

    /// Settles every write still in flight (the session is ending: what the
    /// agent sent is still committed, and the dispatcher must hear of it
    /// before it hears that the agent left).
    pub(super) async fn settle_all(&mut self) {
        while let Some(done) = self.in_flight.next().await {
            self.settle(done);
        }
    }

    /// Acts on a committed (or refused) write.
    pub(super) fn settle(&mut self, done: Done) {
        let agent_id = self.agent_id;
        match done {
            Done::Started { task, result } => match result {
                Ok(started) => {
                    if let Some(held) = self.running.get_mut(&task.task_id)
                        && held.attempt == started.attempt
                    {
                        held.capability = Some(started.capability.clone());
                    }
                    self.hub.send(Command::Started {
                        agent_id,
                        task: started,
                    });
                }
                Err(e) => {
                    if self
                        .running
                        .get(&task.task_id)
                        .is_some_and(|held| held.attempt == task.attempt as i32)
                    {
                        self.running.remove(&task.task_id);
                    }
                    self.refused(task.task_id, &e);
                }
            },
            Done::LeaseExtended { task, result } => match result {
                Ok(()) => self.hub.send(Command::LeaseExtended {
                    agent_id,
                    task_id: task.task_id,
                    attempt: task.attempt as i32,
                }),
                Err(e) => {
                    self.running.remove(&task.task_id);
                    self.refused(task.task_id, &e);
                }
            },
            Done::Completed { task, held, result } => match result {
                Ok(outcome) => {
                    self.hub.send(Command::Finished {
                        agent_id: Some(agent_id),
                        task_id: task.task_id,
                        outcome,
                        success: Some(true),
                    });
                    self.ack(task, "complete");
                }
                Err(e) if e.is_transient() => {
                    // The agent sends its result again; the task stays held.
                    self.running.insert(task.task_id, held);
                    self.hub.send(Command::Reheld {
                        agent_id,
                        task_id: task.task_id,
                        attempt: task.attempt as i32,
                    });
                    self.refused(task.task_id, &e);
                }
                Err(e) if is_refusal(&e) => self.refused(task.task_id, &e),
                Err(e) => {
                    // A result the store cannot hold fails the same way every
                    // time: the attempt fails now (and is retried within
                    // max_attempts) instead of holding the agent's slot.
                    self.refused(task.task_id, &e);
                    self.running.insert(task.task_id, held);
                    let error = format!("the hub could not store the result of this attempt: {e}");
                    self.record_failure(task, error, true);
                }
            },
            Done::Failed { task, result } => match result {
                Ok(outcome) => {
                    self.hub.send(Command::Finished {
                        agent_id: Some(agent_id),
                        task_id: task.task_id,
                        outcome,
                        success: Some(false),
                    });
                    self.ack(task, "fail");
                }
                Err(e) => self.refused(task.task_id, &e),
            },
            Done::Declined { task, result } => match result {
                Ok(requeued) => {
                    self.hub.send(Command::Finished {
                        agent_id: Some(agent_id),
                        task_id: task.task_id,
                        outcome: TaskOutcome {
                            task: Some(requeued),
                            ..Default::default()
                        },
                        success: None,
                    });
                    self.ack(task, "decline");
                }
                Err(e) => self.refused(task.task_id, &e),
            },
        }
    }
}
