//! Work made ready by other nodes.
//!
//! A node's dispatcher learns of the tasks its own handlers and agents make
//! ready directly. Tasks another node makes ready (a job submitted there, a
//! next stage its agent emitted, a retry it scheduled) reach this node
//! through the event log: after every commit of any node (see
//! `Store::follow_peers`) this task reads the new events, and for the jobs
//! they name reads their pending tasks and hands them to the dispatcher,
//! which queues those it does not track yet. Two nodes may then both try to
//! assign a task; the store's conditional assignment lets one win, and the
//! other withdraws its push (`cancel`) and forgets the task.
//!
//! Alone (no other live node) it does nothing but look, once a second,
//! whether another node has joined; when one has, it first hands over every
//! pending task (what the other node made ready meanwhile), then follows
//! the log from there.
//!
//! The same events carry cancellations (`task.cancelled`) made on any node:
//! an agent connected here that runs a cancelled task is told to stop; and
//! drains (`agent.draining`): an agent connected here that another node
//! marked draining gets no more work.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Node;
use crate::domain::EventType;
use crate::hub::HubHandle;
use crate::store::DynStore;

/// Events read per round trip.
const BATCH: u32 = 1000;

/// Runs until `shutdown`.
pub async fn run(store: DynStore, hub: HubHandle, node: Arc<Node>, shutdown: CancellationToken) {
    let mut commits = store.commits();
    // `None` while alone: the position in the log is not followed.
    let mut last: Option<i64> = None;
    loop {
        if !node.has_peers() {
            last = None;
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
            }
        }
        let result = match last.as_mut() {
            Some(last) => round(&store, &hub, last).await,
            None => catch_up(&store, &hub).await.map(|at| last = Some(at)),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not look for other nodes' work; retrying at the next commit");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = commits.changed() => if changed.is_err() { return },
            // Other nodes' commits wake `commits` too; this is the safety net.
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

/// Hands every pending task to the dispatcher; returns the log position
/// read before, from which [`round`] goes on.
async fn catch_up(store: &DynStore, hub: &HubHandle) -> Result<i64, crate::store::StoreError> {
    let at = store.last_event_seq().await?;
    let pending = store
        .open_tasks()
        .await?
        .into_iter()
        .filter(|t| t.status == crate::domain::TaskStatus::Pending)
        .collect();
    hub.discovered(pending);
    Ok(at)
}

/// Reads the events after `last` and hands the pending tasks of the jobs
/// they name to the dispatcher.
async fn round(
    store: &DynStore,
    hub: &HubHandle,
    last: &mut i64,
) -> Result<(), crate::store::StoreError> {
    loop {
        let events = store.list_events(None, *last, BATCH).await?;
        let full = events.len() == BATCH as usize;
        let jobs: BTreeSet<uuid::Uuid> = events.iter().filter_map(|e| e.job_id).collect();
        if let Some(newest) = events.last() {
            *last = newest.seq;
        }
        // Cancelled in the store by any node: an agent of this node that
        // runs one must stop (the dispatcher ignores tasks it does not hold).
        let cancelled: Vec<uuid::Uuid> = events
            .iter()
            .filter(|e| e.kind == EventType::TaskCancelled.as_str())
            .filter_map(|e| e.payload["task_id"].as_str()?.parse().ok())
            .collect();
        if !cancelled.is_empty() {
            let reason = events
                .iter()
                .rev()
                .find(|e| e.kind == EventType::JobCancelled.as_str())
                .and_then(|e| e.payload["reason"].as_str())
                .unwrap_or("the job was cancelled");
            hub.tasks_cancelled(cancelled, reason.to_owned());
        }
        // Assigned (by any node): a task only queued here is taken.
        let assigned: Vec<uuid::Uuid> = events
            .iter()
            .filter(|e| e.kind == EventType::TaskAssigned.as_str())
            .filter_map(|e| e.payload["task_id"].as_str()?.parse().ok())
            .collect();
        hub.taken_elsewhere(assigned);
        // Drained through another node: if the agent is connected here,
        // it gets no more work (already draining agents are left as they are).
        for event in events
            .iter()
            .filter(|e| e.kind == EventType::AgentDraining.as_str())
        {
            if let Some(agent_id) = event.payload["agent_id"]
                .as_str()
                .and_then(|a| a.parse().ok())
                && hub.live.contains_key(&agent_id)
            {
                let _ = hub.drain(agent_id).await;
            }
        }
        if !jobs.is_empty() {
            let jobs: Vec<_> = jobs.into_iter().collect();
            hub.discovered(store.pending_tasks(&jobs).await?);
        }
        if !full {
            return Ok(());
        }
    }
}
