//! Agents: who is connected and what they can do.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchyard_agent::protocol::{Capability, Pricing};
use uuid::Uuid;

use super::status::{AgentHealth, AgentSessionState};

/// An agent as stored (identity, declared capabilities, last known state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: Uuid,
    pub name: String,
    pub version: String,
    pub labels: BTreeMap<String, String>,
    pub session_state: AgentSessionState,
    pub health: AgentHealth,
    pub trust_score: f64,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub capabilities: Vec<CapabilityRecord>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The node its last session was on (see [`AgentRegistration::node_id`]).
    pub node_id: Option<Uuid>,
}

/// A capability declared by an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapabilityRecord {
    pub name: String,
    pub version: String,
    pub input_schema: serde_json::Value,
    pub output_schema: serde_json::Value,
    pub pricing: Pricing,
    pub max_concurrency: u32,
}

impl From<&Capability> for CapabilityRecord {
    fn from(c: &Capability) -> Self {
        Self {
            name: c.name.clone(),
            version: c.version.clone(),
            input_schema: c.input_schema.clone(),
            output_schema: c.output_schema.clone(),
            pricing: c.pricing.clone(),
            max_concurrency: c.max_concurrency,
        }
    }
}

/// What a `hello` registers: stored by name, so a reconnecting agent keeps its id.
#[derive(Debug, Clone)]
pub struct AgentRegistration {
    /// Used only when the name is new.
    pub new_id: Uuid,
    pub name: String,
    pub version: String,
    pub labels: BTreeMap<String, String>,
    pub capabilities: Vec<CapabilityRecord>,
    /// The node of the cluster the agent's session is on (`None` outside a
    /// hub, e.g. in store tests): if that node dies, the tasks the agent
    /// held through it are taken back once it has had time to move.
    pub node_id: Option<Uuid>,
}

/// A batch entry of in-memory agent state flushed to the store (heartbeats
/// never cost one write each).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSnapshot {
    pub id: Uuid,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub health: AgentHealth,
    pub trust_score: f64,
    pub in_flight: i32,
}
