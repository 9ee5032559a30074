//! Agents coming and going, heartbeats, timers, recovery and shutdown.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use switchyard_agent::protocol::{HubMessage, PROTOCOL_VERSION, Shutdown, TaskRef, Welcome};
use tokio::sync::oneshot;
use tokio::time::Instant;
use uuid::Uuid;

use super::DrainError;
use super::actor::Dispatcher;
use super::assign::{Retry, frame};
use super::command::{Outbound, Registration, ResumedTask};
use super::registry::{AgentEntry, SlotState, TaskSlot};
use crate::domain::{AgentHealth, AgentSessionState, AgentSnapshot, Task, TaskStatus};

impl Dispatcher {
    pub fn on_register(&mut self, registration: Registration) {
        let Registration {
            record,
            session_id,
            timings,
            capabilities,
            resume,
            adopt,
            out,
            reply,
        } = registration;
        let now = Instant::now();
        let agent_id = record.id;
        let grace = now + timings.reconnect_grace;
        for task in &adopt {
            if !self.tasks.contains_key(&task.id) {
                tracing::info!(task_id = %task.id, %agent_id, "taking over a task its agent held through another node");
                self.hold_orphan(task, agent_id, grace);
            }
        }
        if let Some(old) = self.agents.get(&agent_id)
            && let Some(old_out) = &old.out
            && old.session_id != session_id
        {
            let _ = old_out.try_send(Outbound::close(
                "replaced by a newer session of the same agent",
            ));
        }
        for (name, limits) in &capabilities {
            self.handle
                .schemas
                .register(name, &record.name, limits.input_schema.clone());
        }
        let previous = self.agents.remove(&agent_id);
        let mut entry = AgentEntry {
            id: agent_id,
            name: record.name.clone(),
            session_id,
            out: Some(out),
            welcomed: false,
            state: AgentSessionState::Connected,
            health: AgentHealth::Active,
            capabilities,
            running: HashMap::new(),
            tasks: Default::default(),
            trust: previous.as_ref().map_or(record.trust_score, |p| p.trust),
            load: 0.0,
            last_seen: now,
            last_heartbeat_at: Some(Utc::now()),
            timings: timings.clone(),
            dirty: true,
        };

        // Tasks this agent held: resume the ones it still runs, take back the rest.
        let held: Vec<(Uuid, i32, String, SlotState)> = self
            .tasks
            .values()
            .filter(|slot| slot.state.holder() == Some(agent_id))
            .map(|slot| (slot.id, slot.attempt, slot.capability.clone(), slot.state))
            .collect();
        let mut resumed = Vec::new();
        let mut lost = Vec::new();
        for (task_id, attempt, capability, state) in held {
            let wants = resume
                .iter()
                .any(|r| r.task_id == task_id && i64::from(r.attempt) == i64::from(attempt));
            let running = match state {
                SlotState::Running { .. } => true,
                SlotState::Orphaned { running, .. } => running,
                _ => false,
            };
            if wants && !matches!(state, SlotState::Failing(_)) {
                entry.hold(task_id, &capability);
                if let Some(slot) = self.tasks.get_mut(&task_id) {
                    slot.state = if running {
                        SlotState::Running {
                            agent: agent_id,
                            lease_until: now + timings.lease,
                        }
                    } else {
                        SlotState::Assigned {
                            agent: agent_id,
                            accept_by: now + timings.accept_timeout,
                        }
                    };
                }
                resumed.push(ResumedTask {
                    task_id,
                    attempt,
                    capability: capability.clone(),
                    running,
                });
            } else if !matches!(state, SlotState::Failing(_)) {
                entry.hold(task_id, &capability);
                lost.push(task_id);
            }
        }
        let caps: Vec<String> = entry.capabilities.keys().cloned().collect();
        self.agents.insert(agent_id, entry);
        for task_id in lost {
            self.hub_fail(
                task_id,
                "the agent reconnected without this task".into(),
                Retry::Immediately,
            );
        }
        self.dirty.extend(caps);
        self.publish_agent(agent_id);
        metrics::counter!("switchyard_agent_sessions_total").increment(1);
        let welcome = Welcome {
            protocol: PROTOCOL_VERSION,
            agent_id,
            session_id,
            heartbeat_interval_ms: timings.heartbeat_interval.as_millis() as u64,
            lease_ms: timings.lease.as_millis() as u64,
            accept_timeout_ms: timings.accept_timeout.as_millis() as u64,
            resumed: resumed
                .iter()
                .map(|r| TaskRef {
                    task_id: r.task_id,
                    attempt: r.attempt as u32,
                })
                .collect(),
            hubs: self.handle.node.peer_urls(),
        };
        let _ = reply.send((welcome, resumed));
    }

    /// The session queued its `welcome`: the agent may get tasks now.
    pub fn on_welcomed(&mut self, agent_id: Uuid, session_id: Uuid) {
        let Some(agent) = self.agents.get_mut(&agent_id) else {
            return;
        };
        if agent.session_id != session_id {
            return;
        }
        agent.welcomed = true;
        let caps: Vec<String> = agent.capabilities.keys().cloned().collect();
        self.dirty.extend(caps);
    }

    pub fn on_seen(&mut self, agent_id: Uuid, session_id: Uuid) {
        if let Some(agent) = self.agents.get_mut(&agent_id)
            && agent.session_id == session_id
        {
            agent.last_seen = Instant::now();
        }
    }

    pub fn on_heartbeat(
        &mut self,
        agent_id: Uuid,
        session_id: Uuid,
        health: AgentHealth,
        load: f64,
        at: DateTime<Utc>,
    ) {
        let Some(agent) = self.agents.get_mut(&agent_id) else {
            return;
        };
        if agent.session_id != session_id {
            return;
        }
        metrics::counter!("switchyard_heartbeats_total").increment(1);
        agent.last_seen = Instant::now();
        agent.last_heartbeat_at = Some(at);
        agent.load = load;
        agent.dirty = true;
        if agent.health != health {
            agent.health = health;
            let caps: Vec<String> = agent.capabilities.keys().cloned().collect();
            self.dirty.extend(caps);
        }
        self.publish_agent(agent_id);
    }

    pub fn on_drain(
        &mut self,
        agent_id: Uuid,
        reply: Option<oneshot::Sender<Result<(), DrainError>>>,
    ) {
        let result = match self.agents.get_mut(&agent_id) {
            None => Err(DrainError::NotFound(agent_id)),
            Some(agent) if agent.out.is_none() => Err(DrainError::NotConnected(agent_id)),
            Some(agent) => {
                if agent.state != AgentSessionState::Draining {
                    agent.state = AgentSessionState::Draining;
                    self.persist_state(agent_id, AgentSessionState::Draining);
                }
                Ok(())
            }
        };
        self.publish_agent(agent_id);
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }

    pub fn on_disconnected(&mut self, agent_id: Uuid, session_id: Uuid, clean: bool) {
        let Some(agent) = self.agents.get_mut(&agent_id) else {
            return;
        };
        if agent.session_id != session_id {
            return; // an older session, already replaced
        }
        agent.out = None;
        let until = Instant::now() + agent.timings.reconnect_grace;
        let state = if clean && agent.tasks.is_empty() {
            AgentSessionState::Disconnected
        } else {
            AgentSessionState::Offline
        };
        agent.state = state;
        agent.dirty = true;
        let held: Vec<Uuid> = agent.tasks.iter().copied().collect();
        for task_id in held {
            if let Some(slot) = self.tasks.get_mut(&task_id) {
                let running = matches!(slot.state, SlotState::Running { .. });
                if !matches!(slot.state, SlotState::Failing(_)) {
                    slot.state = SlotState::Orphaned {
                        agent: agent_id,
                        until,
                        running,
                    };
                }
            }
        }
        tracing::info!(%agent_id, state = state.as_str(), "agent session ended");
        self.persist_state(agent_id, state);
        self.publish_agent(agent_id);
    }

    fn persist_state(&self, agent_id: Uuid, state: AgentSessionState) {
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.set_agent_session_state(agent_id, state).await {
                tracing::warn!(%agent_id, error = %e, "could not record an agent's session state");
            }
        });
    }

    /// Timers: backoffs, accept timeouts, leases, lost agents, heartbeats.
    pub fn on_tick(&mut self) {
        let now = Instant::now();
        self.release_delayed(now);

        let mut fails = Vec::new();
        for slot in self.tasks.values() {
            match slot.state {
                SlotState::Assigned { accept_by, agent } if accept_by <= now => {
                    fails.push((
                        slot.id,
                        format!(
                            "not accepted within the accept timeout ({:?})",
                            self.timings_of(agent).accept_timeout
                        ),
                        Retry::Backoff,
                    ));
                }
                SlotState::Running { lease_until, agent } if lease_until <= now => {
                    fails.push((
                        slot.id,
                        format!(
                            "lease expired: no progress within {:?}",
                            self.timings_of(agent).lease
                        ),
                        Retry::Backoff,
                    ));
                }
                SlotState::Orphaned { until, agent, .. } if until <= now => {
                    let name = self
                        .agents
                        .get(&agent)
                        .map_or_else(|| agent.to_string(), |a| a.name.clone());
                    fails.push((
                        slot.id,
                        format!(
                            "agent {name} was lost and did not resume the task within {:?}",
                            self.timings_of(agent).reconnect_grace
                        ),
                        Retry::Immediately,
                    ));
                }
                _ => {}
            }
        }
        for (task_id, error, retry) in fails {
            tracing::info!(%task_id, %error, "taking a task back");
            self.hub_fail(task_id, error, retry);
        }

        let silent: Vec<(Uuid, std::time::Duration)> = self
            .agents
            .values()
            .filter_map(|a| {
                let deadline = a.timings.heartbeat_interval * a.timings.heartbeat_misses;
                (a.out.is_some() && now.saturating_duration_since(a.last_seen) > deadline)
                    .then_some((a.id, deadline))
            })
            .collect();
        for (agent_id, deadline) in silent {
            let session_id = self.agents.get(&agent_id).map(|agent| {
                if let Some(out) = &agent.out {
                    let bye = HubMessage::Shutdown(Shutdown {
                        reason: format!("no heartbeat for {deadline:?}; marked offline"),
                        reconnect_after_ms: None,
                        hubs: Vec::new(),
                    });
                    let _ = out.try_send(Outbound::Frame(frame(&bye)));
                    let _ = out.try_send(Outbound::Close {
                        code: 1008,
                        reason: "missed heartbeats".into(),
                    });
                }
                agent.session_id
            });
            if let Some(session_id) = session_id {
                tracing::warn!(%agent_id, "agent missed its heartbeats; marking it offline");
                self.on_disconnected(agent_id, session_id, false);
            }
        }

        self.update_gauges(now);
        if now.saturating_duration_since(self.last_snapshot)
            >= self
                .settings
                .heartbeat_interval
                .min(std::time::Duration::from_secs(2))
        {
            self.last_snapshot = now;
            self.save_snapshots();
        }
    }

    fn update_gauges(&mut self, now: Instant) {
        for (capability, queue) in &self.queues {
            metrics::gauge!("switchyard_queue_depth", "capability" => capability.clone())
                .set(queue.len() as f64);
            let oldest = queue
                .oldest_queued_at()
                .map_or(0.0, |at| (self.now_ms(now) - at).max(0) as f64 / 1000.0);
            metrics::gauge!("switchyard_queue_oldest_seconds", "capability" => capability.clone())
                .set(oldest);
            let stats = super::QueueStats {
                depth: queue.len() as u64,
                oldest_seconds: oldest,
            };
            self.handle.queues.insert(capability.clone(), stats);
        }
        let mut by_state: HashMap<&'static str, f64> = AgentSessionState::ALL
            .iter()
            .map(|s| (s.as_str(), 0.0))
            .collect();
        // Per-agent series: three registry lookups per agent, so once a
        // second rather than every tick (10,000 agents at 10 ticks a
        // second kept a core a third busy).
        let per_agent = now.saturating_duration_since(self.agent_gauges_at)
            >= std::time::Duration::from_secs(1);
        if per_agent {
            self.agent_gauges_at = now;
        }
        for agent in self.agents.values() {
            *by_state.entry(agent.state.as_str()).or_default() += 1.0;
            if !per_agent {
                continue;
            }
            metrics::gauge!("switchyard_agent_trust_score", "agent" => agent.name.clone())
                .set(agent.trust);
            metrics::gauge!("switchyard_agent_in_flight", "agent" => agent.name.clone())
                .set(agent.tasks.len() as f64);
            metrics::gauge!("switchyard_agent_heartbeat_age_seconds", "agent" => agent.name.clone())
                .set(now.saturating_duration_since(agent.last_seen).as_secs_f64());
        }
        for (state, n) in by_state {
            metrics::gauge!("switchyard_agents", "state" => state).set(n);
        }
        // Capabilities with queued work count too, so that "work and no
        // agent" shows as 0 rather than as a missing series.
        let mut by_capability: HashMap<&str, f64> =
            self.queues.keys().map(|c| (c.as_str(), 0.0)).collect();
        for agent in self.agents.values() {
            if agent.state == AgentSessionState::Connected {
                for capability in agent.capabilities.keys() {
                    *by_capability.entry(capability.as_str()).or_default() += 1.0;
                }
            }
        }
        for (capability, n) in by_capability {
            metrics::gauge!("switchyard_agents_by_capability", "capability" => capability.to_owned())
                .set(n);
        }
    }

    /// Heartbeats and trust reach the store in one batch, never one write each.
    fn save_snapshots(&mut self) {
        let snapshots: Vec<AgentSnapshot> = self
            .agents
            .values_mut()
            .filter(|a| a.dirty)
            .map(|a| {
                a.dirty = false;
                AgentSnapshot {
                    id: a.id,
                    last_heartbeat_at: a.last_heartbeat_at,
                    health: a.health,
                    trust_score: a.trust,
                    in_flight: a.in_flight() as i32,
                }
            })
            .collect();
        if snapshots.is_empty() {
            return;
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.save_agent_snapshots(&snapshots).await {
                tracing::warn!(error = %e, "could not save agent snapshots");
            }
        });
    }

    /// After a restart: pending tasks are queued; tasks held by agents wait
    /// the grace period for their agents to reconnect and resume them.
    pub fn on_recovered(&mut self, tasks: Vec<Task>, at: Instant) {
        let until = at + self.settings.reconnect_grace;
        let (mut queued, mut held) = (0, 0);
        for task in tasks {
            match (task.status, task.agent_id) {
                (TaskStatus::Pending, _) => {
                    queued += 1;
                    self.enqueue(&task);
                }
                // With other nodes alive, a held task may be held through
                // one of them: its node (or, if that node died, the
                // leader's monitor once the lease expires) settles it.
                (TaskStatus::Assigned | TaskStatus::Running, Some(agent))
                    if self.recover_held && !self.tasks.contains_key(&task.id) =>
                {
                    held += 1;
                    self.hold_orphan(&task, agent, until);
                }
                _ => {}
            }
        }
        if queued + held > 0 {
            tracing::info!(queued, held, "reloaded unfinished tasks");
        }
    }

    /// Keeps a task an agent held before this node knew it (a restart, or
    /// another node) as waiting for that agent until `until`: it resumes
    /// it, or the task is taken back.
    fn hold_orphan(&mut self, task: &Task, agent: Uuid, until: Instant) {
        let state = SlotState::Orphaned {
            agent,
            until,
            running: task.status == TaskStatus::Running,
        };
        self.tasks
            .insert(task.id, TaskSlot::of(task, state, Instant::now()));
    }

    /// Tells every agent the hub is going away and writes a last snapshot.
    pub async fn on_shutdown(&mut self) {
        let hubs = self.handle.node.peer_urls();
        let bye = frame(&HubMessage::Shutdown(Shutdown {
            reason: "the hub is shutting down".into(),
            // With other nodes alive, move there at once (with jitter);
            // alone, come back when this hub has restarted.
            reconnect_after_ms: Some(if hubs.is_empty() { 1000 } else { 0 }),
            hubs,
        }));
        for agent in self.agents.values() {
            if let Some(out) = &agent.out {
                let _ = out.try_send(Outbound::Frame(bye.clone()));
                let _ = out.try_send(Outbound::Close {
                    code: 1001,
                    reason: "hub shutdown".into(),
                });
            }
        }
        let snapshots: Vec<AgentSnapshot> = self
            .agents
            .values()
            .map(|a| AgentSnapshot {
                id: a.id,
                last_heartbeat_at: a.last_heartbeat_at,
                health: a.health,
                trust_score: a.trust,
                in_flight: a.in_flight() as i32,
            })
            .collect();
        if !snapshots.is_empty()
            && let Err(e) = self.store.save_agent_snapshots(&snapshots).await
        {
            tracing::warn!(error = %e, "could not save agent snapshots at shutdown");
        }
    }
}
