//! The monitor: a background task that sweeps for stuck work every
//! `monitor_interval`, recovers it through the store, and keeps the daily
//! statistics rolled up.
//!
//! The dispatcher already takes back, in memory, tasks whose accept timeout
//! or lease ran out and tasks of lost agents. The monitor is the safety net
//! for what memory cannot see: rows left `assigned`/`running` with an expired
//! lease after a crash or on another node, items left `validating` with no
//! task, jobs past `job_timeout`. It never fights the dispatcher over a task
//! it holds:
//! * a task whose agent is connected to this hub is left alone when the
//!   dispatcher tracks it (the dispatcher times its lease);
//! * otherwise it acts only once the lease ran out more than
//!   `reconnect_grace + stuck_grace` ago (the dispatcher gives a lost agent
//!   `reconnect_grace` to come back and resume), and not before the hub has
//!   been up that long (after a restart the dispatcher reloads held tasks and
//!   waits `reconnect_grace` for their agents).
//!
//! A recovered task fails its attempt with a retry (`failures + 1`, attempt
//! fenced by the store, `task.retrying` or `task.failed`), and the tasks that
//! became ready go to the dispatcher (`tasks_ready`). Every repair is a
//! conditional store transaction, so racing the dispatcher (or another node)
//! leaves exactly one winner.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{human_duration, stuck};
use crate::domain::{TaskFailure, TaskStatus};
use crate::state::AppState;
use crate::store::StoreError;

/// Events rolled up per statistics transaction, and transactions per sweep.
const ROLLUP_BATCH: u32 = 10_000;
const ROLLUP_BATCHES: usize = 20;

/// Repairs per kind and sweep (the next sweep takes the rest).
const SWEEP_LIMIT: u32 = 500;

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    pub tasks_recovered: usize,
    pub items_requeued: usize,
    pub jobs_timed_out: usize,
    pub events_rolled_up: u64,
}

/// Runs the monitor until `shutdown` fires.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let started = Instant::now();
    let mut every = state.settings.get().monitor.interval;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned: HashSet<Uuid> = HashSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !state.node.leads() {
            continue; // another node of the cluster sweeps
        }
        // A reload may have changed the interval (the thresholds are read
        // by each sweep).
        if state.settings.get().monitor.interval != every {
            every = state.settings.get().monitor.interval;
            tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        match sweep(&state, started.elapsed(), Utc::now()).await {
            Ok(done) if done != Sweep::default() => {
                tracing::info!(
                    tasks_recovered = done.tasks_recovered,
                    items_requeued = done.items_requeued,
                    jobs_timed_out = done.jobs_timed_out,
                    events_rolled_up = done.events_rolled_up,
                    "monitor sweep"
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "monitor sweep failed; retrying at the next interval")
            }
        }
        warn_idle(&state, &mut warned).await;
    }
}

/// One sweep: recovers expired tasks, orphaned items and overdue jobs, and
/// rolls up the statistics. `uptime` is how long this hub has been running.
pub async fn sweep(
    state: &AppState,
    uptime: Duration,
    now: DateTime<Utc>,
) -> Result<Sweep, StoreError> {
    let mut done = Sweep::default();
    let margin =
        state.settings.get().hub.reconnect_grace + state.settings.get().monitor.stuck_grace;
    if uptime >= margin {
        let cutoff = now - chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX);
        done.tasks_recovered = recover_tasks(state, cutoff).await?;
    }
    done.tasks_recovered += recover_from_gone_nodes(state, now).await?;
    let grace =
        chrono::Duration::from_std(state.settings.get().monitor.stuck_grace).unwrap_or_default();
    for item in state.store.orphaned_items(now - grace, SWEEP_LIMIT).await? {
        if let Some(task) = state.store.requeue_item(item.item_id).await? {
            tracing::info!(job_id = %item.job_id, item_id = %item.item_id, task_id = %task.id,
                "item left validating with no task: re-queued");
            state.hub.tasks_ready(vec![task]);
            done.items_requeued += 1;
        }
    }
    done.jobs_timed_out = time_out_jobs(state, now).await?;
    for _ in 0..ROLLUP_BATCHES {
        let read = state.store.roll_up_stats(ROLLUP_BATCH).await?;
        done.events_rolled_up += read;
        if read < u64::from(ROLLUP_BATCH) {
            break;
        }
    }
    Ok(done)
}

async fn recover_tasks(state: &AppState, cutoff: DateTime<Utc>) -> Result<usize, StoreError> {
    let mut recovered = 0;
    let expired = state.store.expired_tasks(cutoff, SWEEP_LIMIT).await?;
    // A task of an agent connected here is the dispatcher's to time, unless
    // the dispatcher does not know it (it was pushed through another node
    // that stopped before the agent could list it in `hello.resume`).
    let connected: Vec<uuid::Uuid> = expired
        .iter()
        .filter(|t| stuck::agent_connected(state, t.agent_id))
        .map(|t| t.id)
        .collect();
    let untracked = state.hub.untracked(connected).await;
    for task in expired {
        if stuck::agent_connected(state, task.agent_id) && !untracked.contains(&task.id) {
            continue;
        }
        let lease = task.lease_until.unwrap_or(task.updated_at);
        let error = format!(
            "lease ran out at {} and the agent holding the task ({}) is gone; recovered by the monitor",
            lease.format("%Y-%m-%dT%H:%M:%SZ"),
            task.agent_id
                .map_or_else(|| "unknown".to_owned(), |a| a.to_string())
        );
        let failure = TaskFailure {
            task_id: task.id,
            attempt: task.attempt,
            agent_id: None,
            error,
            retry: Some(state.settings.get().hub.retry),
        };
        match state.store.fail_task(failure).await {
            Ok(outcome) => {
                tracing::info!(job_id = %task.job_id, task_id = %task.id, attempt = task.attempt,
                    "task with an expired lease taken back by the monitor");
                recovered += 1;
                if !outcome.ready.is_empty() {
                    state.hub.tasks_ready(outcome.ready);
                }
            }
            Err(StoreError::Conflict { message }) => {
                tracing::debug!(task_id = %task.id, %message, "someone else moved the task first");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(recovered)
}

/// Tasks held through a node that died (or stopped) more than
/// `reconnect_grace` ago by agents that did not move to another node (their
/// registration there would have moved them): a push never accepted goes
/// back to the queue, a running attempt fails with a retry. Without this
/// they would wait for their lease and `stuck_grace`.
async fn recover_from_gone_nodes(
    state: &AppState,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let settings = state.settings.get();
    let grace = chrono::Duration::from_std(settings.hub.reconnect_grace).unwrap_or_default();
    let silent = chrono::Duration::from_std(settings.node_timeout).unwrap_or_default() + grace;
    let tasks = state
        .store
        .held_through_gone_nodes(
            now - grace,
            now - silent,
            &state.node.record.name,
            SWEEP_LIMIT,
        )
        .await?;
    let mut recovered = 0;
    for task in tasks {
        let Some(agent_id) = task.agent_id else {
            continue;
        };
        if stuck::agent_connected(state, Some(agent_id)) {
            continue;
        }
        let reason =
            format!("agent {agent_id} held it through a node that is gone and did not come back");
        let ready = if task.status == TaskStatus::Assigned {
            state
                .store
                .requeue_task(task.id, task.attempt, agent_id, now, reason)
                .await
                .map(|t| vec![t])
        } else {
            state
                .store
                .fail_task(TaskFailure {
                    task_id: task.id,
                    attempt: task.attempt,
                    agent_id: None,
                    error: reason,
                    retry: Some(settings.hub.retry),
                })
                .await
                .map(|outcome| outcome.ready)
        };
        match ready {
            Ok(ready) => {
                tracing::info!(job_id = %task.job_id, task_id = %task.id, attempt = task.attempt, %agent_id,
                    "task held through a gone node taken back");
                recovered += 1;
                if !ready.is_empty() {
                    state.hub.tasks_ready(ready);
                }
            }
            Err(StoreError::Conflict { message }) => {
                tracing::debug!(task_id = %task.id, %message, "someone else moved the task first");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(recovered)
}

async fn time_out_jobs(state: &AppState, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let timeout = state.settings.get().monitor.job_timeout;
    let cutoff = now - chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    let mut failed = 0;
    for job in state.store.active_jobs(1000).await? {
        if job.created_at >= cutoff {
            // Oldest first: nothing after this one is overdue.
            break;
        }
        let reason = format!(
            "timed out: not finished within job_timeout ({}) of its creation",
            human_duration(timeout.as_secs_f64())
        );
        match state.store.expire_job(job.job_id, reason.clone()).await {
            Ok((_, cancelled)) => {
                tracing::warn!(job_id = %job.job_id, tasks = cancelled.len(), "job timed out");
                state.hub.tasks_cancelled(cancelled, reason);
                failed += 1;
            }
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(failed)
}

/// Logs each idle job once (it stays listed in `GET /v1/jobs/stuck`).
async fn warn_idle(state: &AppState, warned: &mut HashSet<Uuid>) {
    let Ok(jobs) = stuck::stuck_jobs(state, Utc::now()).await else {
        return;
    };
    let now: HashSet<Uuid> = jobs.iter().map(|j| j.job_id).collect();
    for job in jobs {
        if warned.insert(job.job_id) {
            tracing::warn!(job_id = %job.job_id, reason = %job.reason, "job is stuck");
        }
    }
    warned.retain(|id| now.contains(id));
}
