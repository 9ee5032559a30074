//! `GET /v1/nodes`: the hub processes sharing this database (see
//! `docs/cluster.md`), which of them are alive, and which runs the monitor.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Permission;
use crate::cluster::MONITOR_LEASE;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::Caller;
use crate::state::AppState;
use crate::store::nodes::NodeRecord;

/// Routes of this area, merged by [`super::api`].
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_nodes))
}

/// One node.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NodeView {
    #[serde(flatten)]
    pub node: NodeRecord,
    /// Its heartbeat is younger than `node_timeout` and it has not stopped.
    pub alive: bool,
    /// It holds the monitor lease (sweeps and retention run there).
    pub leader: bool,
    /// It is the node answering this request.
    pub this: bool,
}

/// Every node, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NodeList {
    pub nodes: Vec<NodeView>,
    /// A node whose heartbeat is older than this is dead for the others.
    pub node_timeout_ms: u64,
    pub checked_at: DateTime<Utc>,
}

/// The cluster's nodes.
#[utoipa::path(get, path = "/v1/nodes", tag = "operations",
    responses((status = 200, body = NodeList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_nodes(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<NodeList>, ApiError> {
    caller.require(Permission::Read)?;
    let now = Utc::now();
    let timeout = state.settings.get().node_timeout;
    let fresh_after = now - chrono::Duration::from_std(timeout).unwrap_or_default();
    let leader: Option<Uuid> = state.store.lease_holder(MONITOR_LEASE, now).await?;
    let this = state.node.id();
    let nodes = state
        .store
        .list_nodes()
        .await?
        .into_iter()
        .map(|node| NodeView {
            alive: node.stopped_at.is_none() && node.heartbeat_at >= fresh_after,
            leader: leader == Some(node.id) || (node.id == this && state.node.leads()),
            this: node.id == this,
            node,
        })
        .collect();
    Ok(Json(NodeList {
        nodes,
        node_timeout_ms: timeout.as_millis() as u64,
        checked_at: now,
    }))
}
