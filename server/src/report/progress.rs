//! `GET /v1/jobs/{id}/progress`: where a job stands, how fast it moves, and
//! when it will probably be done.
//!
//! The ETA is `remaining tasks / observed rate`, the rate being the tasks
//! that finished in the last [`RATE_WINDOW_SECONDS`] (or since the job
//! started, when that is shorter). It is `null`, with a reason, whenever
//! that would be a guess: the job has not started, its first stage is still
//! running (nobody knows yet how many items it will emit, so how much work
//! follows), or nothing finished recently.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::seconds;
use crate::domain::{ItemCounts, ItemStatus, Job, JobStatus, TaskStatus};
use crate::store::reports::{ItemGroup, TaskGroup};
use crate::store::{DynStore, StoreError};

/// How far back the rate looks.
pub const RATE_WINDOW_SECONDS: i64 = 300;

/// Task counts by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskCounts {
    pub total: i64,
    pub pending: i64,
    pub assigned: i64,
    pub running: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
}

impl TaskCounts {
    pub fn add(&mut self, status: TaskStatus, n: i64) {
        self.total += n;
        match status {
            TaskStatus::Pending => self.pending += n,
            TaskStatus::Assigned => self.assigned += n,
            TaskStatus::Running => self.running += n,
            TaskStatus::Succeeded => self.succeeded += n,
            TaskStatus::Failed => self.failed += n,
            TaskStatus::Cancelled => self.cancelled += n,
        }
    }

    /// Tasks not finished yet.
    pub fn unfinished(&self) -> i64 {
        self.pending + self.assigned + self.running
    }

    /// Tasks finished (succeeded, failed or cancelled).
    pub fn finished(&self) -> i64 {
        self.total - self.unfinished()
    }
}

/// One pipeline stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StageProgress {
    /// 0-based index into the job's `pipeline`, as `stage` is everywhere in
    /// the API and the agent protocol. Reports, the dashboard and the CLI
    /// show stages to people counted from 1.
    pub stage: i32,
    pub capability: String,
    pub tasks: TaskCounts,
}

/// What finished recently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rate {
    /// The window the rate is measured over (the last 5 minutes, or since the job started).
    pub window_seconds: f64,
    pub tasks_finished: i64,
    pub tasks_per_minute: f64,
    /// Items that reached integrated, rejected or failed in the window.
    pub items_finished: i64,
    pub items_per_minute: f64,
}

/// A job's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    pub job_id: Uuid,
    pub status: JobStatus,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Since the job started (since it was created, while it has not), until now or its end.
    pub elapsed_seconds: f64,
    /// Every stage of the pipeline, in order, with its tasks by status.
    pub stages: Vec<StageProgress>,
    /// All tasks of the job by status.
    pub tasks: TaskCounts,
    pub items: ItemCounts,
    pub rate: Rate,
    /// Tasks pending, assigned or running.
    pub remaining_tasks: i64,
    /// Finished tasks as a percentage of all tasks, once the first stage is done.
    pub percent_done: Option<f64>,
    pub eta_seconds: Option<f64>,
    pub eta_at: Option<DateTime<Utc>>,
    /// Why there is no ETA (when `eta_seconds` is null).
    pub eta_reason: Option<String>,
}

/// Reads a job's progress (two aggregate queries).
pub async fn progress(
    store: &DynStore,
    job: &Job,
    now: DateTime<Utc>,
) -> Result<Progress, StoreError> {
    let since = now - Duration::seconds(RATE_WINDOW_SECONDS);
    let tasks = store.task_groups(job.id, since).await?;
    let items = store.item_groups(job.id, since).await?;
    Ok(compute(job, &tasks, &items, now))
}

/// The pure part of [`progress`]: counts, rate and ETA from the aggregates.
pub fn compute(
    job: &Job,
    tasks: &[TaskGroup],
    items: &[ItemGroup],
    now: DateTime<Utc>,
) -> Progress {
    let mut stages: Vec<StageProgress> = job
        .pipeline
        .iter()
        .enumerate()
        .map(|(i, capability)| StageProgress {
            stage: i32::try_from(i).unwrap_or(i32::MAX),
            capability: capability.clone(),
            tasks: TaskCounts::default(),
        })
        .collect();
    let mut all = TaskCounts::default();
    let mut tasks_recent = 0;
    for group in tasks {
        let Some(status) = group.task_status() else {
            continue;
        };
        all.add(status, group.count);
        if status.is_terminal() {
            tasks_recent += group.recent;
        }
        match stages.iter_mut().find(|s| s.stage == group.stage) {
            Some(stage) => stage.tasks.add(status, group.count),
            None => {
                let mut counts = TaskCounts::default();
                counts.add(status, group.count);
                stages.push(StageProgress {
                    stage: group.stage,
                    capability: group.capability.clone(),
                    tasks: counts,
                });
            }
        }
    }
    let mut item_counts = ItemCounts::default();
    let mut items_recent = 0;
    for group in items {
        if let Ok(status) = group.status.parse::<ItemStatus>() {
            item_counts.add(status, group.count);
            if status.is_terminal() {
                items_recent += group.recent;
            }
        }
    }

    let end = job.finished_at.unwrap_or(now);
    let elapsed = seconds(end - job.started_at.unwrap_or(job.created_at));
    let window = match job.started_at {
        Some(started) => seconds(end - started).min(RATE_WINDOW_SECONDS as f64),
        None => 0.0,
    };
    let per_minute = |n: i64| {
        if window > 0.0 {
            n as f64 * 60.0 / window
        } else {
            0.0
        }
    };
    let rate = Rate {
        window_seconds: window,
        tasks_finished: tasks_recent,
        tasks_per_minute: per_minute(tasks_recent),
        items_finished: items_recent,
        items_per_minute: per_minute(items_recent),
    };

    let first_stage_done = stages
        .first()
        .is_some_and(|s| s.tasks.total > 0 && s.tasks.unfinished() == 0);
    let remaining = all.unfinished();
    let percent_done = (first_stage_done && all.total > 0)
        .then(|| (all.finished() as f64 * 1000.0 / all.total as f64).round() / 10.0);
    let eta = estimate(job, first_stage_done, remaining, &rate, stages.first());
    let (eta_seconds, eta_reason) = match eta {
        Ok(s) => (Some(s), None),
        Err(reason) => (None, Some(reason)),
    };
    Progress {
        job_id: job.id,
        status: job.status,
        created_at: job.created_at,
        started_at: job.started_at,
        finished_at: job.finished_at,
        elapsed_seconds: elapsed,
        stages,
        tasks: all,
        items: item_counts,
        rate,
        remaining_tasks: remaining,
        percent_done,
        eta_at: eta_seconds.map(|s| now + Duration::milliseconds((s * 1000.0) as i64)),
        eta_seconds,
        eta_reason,
    }
}

fn estimate(
    job: &Job,
    first_stage_done: bool,
    remaining: i64,
    rate: &Rate,
    first: Option<&StageProgress>,
) -> Result<f64, String> {
    match job.status {
        s if s.is_terminal() => return Err(format!("the job has finished ({s})")),
        JobStatus::Waiting => return Err("the job waits for the jobs it depends on".into()),
        _ => {}
    }
    if job.started_at.is_none() {
        return Err("no agent has taken the job's first task yet".into());
    }
    if !first_stage_done {
        let capability = first.map_or("", |s| s.capability.as_str());
        return Err(format!(
            "stage 0 (`{capability}`) is still running; how many items it emits, and so how much work follows, is not known yet"
        ));
    }
    if remaining == 0 {
        return Ok(0.0);
    }
    if rate.tasks_finished == 0 || rate.tasks_per_minute <= 0.0 {
        return Err(format!(
            "no task finished in the last {} minutes; the rate cannot be measured",
            RATE_WINDOW_SECONDS / 60
        ));
    }
    Ok(((remaining as f64 / rate.tasks_per_minute) * 60.0 * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: JobStatus, started: Option<DateTime<Utc>>) -> Job {
        let at = Utc::now() - Duration::seconds(120);
        Job {
            id: Uuid::now_v7(),
            status,
            status_reason: None,
            pipeline: vec!["a".into(), "b".into()],
            prompt: "p".into(),
            context: serde_json::json!({}),
            priority: 5,
            labels: vec![],
            depends_on: vec![],
            idempotency_key: None,
            created_by: "t".into(),
            document: None,
            items: None,
            created_at: at,
            updated_at: at,
            started_at: started,
            finished_at: None,
            version: 1,
        }
    }

    fn group(stage: i32, status: &str, count: i64, recent: i64) -> TaskGroup {
        TaskGroup {
            stage,
            capability: if stage == 0 { "a" } else { "b" }.into(),
            status: status.into(),
            count,
            recent,
            first_created_at: Utc::now(),
            last_updated_at: Utc::now(),
        }
    }

    #[test]
    fn eta_from_the_observed_rate() {
        let now = Utc::now();
        let j = job(JobStatus::Running, Some(now - Duration::seconds(60)));
        let tasks = [
            group(0, "succeeded", 1, 1),
            group(1, "succeeded", 10, 10),
            group(1, "pending", 20, 0),
        ];
        let p = compute(&j, &tasks, &[], now);
        assert_eq!(p.remaining_tasks, 20);
        assert_eq!(p.rate.tasks_finished, 11);
        // 11 tasks in 60 s: 20 more take 20 / 11 minutes.
        let expected = (20.0 / 11.0 * 60.0 * 10.0_f64).round() / 10.0;
        assert_eq!(p.eta_seconds, Some(expected));
        assert_eq!(p.percent_done, Some(35.5));
        assert_eq!(p.stages[1].tasks.pending, 20);
    }

    #[test]
    fn no_eta_while_the_first_stage_runs_or_nothing_moves() {
        let now = Utc::now();
        let j = job(JobStatus::Running, Some(now - Duration::seconds(60)));
        let p = compute(&j, &[group(0, "running", 1, 0)], &[], now);
        assert!(
            p.eta_reason
                .unwrap()
                .contains("stage 0 (`a`) is still running")
        );
        let p = compute(
            &j,
            &[group(0, "succeeded", 1, 0), group(1, "pending", 3, 0)],
            &[],
            now,
        );
        assert!(p.eta_reason.unwrap().contains("no task finished"));
        let p = compute(&job(JobStatus::Queued, None), &[], &[], now);
        assert_eq!(
            p.eta_reason.as_deref(),
            Some("no agent has taken the job's first task yet")
        );
    }
}
