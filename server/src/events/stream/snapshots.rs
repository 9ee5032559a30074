//! The `agents` and `stats` topics: snapshots of the dispatcher's published
//! state (`HubHandle::live` and `HubHandle::queues`), read without waiting on
//! the dispatcher. A connection builds each at most once per second and sends
//! the same text to each of its subscriptions.

use std::collections::BTreeMap;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::domain::{AgentHealth, AgentSessionState};
use crate::hub::throughput::Bucket;
use crate::hub::{HubHandle, LiveAgent, QueueStats};

/// Agents by session state and health, as the `stats` topic shows them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AgentCounts {
    pub connected: u64,
    pub draining: u64,
    /// Not connected: lost (waiting to reconnect) or offline.
    pub offline: u64,
    /// Connected or draining, and reporting DEGRADED health.
    pub degraded: u64,
}

/// The live agents as a JSON array, by name then id (a stable order, so two
/// snapshots of the same state are the same text).
pub fn agents_json(hub: &HubHandle) -> String {
    let mut agents: Vec<LiveAgent> = hub.live.iter().map(|a| a.value().clone()).collect();
    agents.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    serde_json::to_string(&agents).unwrap_or_else(|_| "[]".into())
}

/// `{"type":"agents","id":..,"agents":[..]}`.
pub fn agents_frame(id: &str, agents_json: &str) -> String {
    let id = Value::from(id).to_string();
    format!(r#"{{"type":"agents","id":{id},"agents":{agents_json}}}"#)
}

/// Counts of the live agents.
pub fn agent_counts(hub: &HubHandle) -> AgentCounts {
    let mut counts = AgentCounts::default();
    for agent in hub.live.iter() {
        let up = match agent.session_state {
            AgentSessionState::Connected => {
                counts.connected += 1;
                true
            }
            AgentSessionState::Draining => {
                counts.draining += 1;
                true
            }
            AgentSessionState::Disconnected | AgentSessionState::Offline => {
                counts.offline += 1;
                false
            }
        };
        if up && agent.health == AgentHealth::Degraded {
            counts.degraded += 1;
        }
    }
    counts
}

/// The `stats` frame without its subscription id.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Stats {
    pub queues: BTreeMap<String, QueueStats>,
    pub agents: AgentCounts,
    /// Tasks finished and dispatched in the last completed second.
    pub throughput: Bucket,
    pub latest_seq: i64,
    pub at: String,
}

impl Stats {
    pub fn now(hub: &HubHandle, latest_seq: i64) -> Stats {
        let now = Utc::now();
        Stats {
            queues: hub
                .queues
                .iter()
                .map(|q| (q.key().clone(), *q.value()))
                .collect(),
            agents: agent_counts(hub),
            throughput: hub.throughput.last_second(now),
            latest_seq,
            at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
        }
    }

    /// `{"type":"stats","id":..,"queues":..,"agents":..,"latest_seq":..,"at":..}`.
    pub fn frame(&self, id: &str) -> String {
        serde_json::json!({
            "type": "stats",
            "id": id,
            "queues": self.queues,
            "agents": self.agents,
            "throughput": self.throughput,
            "latest_seq": self.latest_seq,
            "at": self.at,
        })
        .to_string()
    }
}
