//! Agents, shared by both backends: row shapes, row -> record conversion,
//! `agent.*` events and the normalisation of what is written.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::types::Json;
use switchyard_agent::protocol::Pricing;
use uuid::Uuid;

use super::parse_status;
use crate::domain::{
    AgentHealth, AgentRecord, AgentSessionState, AgentSnapshot, CapabilityRecord, EventType,
    NewEvent,
};
use crate::store::StoreError;

/// The columns of an agent row as read by [`AgentRow`].
/// Use as `concat!("SELECT ", agent_columns!(), " FROM agents WHERE ...")`.
macro_rules! agent_columns {
    () => {
        "id, name, version, labels, session_state, health, trust_score, last_heartbeat_at, \
         created_at, updated_at, node_id"
    };
}
pub(crate) use agent_columns;

/// The columns of a capability row as read by [`CapabilityRow`].
macro_rules! capability_columns {
    () => {
        "agent_id, name, version, input_schema, output_schema, pricing, max_concurrency"
    };
}
pub(crate) use capability_columns;

/// An `agents` row.
#[derive(sqlx::FromRow)]
pub(crate) struct AgentRow {
    pub id: Uuid,
    pub name: String,
    pub version: String,
    pub labels: Json<BTreeMap<String, String>>,
    pub session_state: String,
    pub health: String,
    pub trust_score: f64,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub node_id: Option<Uuid>,
}

/// A `capabilities` row.
#[derive(sqlx::FromRow)]
pub(crate) struct CapabilityRow {
    pub agent_id: Uuid,
    pub name: String,
    pub version: String,
    pub input_schema: serde_json::Value,
    pub output_schema: serde_json::Value,
    pub pricing: Option<Json<Pricing>>,
    pub max_concurrency: i32,
}

/// Agents with their capabilities (each agent's sorted by name), in the
/// order of `agents`.
pub(crate) fn into_agents(
    agents: Vec<AgentRow>,
    capabilities: Vec<CapabilityRow>,
) -> Result<Vec<AgentRecord>, StoreError> {
    let mut by_agent: HashMap<Uuid, Vec<CapabilityRecord>> = HashMap::new();
    for c in capabilities {
        by_agent
            .entry(c.agent_id)
            .or_default()
            .push(CapabilityRecord {
                name: c.name,
                version: c.version,
                input_schema: c.input_schema,
                output_schema: c.output_schema,
                pricing: c.pricing.map(|p| p.0).unwrap_or_default(),
                max_concurrency: u32::try_from(c.max_concurrency).map_err(|_| {
                    StoreError::Corrupt(format!(
                        "agent {}: capability max_concurrency {}",
                        c.agent_id, c.max_concurrency
                    ))
                })?,
            });
    }
    agents
        .into_iter()
        .map(|a| {
            let mut capabilities = by_agent.remove(&a.id).unwrap_or_default();
            capabilities.sort_by(|x, y| x.name.cmp(&y.name));
            Ok(AgentRecord {
                session_state: parse_status::<AgentSessionState>(&a.session_state, "agent", a.id)?,
                health: parse_health(&a.health, a.id)?,
                id: a.id,
                name: a.name,
                version: a.version,
                labels: a.labels.0,
                trust_score: a.trust_score,
                last_heartbeat_at: a.last_heartbeat_at,
                capabilities,
                created_at: a.created_at,
                updated_at: a.updated_at,
                node_id: a.node_id,
            })
        })
        .collect()
}

/// Parses a stored health; an unknown value means the row is corrupt.
fn parse_health(text: &str, id: Uuid) -> Result<AgentHealth, StoreError> {
    [AgentHealth::Active, AgentHealth::Degraded]
        .into_iter()
        .find(|h| h.as_str() == text)
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "agent {id}: `{text}` is not a valid agent health; expected one of: active, degraded"
            ))
        })
}

/// Capabilities as stored: one per name (the first declaration wins), sorted
/// by name, `max_concurrency` at least 1.
pub(crate) fn normalized_capabilities(caps: &[CapabilityRecord]) -> Vec<CapabilityRecord> {
    let mut caps = caps.to_vec();
    caps.sort_by(|a, b| a.name.cmp(&b.name));
    caps.dedup_by(|later, first| later.name == first.name);
    for c in &mut caps {
        c.max_concurrency = c.max_concurrency.clamp(1, i32::MAX as u32);
    }
    caps
}

/// The snapshots to write: the last one per agent, sorted by id (a fixed
/// lock order, so two concurrent flushes cannot deadlock).
pub(crate) fn latest_snapshots(snapshots: &[AgentSnapshot]) -> Vec<&AgentSnapshot> {
    let mut latest: HashMap<Uuid, &AgentSnapshot> = HashMap::new();
    for s in snapshots {
        latest.insert(s.id, s);
    }
    let mut latest: Vec<&AgentSnapshot> = latest.into_values().collect();
    latest.sort_by_key(|s| s.id);
    latest
}

/// The event of an agent entering `state`.
pub(crate) fn session_event_type(state: AgentSessionState) -> EventType {
    match state {
        AgentSessionState::Connected => EventType::AgentConnected,
        AgentSessionState::Draining => EventType::AgentDraining,
        AgentSessionState::Disconnected => EventType::AgentDisconnected,
        AgentSessionState::Offline => EventType::AgentOffline,
    }
}

/// An `agent.*` event: `{agent_id, name}`, belonging to no job.
pub(crate) fn agent_event(kind: EventType, agent_id: Uuid, name: &str) -> NewEvent {
    NewEvent {
        job_id: None,
        kind,
        payload: json!({ "agent_id": agent_id, "name": name }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(name: &str, max: u32) -> CapabilityRecord {
        CapabilityRecord {
            name: name.into(),
            version: String::new(),
            input_schema: json!({}),
            output_schema: json!({}),
            pricing: Pricing::default(),
            max_concurrency: max,
        }
    }

    #[test]
    fn capabilities_are_a_sorted_set_with_a_floor() {
        let caps = normalized_capabilities(&[cap("b", 0), cap("a", 2), cap("b", 5)]);
        let got: Vec<(&str, u32)> = caps
            .iter()
            .map(|c| (c.name.as_str(), c.max_concurrency))
            .collect();
        assert_eq!(got, [("a", 2), ("b", 1)]);
    }

    #[test]
    fn last_snapshot_per_agent_wins() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let snap = |id, in_flight| AgentSnapshot {
            id,
            last_heartbeat_at: None,
            health: AgentHealth::Active,
            trust_score: 1.0,
            in_flight,
        };
        let all = [snap(b, 1), snap(a, 2), snap(b, 3)];
        let got: Vec<(Uuid, i32)> = latest_snapshots(&all)
            .iter()
            .map(|s| (s.id, s.in_flight))
            .collect();
        assert_eq!(got, [(a, 2), (b, 3)]);
    }

    #[test]
    fn unknown_health_is_corrupt() {
        assert_eq!(
            parse_health("degraded", Uuid::nil()).ok(),
            Some(AgentHealth::Degraded)
        );
        assert!(matches!(
            parse_health("sick", Uuid::nil()),
            Err(StoreError::Corrupt(_))
        ));
    }
}
