//! The cluster's nodes and the roles one of them holds at a time.
//!
//! Several hubs on one Postgres database are a cluster with no other
//! setting: each registers a row here and renews its heartbeat; the others
//! judge it dead when the heartbeat is older than `node_timeout`. Work that
//! must run once per cluster (the monitor's sweeps, retention) runs on the
//! holder of a lease, a row that one node renews and any node may take once
//! it has expired. See `docs/cluster.md`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::StoreError;

/// A hub process as the database knows it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct NodeRecord {
    pub id: Uuid,
    /// `host:port` it listens on.
    pub name: String,
    /// Where agents and clients reach it.
    pub url: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// Set by a clean shutdown.
    pub stopped_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait NodeStore: Send + Sync {
    /// Records `node` (first call) or renews its heartbeat to `at`.
    async fn node_heartbeat(&self, node: &NodeRecord, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Marks a node stopped (a clean shutdown).
    async fn node_stopped(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Every node, oldest first.
    async fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError>;

    /// Deletes nodes whose heartbeat is older than `before`; returns how many.
    async fn forget_nodes(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Takes or renews lease `name` for `holder` until `until`, unless
    /// another node holds it unexpired at `at`; returns whether `holder`
    /// holds it now.
    async fn hold_lease(
        &self,
        name: &str,
        holder: Uuid,
        at: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Who holds lease `name` unexpired at `at`, if anyone.
    async fn lease_holder(&self, name: &str, at: DateTime<Utc>)
    -> Result<Option<Uuid>, StoreError>;

    /// Gives lease `name` up if `holder` holds it (a clean shutdown).
    async fn release_lease(&self, name: &str, holder: Uuid) -> Result<(), StoreError>;

    /// Tasks held (assigned or running) by agents whose session was on a
    /// node that stopped before `stopped_before` or whose last heartbeat is
    /// older than `silent_before`, oldest first: what nobody took over.
    /// Nodes named `except` (this node's own predecessors, whose tasks its
    /// own recovery settles) are left out.
    async fn held_through_gone_nodes(
        &self,
        stopped_before: DateTime<Utc>,
        silent_before: DateTime<Utc>,
        except: &str,
        limit: u32,
    ) -> Result<Vec<crate::domain::Task>, StoreError>;
}
