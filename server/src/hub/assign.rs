//! Getting ready tasks to agents, and taking them back.

use chrono::Utc;
use std::time::Duration;
use switchyard_agent::protocol::{Cancel, HubMessage, TaskAssignment};
use tokio::time::Instant;
use uuid::Uuid;

use super::actor::Dispatcher;
use super::command::Command;
use super::registry::{SlotState, TaskSlot, pick};
use crate::domain::{Task, TaskFailure, TaskStatus};
use crate::store::StoreError;

/// How a failure the hub decided is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Fail the task for good.
    No,
    /// Count the failure and retry after the configured backoff.
    Backoff,
    /// Count the failure and retry at once (its agent was lost).
    Immediately,
}

/// Serializes a hub message once; its bytes go to the agent as they are.
pub(crate) fn frame(message: &HubMessage) -> String {
    serde_json::to_string(message).unwrap_or_else(|e| {
        tracing::error!(error = %e, "a hub message could not be serialized");
        String::from("{}")
    })
}

impl Dispatcher {
    /// Makes a pending task ready (now, or after its backoff).
    pub fn enqueue(&mut self, task: &Task) {
        if task.status != TaskStatus::Pending {
            return;
        }
        let now = Instant::now();
        if let Some(old) = self.tasks.get(&task.id)
            && let SlotState::Delayed(at) = old.state
        {
            self.delayed.remove(&(at, task.id));
        }
        let wait = (task.next_run_at - Utc::now()).to_std().unwrap_or_default();
        let state = if wait.is_zero() {
            SlotState::Queued
        } else {
            SlotState::Delayed(now + wait)
        };
        let slot = TaskSlot::of(task, state, now + wait);
        match state {
            SlotState::Delayed(at) => {
                self.delayed.insert((at, task.id));
            }
            _ => self.push_ready(task.id, &task.capability, task.priority, now),
        }
        self.tasks.insert(task.id, slot);
    }

    pub fn push_ready(&mut self, task_id: Uuid, capability: &str, priority: i16, now: Instant) {
        let seq = self.next_seq();
        let now_ms = self.now_ms(now);
        let aging = self.settings.aging_interval;
        self.queues
            .entry(capability.to_owned())
            .or_default()
            .push(task_id, priority, now_ms, aging, seq);
        self.dirty.insert(capability.to_owned());
    }

    /// Moves backed-off tasks whose time has come into their queues.
    pub fn release_delayed(&mut self, now: Instant) {
        while let Some(&(at, task_id)) = self.delayed.first() {
            if at > now {
                break;
            }
            self.delayed.remove(&(at, task_id));
            let Some(slot) = self.tasks.get_mut(&task_id) else {
                continue;
            };
            slot.state = SlotState::Queued;
            slot.ready_since = now;
            let (capability, priority) = (slot.capability.clone(), slot.priority);
            self.push_ready(task_id, &capability, priority, now);
        }
    }

    /// Hands out work for every capability whose queue or agents changed.
    pub fn dispatch_dirty(&mut self) {
        let dirty: Vec<String> = self.dirty.drain().collect();
        for capability in dirty {
            self.dispatch(&capability);
        }
        self.read_inputs();
    }

    /// Pushes the tasks handed out in this pass whose input was held (see
    /// `inputs.rs`), and reads the inputs of the others, all in one store
    /// call (a constant number of queries however many there are).
    fn read_inputs(&mut self) {
        for (task_id, agent_id, input) in std::mem::take(&mut self.inputs_held) {
            self.on_input_ready(task_id, agent_id, Ok(input));
        }
        if self.inputs_wanted.is_empty() {
            return;
        }
        let wanted = std::mem::take(&mut self.inputs_wanted);
        let keys: Vec<_> = wanted
            .iter()
            .map(|&(_, _, job, item)| (job, item))
            .collect();
        let store = self.store.clone();
        // Like `spawn_store`, whose result type this does not fit: every
        // task gets its own outcome, even when the read as a whole failed.
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let inputs: Vec<Result<serde_json::Value, String>> = match store.inputs_of(&keys).await
            {
                Ok(inputs) => inputs
                    .into_iter()
                    .map(|i| i.map_err(|e| e.to_string()))
                    .collect(),
                Err(e) => vec![Err(e.to_string()); wanted.len()],
            };
            let ready = wanted
                .into_iter()
                .zip(inputs)
                .map(|((task, agent, _, _), input)| (task, agent, input))
                .collect();
            let _ = tx.send(Command::InputsReady(ready));
        });
    }

    /// Hands the ready tasks of `capability` to agents with free slots.
    ///
    /// Alone, no commit stands between a task and its push: the assignment
    /// is queued to the group-commit writer at once (ahead of anything the
    /// agent can send about the task, so its `accept` is applied after it),
    /// the input is read, and the task is pushed. The first durable write the
    /// agent causes, its `accept`, is the fence: a task pushed but never
    /// durably assigned (the hub crashed) is pending again after a restart
    /// and dispatched again; its old attempt's messages are refused.
    ///
    /// With other nodes alive, two nodes may hand out the same task and the
    /// store lets one win; pushing before that would have the loser's agent
    /// run the task too (its result refused, its work wasted). So there the
    /// push waits for the assignment's commit (one group commit longer).
    fn dispatch(&mut self, capability: &str) {
        loop {
            let Some(queue) = self.queues.get_mut(capability) else {
                return;
            };
            let Some(task_id) = queue.peek() else { return };
            let Some(agent_id) = pick(&self.agents, capability) else {
                return;
            };
            queue.pop();
            let Some(slot) = self.tasks.get_mut(&task_id) else {
                continue;
            };
            slot.state = SlotState::Assigning(agent_id);
            let expected_attempt = slot.attempt;
            // The attempt the assignment creates; the push and any hub
            // decision about it name this one.
            slot.attempt = expected_attempt + 1;
            let (job_id, item_id) = (slot.job_id, slot.item_id);
            if let Some(agent) = self.agents.get_mut(&agent_id) {
                agent.hold(task_id, capability);
            }
            self.publish_agent(agent_id);
            let accept_by = Utc::now()
                + self
                    .agents
                    .get(&agent_id)
                    .map_or(self.settings.accept_timeout, |a| a.timings.accept_timeout);
            let assigned = self
                .store
                .assign_task(task_id, expected_attempt, agent_id, accept_by);
            self.spawn_store(async move { assigned.await.map(|_| ()) }, move |result| {
                Command::AssignDone {
                    task_id,
                    agent_id,
                    attempt: expected_attempt + 1,
                    result,
                }
            });
            if self.handle.node.has_peers() {
                self.awaiting_commit
                    .insert(task_id, (agent_id, job_id, item_id));
            } else {
                self.want_input(task_id, agent_id, job_id, item_id);
            }
        }
    }

    /// Queues the push of a task handed to `agent_id`: with its input at
    /// once when held, else after the pass's input read.
    fn want_input(&mut self, task_id: Uuid, agent_id: Uuid, job_id: Uuid, item_id: Option<Uuid>) {
        match self.inputs.take(task_id) {
            Some(input) => self.inputs_held.push((task_id, agent_id, input)),
            None => self
                .inputs_wanted
                .push((task_id, agent_id, job_id, item_id)),
        }
    }

    /// The input of a task being assigned was read (see [`Self::read_inputs`]):
    /// push it to its agent.
    pub fn on_input_ready(
        &mut self,
        task_id: Uuid,
        agent_id: Uuid,
        result: Result<serde_json::Value, String>,
    ) {
        let Some(slot) = self.tasks.get(&task_id) else {
            return;
        };
        if slot.state != SlotState::Assigning(agent_id) {
            // Cancelled, failed or taken back meanwhile.
            return;
        }
        let input = match result {
            Ok(input) => input,
            Err(e) => {
                // The assignment is queued (or committed): fail this attempt
                // after it, so that the task is retried with backoff.
                tracing::error!(%task_id, error = %e, "could not read a task's input");
                let error = format!("the hub could not read the task input: {e}");
                self.hub_fail(task_id, error, Retry::Backoff);
                return;
            }
        };
        let accept_by = Instant::now() + self.timings_of(agent_id).accept_timeout;
        let (latency, capability, attempt, job_id, stage) = {
            let Some(slot) = self.tasks.get_mut(&task_id) else {
                return;
            };
            slot.state = SlotState::Assigned {
                agent: agent_id,
                accept_by,
            };
            (
                slot.ready_since.elapsed(),
                slot.capability.clone(),
                slot.attempt,
                slot.job_id,
                slot.stage,
            )
        };
        let Some(agent) = self.agents.get(&agent_id) else {
            return;
        };
        if let Some(Some(schema)) = agent
            .capabilities
            .get(&capability)
            .map(|c| c.input_schema.clone())
            && let Err(problem) = super::schema::check(&schema, &input)
        {
            let error = format!(
                "the task input does not match the input schema of `{capability}` declared by agent {}: {problem}",
                agent.name
            );
            self.hub_fail(task_id, error, Retry::No);
            return;
        }
        let message = HubMessage::Task(TaskAssignment {
            task_id,
            attempt: attempt as u32,
            job_id,
            capability: capability.clone(),
            stage: stage as u32,
            input,
            accept_by: Utc::now() + agent.timings.accept_timeout,
            correlation_id: format!("{job_id}/{task_id}/{attempt}"),
        });
        if crate::telemetry::links::enabled() {
            // The task's place in its job's trace; the agent's frames about
            // it are its children.
            let span = tracing::info_span!("dispatch", %job_id, %task_id, %agent_id, attempt, stage, capability = %capability, agent = %agent.name, waited_ms = latency.as_millis() as u64);
            crate::telemetry::links::follow(&span, job_id);
            crate::telemetry::links::remember(task_id, &span);
        }
        if agent.push(frame(&message)) {
            self.handle
                .throughput
                .dispatched(Utc::now(), latency.as_secs_f64() * 1000.0);
            metrics::histogram!("switchyard_dispatch_latency_seconds", "capability" => capability)
                .record(latency.as_secs_f64());
        } else {
            tracing::warn!(%task_id, agent = %agent.name, "the agent's session is gone or not reading; the accept timeout will take the task back");
        }
    }

    /// The store recorded (or refused) an assignment, usually after the
    /// task was pushed.
    pub fn on_assign_done(
        &mut self,
        task_id: Uuid,
        agent_id: Uuid,
        attempt: i32,
        result: Result<(), StoreError>,
    ) {
        let awaited = self.awaiting_commit.remove(&task_id);
        let error = match result {
            Ok(()) => {
                // Durable now: a push that waited for it goes out.
                if let Some((agent, job_id, item_id)) = awaited
                    && self.tasks.get(&task_id).is_some_and(|slot| {
                        slot.attempt == attempt && slot.state == SlotState::Assigning(agent)
                    })
                {
                    self.want_input(task_id, agent, job_id, item_id);
                }
                return;
            }
            Err(error) => error,
        };
        let Some(slot) = self.tasks.get(&task_id) else {
            return;
        };
        if slot.attempt != attempt || slot.state.holder() != Some(agent_id) {
            // Settled otherwise meanwhile (cancelled, failed, finished).
            return;
        }
        // The agent may have the task already: its attempt does not exist.
        if let Some(agent) = self.agents.get(&agent_id) {
            agent.push(frame(&HubMessage::Cancel(Cancel {
                task_id,
                attempt: attempt as u32,
                reason: format!("the assignment could not be recorded: {error}"),
            })));
        }
        match error {
            StoreError::Conflict { message } | StoreError::Corrupt(message) => {
                tracing::info!(%task_id, %message, "assignment refused by the store; dropping the task from memory");
                self.release_holder(task_id);
                self.forget(task_id);
            }
            e => {
                tracing::error!(%task_id, error = %e, "could not record an assignment; retrying in a second");
                if let Some(slot) = self.tasks.get_mut(&task_id) {
                    slot.attempt = attempt - 1;
                }
                self.retry_assignment_later(task_id);
            }
        }
    }

    /// Takes a task back from the agent it was being assigned to and tries
    /// again in a second.
    fn retry_assignment_later(&mut self, task_id: Uuid) {
        self.release_holder(task_id);
        let at = Instant::now() + Duration::from_secs(1);
        if let Some(slot) = self.tasks.get_mut(&task_id) {
            slot.state = SlotState::Delayed(at);
        }
        self.delayed.insert((at, task_id));
    }

    /// A job was cancelled: forget its tasks and tell the agents running them.
    pub fn on_cancelled(&mut self, task_ids: Vec<Uuid>, reason: &str) {
        for task_id in task_ids {
            let Some(slot) = self.tasks.get(&task_id) else {
                tracing::debug!(%task_id, "cancelled task was not in memory");
                continue;
            };
            tracing::debug!(%task_id, state = ?slot.state, "cancelling a task");
            let attempt = slot.attempt;
            if let Some(agent_id) = slot.state.holder()
                && let Some(agent) = self.agents.get(&agent_id)
            {
                let cancel = HubMessage::Cancel(Cancel {
                    task_id,
                    attempt: attempt as u32,
                    reason: reason.to_owned(),
                });
                agent.push(frame(&cancel));
            }
            self.release_holder(task_id);
            self.forget(task_id);
        }
    }

    /// Records a failure the hub decided (timeout, lost agent, bad input).
    pub fn hub_fail(&mut self, task_id: Uuid, error: String, retry: Retry) {
        let Some(slot) = self.tasks.get_mut(&task_id) else {
            return;
        };
        let holder = slot.state.holder();
        // The agent that held it must stop: its attempt is over.
        if let Some(agent) = holder.and_then(|id| self.agents.get(&id)) {
            let cancel = HubMessage::Cancel(Cancel {
                task_id,
                attempt: slot.attempt as u32,
                reason: error.clone(),
            });
            agent.push(frame(&cancel));
        }
        slot.state = SlotState::Failing(holder);
        let failure = TaskFailure {
            task_id,
            attempt: slot.attempt,
            agent_id: None,
            error,
            retry: match retry {
                Retry::No => None,
                Retry::Backoff => Some(self.settings.retry),
                // The agent, not the task, failed: the grace period was the wait.
                Retry::Immediately => Some(crate::domain::RetryPolicy {
                    initial: Duration::ZERO,
                    factor: 1.0,
                    max: Duration::ZERO,
                }),
            },
        };
        let store = self.store.clone();
        self.spawn_store(
            async move { store.fail_task(failure).await },
            move |result| Command::HubFailDone {
                task_id,
                holder,
                result,
            },
        );
    }

    pub fn on_hub_fail_done(
        &mut self,
        task_id: Uuid,
        holder: Option<Uuid>,
        result: Result<crate::domain::TaskOutcome, StoreError>,
    ) {
        match result {
            Ok(outcome) => self.handle_command_finished(holder, task_id, outcome),
            Err(e) => {
                // Someone else moved the task first (the agent completed it, the
                // job was cancelled): read the store's view and follow it.
                tracing::debug!(%task_id, error = %e, "hub decision refused; reconciling with the store");
                let Some(slot) = self.tasks.get(&task_id) else {
                    return;
                };
                let job_id = slot.job_id;
                let store = self.store.clone();
                self.spawn_store(
                    async move { store.list_tasks(job_id).await },
                    move |result| {
                        Command::Reconcile(
                            result
                                .unwrap_or_default()
                                .into_iter()
                                .filter(|t| t.id == task_id)
                                .collect(),
                        )
                    },
                );
            }
        }
    }

    fn handle_command_finished(
        &mut self,
        holder: Option<Uuid>,
        task_id: Uuid,
        outcome: crate::domain::TaskOutcome,
    ) {
        // A hub-decided failure counts against the agent that held the task.
        let _ = self.tx.send(Command::Finished {
            agent_id: holder,
            task_id,
            outcome,
            success: holder.map(|_| false),
        });
    }

    pub fn on_started(&mut self, agent_id: Uuid, task: Task) {
        let lease_until = Instant::now() + self.timings_of(agent_id).lease;
        if let Some(slot) = self.tasks.get_mut(&task.id)
            && slot.state != SlotState::Finishing
        {
            slot.attempt = task.attempt;
            slot.state = SlotState::Running {
                agent: agent_id,
                lease_until,
            };
            slot.started_at = Some(Instant::now());
        }
    }

    pub fn on_lease_extended(&mut self, agent_id: Uuid, task_id: Uuid, attempt: i32) {
        let lease_until = Instant::now() + self.timings_of(agent_id).lease;
        if let Some(slot) = self.tasks.get_mut(&task_id)
            && slot.attempt == attempt
            && slot.state.holder() == Some(agent_id)
        {
            slot.state = SlotState::Running {
                agent: agent_id,
                lease_until,
            };
        }
    }

    /// The agent sent its result for an attempt it holds: free its slot now
    /// (the next task can be pushed while the result commits) and wait for
    /// the store's answer (`Finished`) to settle the task.
    pub fn on_released(&mut self, agent_id: Uuid, task_id: Uuid, attempt: i32) {
        let Some(slot) = self.tasks.get_mut(&task_id) else {
            return;
        };
        if slot.attempt != attempt || slot.state.holder() != Some(agent_id) {
            return;
        }
        slot.state = SlotState::Finishing;
        let capability = slot.capability.clone();
        if let Some(agent) = self.agents.get_mut(&agent_id) {
            agent.release(task_id, &capability);
            self.dirty.insert(capability);
            self.publish_agent(agent_id);
        }
    }

    /// A released result was refused as transient: the agent holds the task
    /// again (it sends the result again) under a fresh lease.
    pub fn on_reheld(&mut self, agent_id: Uuid, task_id: Uuid, attempt: i32) {
        let lease = self.timings_of(agent_id).lease;
        let Some(slot) = self.tasks.get_mut(&task_id) else {
            return;
        };
        if slot.attempt != attempt || slot.state != SlotState::Finishing {
            return;
        }
        slot.state = SlotState::Running {
            agent: agent_id,
            lease_until: Instant::now() + lease,
        };
        let capability = slot.capability.clone();
        if let Some(agent) = self.agents.get_mut(&agent_id) {
            agent.hold(task_id, &capability);
            self.publish_agent(agent_id);
        }
    }
}
