//! `/v1/agents`: the agent WebSocket, and the REST view of agents.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Permission;
use crate::domain::{AgentRecord, AgentSessionState};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{Caller, parse_id};
use crate::hub::session::{self, SessionContext};
use crate::hub::{DrainError, LiveAgent};
use crate::state::AppState;

/// Per-connection read and write buffer of an agent session, in bytes
/// (tungstenite's default is 128 KiB each way; frames larger than this still
/// work, the buffer grows for them).
const SESSION_BUFFER: usize = 4 * 1024;

/// An agent as the API shows it: stored identity plus live state.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentView {
    pub id: Uuid,
    pub name: String,
    pub version: String,
    pub labels: BTreeMap<String, String>,
    /// connected, draining, disconnected or offline.
    pub session_state: String,
    /// active or degraded.
    pub health: String,
    pub trust_score: f64,
    pub in_flight: u32,
    pub capacity: u32,
    pub load: f64,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub capabilities: Vec<CapabilityView>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CapabilityView {
    pub name: String,
    pub version: String,
    pub max_concurrency: u32,
    #[schema(value_type = Object)]
    pub pricing: serde_json::Value,
    /// A JSON Schema: an object, or `true`/`false`.
    pub input_schema: serde_json::Value,
    /// A JSON Schema: an object, or `true`/`false`.
    pub output_schema: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentList {
    pub agents: Vec<AgentView>,
}

/// An agent as this node sees it: its live session here, or the stored
/// record. A stored `connected`/`draining` holds while the node the session
/// is on (`peer`) is alive; otherwise the session is gone.
fn view(record: AgentRecord, live: Option<LiveAgent>, peer: bool) -> AgentView {
    let capacity = record.capabilities.iter().map(|c| c.max_concurrency).sum();
    let capabilities = record
        .capabilities
        .into_iter()
        .map(|c| CapabilityView {
            name: c.name,
            version: c.version,
            max_concurrency: c.max_concurrency,
            pricing: serde_json::to_value(c.pricing).unwrap_or_default(),
            input_schema: c.input_schema,
            output_schema: c.output_schema,
        })
        .collect();
    match live {
        Some(live) => AgentView {
            id: record.id,
            name: record.name,
            version: record.version,
            labels: record.labels,
            session_state: live.session_state.as_str().to_owned(),
            health: live.health.as_str().to_owned(),
            trust_score: live.trust_score,
            in_flight: live.in_flight,
            capacity: live.capacity,
            load: live.load,
            last_heartbeat_at: live.last_heartbeat_at,
            capabilities,
            created_at: record.created_at,
        },
        None => AgentView {
            id: record.id,
            name: record.name,
            version: record.version,
            labels: record.labels,
            // Known from an earlier run of the hub, not connected to this one.
            session_state: if !peer
                && (record.session_state.as_str() == "connected"
                    || record.session_state.as_str() == "draining")
            {
                "offline".to_owned()
            } else {
                record.session_state.as_str().to_owned()
            },
            health: record.health.as_str().to_owned(),
            trust_score: record.trust_score,
            in_flight: 0,
            capacity,
            load: 0.0,
            last_heartbeat_at: record.last_heartbeat_at,
            capabilities,
            created_at: record.created_at,
        },
    }
}

/// Connect as an agent (WebSocket upgrade; token role `agent`, sub = agent name).
#[utoipa::path(get, path = "/v1/agents/connect", operation_id = "agent_connect", tag = "agents",
    responses((status = 101, description = "Switching protocols; see docs/protocol.md"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn connect(
    State(state): State<AppState>,
    caller: Caller,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let claims = caller.require(Permission::ConnectAgent)?.clone();
    let ws = ws.map_err(|e| {
        ApiError::bad_request(
            "websocket_required",
            format!(
                "this endpoint speaks the agent protocol over a WebSocket upgrade: {}",
                e.body_text()
            ),
        )
    })?;
    // The session keeps the hub's timings as they are now; a reload changes
    // them for sessions that connect later.
    let timings = state.settings.get().hub.clone();
    let max = timings.max_frame_bytes;
    let ctx = SessionContext {
        hub: state.hub.for_session(timings),
        store: state.store.clone(),
        claims,
        shutdown: state.shutdown.clone(),
    };
    Ok(ws
        .max_frame_size(max)
        .max_message_size(max)
        // tungstenite reads into a 128 KiB buffer per connection by default;
        // agent frames are small, and 10,000 idle sessions must stay cheap.
        .read_buffer_size(SESSION_BUFFER)
        .write_buffer_size(SESSION_BUFFER)
        .on_upgrade(move |socket| session::run(socket, ctx)))
}

/// Every known agent, with live state for the connected ones.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", responses((status = 200, body = AgentList)), security(("bearer" = [])))]
pub async fn list_agents(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<AgentList>, ApiError> {
    caller.require(Permission::Read)?;
    let records = state.store.list_agents().await?;
    let agents = records.into_iter().map(|r| {
        let (live, peer) = seen(&state, &r);
        view(r, live, peer)
    });
    Ok(Json(AgentList {
        agents: agents.collect(),
    }))
}

/// One agent.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents", params(("id" = Uuid, Path)),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    caller.require(Permission::Read)?;
    let id = parse_id("agent", &id)?;
    let record = state
        .store
        .get_agent(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("agent {id} not found")))?;
    let (live, peer) = seen(&state, &record);
    Ok(Json(view(record, live, peer)))
}

/// Whether `node` is another node alive now, as the store has it (read
/// fresh: a drain must not depend on when this node last looked).
async fn on_live_peer(state: &AppState, node: Option<Uuid>) -> Result<bool, ApiError> {
    let Some(node) = node.filter(|n| *n != state.node.id()) else {
        return Ok(false);
    };
    let fresh = Utc::now()
        - chrono::Duration::from_std(state.settings.get().node_timeout).unwrap_or_default();
    Ok(state
        .store
        .list_nodes()
        .await?
        .iter()
        .any(|n| n.id == node && n.stopped_at.is_none() && n.heartbeat_at >= fresh))
}

/// This node's live view of an agent, unless its session is on another
/// live node (then the stored record speaks for it), and whether it is.
fn seen(state: &AppState, record: &AgentRecord) -> (Option<LiveAgent>, bool) {
    let peer = record.node_id.is_some_and(|n| state.node.is_live_peer(n));
    let live = state
        .hub
        .live
        .get(&record.id)
        .map(|l| l.clone())
        .filter(|l| {
            !peer
                || matches!(
                    l.session_state,
                    AgentSessionState::Connected | AgentSessionState::Draining
                )
        });
    (live, peer)
}

/// Stop giving an agent new work; its running work finishes.
///
/// An agent connected to another node of the cluster is marked draining in
/// the store (`agent.draining`), and its node, which follows the event log,
/// stops giving it work.
#[utoipa::path(post, path = "/v1/agents/{id}/drain", tag = "agents", params(("id" = Uuid, Path)),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody), (status = 409, description = "Not connected", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn drain_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    caller.require(Permission::Admin)?;
    let id = parse_id("agent", &id)?;
    match state.hub.drain(id).await {
        Ok(()) => {}
        Err(DrainError::NotFound(_)) => {
            return Err(match state.store.get_agent(id).await? {
                // Connected to another node: the store tells it.
                Some(agent)
                    if matches!(
                        agent.session_state,
                        AgentSessionState::Connected | AgentSessionState::Draining
                    ) && on_live_peer(&state, agent.node_id).await? =>
                {
                    state
                        .store
                        .set_agent_session_state(id, AgentSessionState::Draining)
                        .await?;
                    let record = state
                        .store
                        .get_agent(id)
                        .await?
                        .ok_or_else(|| ApiError::NotFound(format!("agent {id} not found")))?;
                    return Ok(Json(view(record, None, true)));
                }
                Some(_) => ApiError::Conflict {
                    code: "not_connected",
                    message: format!(
                        "agent {id} is not connected; only connected agents can be drained"
                    ),
                },
                None => ApiError::NotFound(format!("agent {id} not found")),
            });
        }
        Err(e @ DrainError::NotConnected(_)) => {
            return Err(ApiError::Conflict {
                code: "not_connected",
                message: e.to_string(),
            });
        }
    }
    get_agent(State(state), caller, Path(id.to_string())).await
}
