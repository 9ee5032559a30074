//! This hub as a node of a cluster: several `switchyard serve` processes on
//! one Postgres database (see `docs/cluster.md`).
//!
//! A node registers itself and renews its heartbeat every fifth of
//! `node_timeout`; the others see it dead once the heartbeat is older than
//! `node_timeout`. Work that must happen once per cluster, the monitor's
//! sweeps and retention, runs on the node holding the `monitor` lease,
//! renewed with the heartbeat: when its holder dies, another node takes it
//! within `node_timeout`. A node that cannot reach the database stops
//! leading at once rather than risk two leaders. On SQLite there is one node,
//! and it always leads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Live;
use crate::store::DynStore;
use crate::store::nodes::NodeRecord;

/// The lease of the node that runs the monitor and retention.
pub const MONITOR_LEASE: &str = "monitor";

pub mod discover;

/// Dead nodes' rows are deleted this long after their last heartbeat.
const FORGET_AFTER: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// This node.
#[derive(Debug)]
pub struct Node {
    pub record: NodeRecord,
    leading: AtomicBool,
    alone: bool,
    /// Other live nodes share the database.
    peers: AtomicBool,
    /// Their URLs, as of the last heartbeat (sorted).
    peer_urls: RwLock<Vec<String>>,
    /// Their ids, as of the last heartbeat.
    peer_ids: RwLock<Vec<Uuid>>,
}

impl Node {
    /// `alone`: the store allows one node (SQLite), which always leads.
    pub fn new(url: String, name: String, alone: bool) -> Arc<Node> {
        let now = crate::webhooks::now();
        Arc::new(Node {
            record: NodeRecord {
                id: Uuid::now_v7(),
                name,
                url,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                started_at: now,
                heartbeat_at: now,
                stopped_at: None,
            },
            leading: AtomicBool::new(alone),
            alone,
            peers: AtomicBool::new(false),
            peer_urls: RwLock::new(Vec::new()),
            peer_ids: RwLock::new(Vec::new()),
        })
    }

    pub fn id(&self) -> Uuid {
        self.record.id
    }

    /// Whether other live nodes share the database (as of the last heartbeat).
    pub fn has_peers(&self) -> bool {
        self.peers.load(Ordering::Relaxed)
    }

    /// The other live nodes' URLs (`advertise_url`), for agents to move to.
    pub fn peer_urls(&self) -> Vec<String> {
        self.peer_urls.read().map(|u| u.clone()).unwrap_or_default()
    }

    /// Whether `id` is another live node (as of the last heartbeat).
    pub fn is_live_peer(&self, id: Uuid) -> bool {
        self.peer_ids.read().is_ok_and(|ids| ids.contains(&id))
    }

    /// Whether this node holds the monitor lease (runs the once-per-cluster work).
    pub fn leads(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }
}

/// Renews `node`'s heartbeat and the monitor lease every fifth of
/// `node_timeout` until `shutdown` (the first [`beat`] is the caller's);
/// then marks it stopped and gives the lease up.
pub async fn run(store: DynStore, node: Arc<Node>, live: Live, shutdown: CancellationToken) {
    loop {
        let timeout = live.get().node_timeout;
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(timeout / 5) => {}
        }
        beat(&store, &node, timeout).await;
    }
    node.leading.store(false, Ordering::Relaxed);
    let id = node.id();
    if let Err(e) = store.release_lease(MONITOR_LEASE, id).await {
        tracing::warn!(error = %e, "could not give the monitor lease up; it expires by itself");
    }
    if let Err(e) = store.node_stopped(id, crate::webhooks::now()).await {
        tracing::warn!(error = %e, "could not record this node's stop");
    }
}

/// One heartbeat: the node's row, the lease, and old nodes forgotten.
pub async fn beat(store: &DynStore, node: &Node, timeout: Duration) {
    let now = crate::webhooks::now();
    if let Err(e) = store.node_heartbeat(&node.record, now).await {
        tracing::warn!(error = %e, "could not renew this node's heartbeat");
    }
    let until = now + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::seconds(10));
    let leads = match store.hold_lease(MONITOR_LEASE, node.id(), now, until).await {
        // The only node leads even when a crashed predecessor's lease has
        // not expired yet.
        Ok(leads) => leads || node.alone,
        Err(e) => {
            tracing::warn!(error = %e, "could not renew the monitor lease; not leading until it can");
            node.alone
        }
    };
    if leads != node.leading.swap(leads, Ordering::Relaxed) {
        tracing::info!(node_id = %node.id(), leads, "monitor lease {}", if leads { "taken" } else { "lost" });
    }
    // Other live nodes: commits are announced to them (see `Store::set_peers`).
    match store.list_nodes().await {
        Ok(nodes) => {
            let fresh = now - chrono::Duration::from_std(timeout).unwrap_or_default();
            // A node of the same name (`host:port`) is this one's crashed
            // predecessor: two processes cannot listen on one address.
            let live: Vec<&NodeRecord> = nodes
                .iter()
                .filter(|n| {
                    n.id != node.id()
                        && n.name != node.record.name
                        && n.stopped_at.is_none()
                        && n.heartbeat_at >= fresh
                })
                .collect();
            if let Ok(mut ids) = node.peer_ids.write() {
                *ids = live.iter().map(|n| n.id).collect();
            }
            let mut urls: Vec<String> = live.iter().map(|n| n.url.clone()).collect();
            urls.sort();
            urls.dedup();
            let peers = !urls.is_empty();
            if let Ok(mut known) = node.peer_urls.write() {
                *known = urls;
            }
            store.set_peers(peers);
            if peers != node.peers.swap(peers, Ordering::Relaxed) {
                tracing::info!(
                    peers,
                    "other nodes {}",
                    if peers { "joined" } else { "gone" }
                );
            }
        }
        Err(e) => tracing::debug!(error = %e, "could not list the other nodes"),
    }
    if leads && let Err(e) = store.forget_nodes(Utc::now() - FORGET_AFTER).await {
        tracing::debug!(error = %e, "could not forget old nodes");
    }
}
