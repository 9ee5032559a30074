//! `GET /v1/agents/health`: agents by session state and health, the ones
//! that need attention (and why), and capabilities with queued work that no
//! connected agent offers.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{AgentHealth, AgentSessionState};
use crate::state::AppState;
use crate::store::StoreError;

/// Below this trust score an agent needs attention.
pub const LOW_TRUST: f64 = 0.5;

/// An agent that went offline this recently is still worth a look.
pub const RECENTLY_GONE_HOURS: i64 = 1;

/// One agent that needs attention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentAttention {
    pub id: Uuid,
    pub name: String,
    pub session_state: String,
    pub health: String,
    pub trust_score: f64,
    pub in_flight: u32,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub reasons: Vec<String>,
}

/// Queued work nobody can take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnservedCapability {
    pub capability: String,
    /// Tasks waiting in its ready queue.
    pub depth: u64,
    pub oldest_seconds: f64,
}

/// The summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentsHealth {
    pub checked_at: DateTime<Utc>,
    pub total: usize,
    /// Agents per session state (connected, draining, disconnected, offline).
    pub by_state: BTreeMap<String, usize>,
    /// Connected agents per reported health (active, degraded).
    pub by_health: BTreeMap<String, usize>,
    pub attention: Vec<AgentAttention>,
    pub unserved_capabilities: Vec<UnservedCapability>,
}

/// Builds the summary from the stored agents and the dispatcher's live view.
pub async fn health(state: &AppState, now: DateTime<Utc>) -> Result<AgentsHealth, StoreError> {
    let records = state.store.list_agents().await?;
    let mut by_state: BTreeMap<String, usize> = AgentSessionState::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    let mut by_health: BTreeMap<String, usize> = [AgentHealth::Active, AgentHealth::Degraded]
        .iter()
        .map(|h| (h.as_str().to_owned(), 0))
        .collect();
    let late =
        Duration::from_std(state.settings.get().hub.heartbeat_interval * 2).unwrap_or_default();
    let mut attention = Vec::new();
    let mut served: HashSet<String> = HashSet::new();
    for record in &records {
        let live = state.hub.live.get(&record.id).map(|l| l.clone());
        // Not in this hub's memory: known from an earlier run, not connected now.
        let (session, health, trust, in_flight, heartbeat) = match &live {
            Some(l) => (
                l.session_state,
                l.health,
                l.trust_score,
                l.in_flight,
                l.last_heartbeat_at,
            ),
            None => (
                AgentSessionState::Offline,
                record.health,
                record.trust_score,
                0,
                record.last_heartbeat_at,
            ),
        };
        *by_state.entry(session.as_str().to_owned()).or_default() += 1;
        let connected = session == AgentSessionState::Connected;
        if connected {
            *by_health.entry(health.as_str().to_owned()).or_default() += 1;
            if let Some(l) = &live {
                served.extend(l.capabilities.iter().cloned());
            }
        }
        let mut reasons = Vec::new();
        if connected && health == AgentHealth::Degraded {
            reasons.push("reports degraded health".to_owned());
        }
        if trust < LOW_TRUST {
            reasons.push(format!(
                "trust score {trust:.2} is below {LOW_TRUST} (recent failures, timeouts or refused messages)"
            ));
        }
        if connected && heartbeat.is_some_and(|h| now - h > late) {
            reasons.push(format!(
                "no heartbeat for {}s (interval {}s)",
                heartbeat.map_or(0, |h| (now - h).num_seconds()),
                state.settings.get().hub.heartbeat_interval.as_secs()
            ));
        }
        match session {
            AgentSessionState::Disconnected if live.is_some() => reasons.push(
                "disconnected; its tasks wait for it to reconnect and resume them".to_owned(),
            ),
            AgentSessionState::Offline
                if heartbeat.is_some_and(|h| now - h < Duration::hours(RECENTLY_GONE_HOURS)) =>
            {
                reasons.push(format!(
                    "went offline within the last hour (last heartbeat {})",
                    heartbeat.map_or_else(String::new, |h| h.format("%H:%M:%S UTC").to_string())
                ));
            }
            _ => {}
        }
        if !reasons.is_empty() {
            attention.push(AgentAttention {
                id: record.id,
                name: record.name.clone(),
                session_state: session.as_str().to_owned(),
                health: health.as_str().to_owned(),
                trust_score: trust,
                in_flight,
                last_heartbeat_at: heartbeat,
                reasons,
            });
        }
    }
    let mut unserved: Vec<UnservedCapability> = state
        .hub
        .queues
        .iter()
        .filter(|q| q.depth > 0 && !served.contains(q.key()))
        .map(|q| UnservedCapability {
            capability: q.key().clone(),
            depth: q.depth,
            oldest_seconds: q.oldest_seconds,
        })
        .collect();
    unserved.sort_by(|a, b| a.capability.cmp(&b.capability));
    Ok(AgentsHealth {
        checked_at: now,
        total: records.len(),
        by_state,
        by_health,
        attention,
        unserved_capabilities: unserved,
    })
}
