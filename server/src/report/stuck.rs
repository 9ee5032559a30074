//! `GET /v1/jobs/stuck`: what is stuck right now, and why.
//!
//! Three kinds of stuck work, each with a reason a person can act on:
//! * tasks `assigned`/`running` in the database whose lease has run out (the
//!   dispatcher takes these back itself while it holds them; the monitor
//!   takes back the rest, see [`super::monitor`]);
//! * items left `validating` with no task working on them;
//! * unfinished jobs with no event for `stuck_after`, or past `job_timeout`.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{human_duration, seconds};
use crate::domain::{AgentSessionState, JobStatus, TaskStatus};
use crate::state::AppState;
use crate::store::StoreError;

/// How many of each kind the listing shows.
pub const LISTED: u32 = 500;

/// A task whose lease ran out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StuckTask {
    pub task_id: Uuid,
    pub job_id: Uuid,
    pub stage: i32,
    pub capability: String,
    pub status: TaskStatus,
    pub attempt: i32,
    pub agent_id: Option<Uuid>,
    pub lease_until: Option<DateTime<Utc>>,
    /// How long ago the lease ran out.
    pub overdue_seconds: f64,
    pub reason: String,
}

/// An item left validating with no task working on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StuckItem {
    pub item_id: Uuid,
    pub job_id: Uuid,
    pub stage: i32,
    pub since: DateTime<Utc>,
    pub reason: String,
}

/// A job that made no progress for `stuck_after`, or ran past `job_timeout`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StuckJob {
    pub job_id: Uuid,
    pub status: JobStatus,
    pub created_at: DateTime<Utc>,
    pub last_event_at: Option<DateTime<Utc>>,
    /// Since the last event (since creation when it has none).
    pub idle_seconds: f64,
    pub pending_tasks: i64,
    pub held_tasks: i64,
    pub reason: String,
}

/// The thresholds the listing applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StuckSettings {
    pub stuck_after_seconds: f64,
    /// How long after a lease ran out the monitor takes the task back
    /// (`reconnect_grace + stuck_grace`), when the dispatcher has not.
    pub recover_after_seconds: f64,
    pub job_timeout_seconds: f64,
}

/// Everything stuck now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StuckReport {
    pub checked_at: DateTime<Utc>,
    pub settings: StuckSettings,
    pub tasks: Vec<StuckTask>,
    pub items: Vec<StuckItem>,
    pub jobs: Vec<StuckJob>,
}

/// Is `agent_id` connected to this hub (so the dispatcher tracks its tasks)?
pub fn agent_connected(state: &AppState, agent_id: Option<Uuid>) -> bool {
    agent_id
        .and_then(|id| state.hub.live.get(&id).map(|a| a.session_state))
        .is_some_and(|s| {
            matches!(
                s,
                AgentSessionState::Connected | AgentSessionState::Draining
            )
        })
}

fn agent_name(state: &AppState, agent_id: Option<Uuid>) -> String {
    match agent_id {
        None => "no agent".into(),
        Some(id) => state
            .hub
            .live
            .get(&id)
            .map_or_else(|| format!("agent {id}"), |a| format!("agent {}", a.name)),
    }
}

/// Capabilities some connected agent offers.
fn served(state: &AppState) -> HashSet<String> {
    state
        .hub
        .live
        .iter()
        .filter(|a| a.session_state == AgentSessionState::Connected)
        .flat_map(|a| a.capabilities.clone())
        .collect()
}

/// Lists what is stuck now.
pub async fn list(state: &AppState, now: DateTime<Utc>) -> Result<StuckReport, StoreError> {
    let m = &state.settings.get().monitor;
    let recover_after = state.settings.get().hub.reconnect_grace + m.stuck_grace;
    let settings = StuckSettings {
        stuck_after_seconds: m.stuck_after.as_secs_f64(),
        recover_after_seconds: recover_after.as_secs_f64(),
        job_timeout_seconds: m.job_timeout.as_secs_f64(),
    };
    let tasks = state
        .store
        .expired_tasks(now, LISTED)
        .await?
        .into_iter()
        .map(|t| {
            let expired = t.lease_until.unwrap_or(t.updated_at);
            let overdue = seconds(now - expired);
            let who = agent_name(state, t.agent_id);
            let reason = if agent_connected(state, t.agent_id) {
                format!(
                    "lease ran out {} ago while {who} is connected; the dispatcher takes it back at its next tick",
                    human_duration(overdue)
                )
            } else {
                format!(
                    "lease ran out {} ago and {who} is not connected to this hub; it is taken back {} after the lease ran out",
                    human_duration(overdue),
                    human_duration(recover_after.as_secs_f64())
                )
            };
            StuckTask {
                task_id: t.id,
                job_id: t.job_id,
                stage: t.stage,
                capability: t.capability,
                status: t.status,
                attempt: t.attempt,
                agent_id: t.agent_id,
                lease_until: t.lease_until,
                overdue_seconds: overdue,
                reason,
            }
        })
        .collect();
    let items = state
        .store
        .orphaned_items(now, LISTED)
        .await?
        .into_iter()
        .map(|i| StuckItem {
            item_id: i.item_id,
            job_id: i.job_id,
            stage: i.stage,
            since: i.updated_at,
            reason: format!(
                "validating for {} with no task working on it; the monitor gives it a new task",
                human_duration(seconds(now - i.updated_at))
            ),
        })
        .collect();
    let jobs = stuck_jobs(state, now).await?;
    Ok(StuckReport {
        checked_at: now,
        settings,
        tasks,
        items,
        jobs,
    })
}

/// Unfinished jobs idle for `stuck_after` or past `job_timeout`, with reasons.
pub async fn stuck_jobs(state: &AppState, now: DateTime<Utc>) -> Result<Vec<StuckJob>, StoreError> {
    let m = &state.settings.get().monitor;
    let stuck_after = Duration::from_std(m.stuck_after).unwrap_or(Duration::MAX);
    let timeout = Duration::from_std(m.job_timeout).unwrap_or(Duration::MAX);
    let served = served(state);
    let mut out = Vec::new();
    for job in state.store.active_jobs(1000).await? {
        let last = job.last_event_at.unwrap_or(job.created_at);
        let idle = now - last;
        let overdue = now - job.created_at > timeout;
        let status: JobStatus = match job.status.parse() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if !overdue && (idle < stuck_after || status == JobStatus::Waiting) {
            continue;
        }
        let groups = state.store.task_groups(job.job_id, now).await?;
        let count = |wanted: &[TaskStatus]| -> i64 {
            groups
                .iter()
                .filter(|g| g.task_status().is_some_and(|s| wanted.contains(&s)))
                .map(|g| g.count)
                .sum()
        };
        let pending = count(&[TaskStatus::Pending]);
        let held = count(&[TaskStatus::Assigned, TaskStatus::Running]);
        let unserved: Vec<String> = groups
            .iter()
            .filter(|g| {
                g.task_status() == Some(TaskStatus::Pending) && !served.contains(&g.capability)
            })
            .map(|g| format!("`{}`", g.capability))
            .collect();
        let mut reason = if overdue {
            format!(
                "running for {}, past job_timeout ({}); the monitor fails it",
                human_duration(seconds(now - job.created_at)),
                human_duration(m.job_timeout.as_secs_f64())
            )
        } else {
            format!("no event for {}", human_duration(seconds(idle)))
        };
        if !unserved.is_empty() {
            reason.push_str(&format!(
                "; {pending} task(s) wait for an agent offering {} and none is connected",
                unserved.join(", ")
            ));
        } else if pending > 0 {
            reason.push_str(&format!("; {pending} task(s) wait for a free agent"));
        }
        if held > 0 {
            reason.push_str(&format!(
                "; {held} task(s) are held by agents that report no progress"
            ));
        }
        out.push(StuckJob {
            job_id: job.job_id,
            status,
            created_at: job.created_at,
            last_event_at: job.last_event_at,
            idle_seconds: seconds(idle),
            pending_tasks: pending,
            held_tasks: held,
            reason,
        });
    }
    Ok(out)
}
