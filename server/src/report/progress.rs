//! `GET /v1/jobs/{id}/progress`: where a job stands, how fast it moves, and
//! when it will probably be done.
//!
//! The ETA adds up, stage by stage, `unfinished tasks / that stage's recent
//! rate`, the rate being the stage's tasks that finished in the last
//! [`RATE_WINDOW_SECONDS`] (or since the stage's first task was created,
//! when that is shorter). A stage's own rate matters: a job's first stage
//! (one long extraction) says nothing about how fast its thousands of
//! validations go, and an average over the whole job made a 2-minute job
//! look like 46 minutes. The ETA comes with a confidence (`low` below
//! [`MEDIUM_CONFIDENCE_TASKS`] finished tasks or a window under 10 s,
//! `high` from [`HIGH_CONFIDENCE_TASKS`]) and a note saying what it rests
//! on. It is `null`, with a reason, whenever it would be a guess: the job has
//! not started, its first stage is still running (nobody knows yet how many
//! items it will emit, so how much work follows), or a stage with work left
//! finished nothing recently.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::seconds;
use crate::domain::{ItemCounts, ItemStatus, Job, JobStatus, TaskStatus};
use crate::store::reports::{ItemGroup, TaskGroup};
use crate::store::{DynStore, StoreError};

/// How far back the rate looks.
pub const RATE_WINDOW_SECONDS: i64 = 60;
/// Finished tasks behind an ETA of `medium` confidence.
pub const MEDIUM_CONFIDENCE_TASKS: i64 = 20;
/// Finished tasks behind an ETA of `high` confidence.
pub const HIGH_CONFIDENCE_TASKS: i64 = 200;
/// A rate measured over less time than this is `low` confidence.
const MIN_CONFIDENT_WINDOW: f64 = 10.0;

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
    /// This stage's tasks finished per minute over `rate_window_seconds`.
    pub tasks_per_minute: f64,
    /// The last minute, or since the stage's first task was created when that is shorter.
    pub rate_window_seconds: f64,
    /// This stage's tasks finished in that window.
    #[serde(default)]
    pub tasks_finished_recently: i64,
}

/// What finished recently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rate {
    /// The window the rate is measured over (the last minute, or since the job started).
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
    /// `low`, `medium` or `high`: how much finished work the ETA rests on.
    pub eta_confidence: Option<String>,
    /// What the ETA rests on, e.g. "from 340 tasks finished in the last 60 s".
    pub eta_note: Option<String>,
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
            tasks_per_minute: 0.0,
            rate_window_seconds: 0.0,
            tasks_finished_recently: 0,
        })
        .collect();
    let mut stage_start: Vec<(i32, DateTime<Utc>)> = Vec::new();
    let mut all = TaskCounts::default();
    let mut tasks_recent = 0;
    for group in tasks {
        let Some(status) = group.task_status() else {
            continue;
        };
        all.add(status, group.count);
        let recent = if status.is_terminal() {
            group.recent
        } else {
            0
        };
        tasks_recent += recent;
        match stage_start.iter_mut().find(|(s, _)| *s == group.stage) {
            Some((_, at)) => *at = (*at).min(group.first_created_at),
            None => stage_start.push((group.stage, group.first_created_at)),
        }
        let stage = match stages.iter().position(|s| s.stage == group.stage) {
            Some(i) => &mut stages[i],
            None => {
                stages.push(StageProgress {
                    stage: group.stage,
                    capability: group.capability.clone(),
                    tasks: TaskCounts::default(),
                    tasks_per_minute: 0.0,
                    rate_window_seconds: 0.0,
                    tasks_finished_recently: 0,
                });
                let last = stages.len() - 1;
                &mut stages[last]
            }
        };
        stage.tasks.add(status, group.count);
        stage.tasks_finished_recently += recent;
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
    let end_of = |stage: i32| {
        stage_start
            .iter()
            .find(|(s, _)| *s == stage)
            .map_or(0.0, |(_, at)| {
                seconds(end - *at).clamp(0.0, RATE_WINDOW_SECONDS as f64)
            })
    };
    for stage in &mut stages {
        stage.rate_window_seconds = end_of(stage.stage);
        stage.tasks_per_minute = if stage.rate_window_seconds > 0.0 {
            round1(stage.tasks_finished_recently as f64 * 60.0 / stage.rate_window_seconds)
        } else {
            0.0
        };
    }
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
    let (eta_seconds, eta_confidence, eta_note, eta_reason) =
        match estimate(job, first_stage_done, &stages) {
            Ok(eta) => (
                Some(eta.seconds),
                Some(eta.confidence.to_owned()),
                Some(eta.note),
                None,
            ),
            Err(reason) => (None, None, None, Some(reason)),
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
        eta_confidence,
        eta_note,
        eta_reason,
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// An ETA and what it rests on.
struct Eta {
    seconds: f64,
    confidence: &'static str,
    note: String,
}

fn estimate(job: &Job, first_stage_done: bool, stages: &[StageProgress]) -> Result<Eta, String> {
    match job.status {
        s if s.is_terminal() => return Err(format!("the job has finished ({s})")),
        JobStatus::Waiting => return Err("the job waits for the jobs it depends on".into()),
        _ => {}
    }
    if job.started_at.is_none() {
        return Err("no agent has taken the job's first task yet".into());
    }
    if !first_stage_done {
        let capability = stages.first().map_or("", |s| s.capability.as_str());
        return Err(format!(
            "stage 0 (`{capability}`) is still running; how many items it emits, and so how much work follows, is not known yet"
        ));
    }
    let mut seconds = 0.0;
    let mut finished = 0;
    let mut window = f64::INFINITY;
    for stage in stages.iter().filter(|s| s.tasks.unfinished() > 0) {
        if stage.tasks_finished_recently == 0 || stage.tasks_per_minute <= 0.0 {
            return Err(format!(
                "no task of stage {} (`{}`) finished in the last {} s; its rate cannot be measured",
                stage.stage, stage.capability, RATE_WINDOW_SECONDS
            ));
        }
        seconds += stage.tasks.unfinished() as f64 * stage.rate_window_seconds
            / stage.tasks_finished_recently as f64;
        finished += stage.tasks_finished_recently;
        window = window.min(stage.rate_window_seconds);
    }
    if finished == 0 {
        return Ok(Eta {
            seconds: 0.0,
            confidence: "high",
            note: "every task of the job has finished".into(),
        });
    }
    let confidence = if finished < MEDIUM_CONFIDENCE_TASKS || window < MIN_CONFIDENT_WINDOW {
        "low"
    } else if finished < HIGH_CONFIDENCE_TASKS {
        "medium"
    } else {
        "high"
    };
    Ok(Eta {
        seconds: round1(seconds),
        confidence,
        note: format!(
            "from {finished} tasks finished in the last {} s of the stages with work left",
            window.round()
        ),
    })
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

    /// A group of a stage whose first task was created `age` seconds ago.
    fn group(stage: i32, status: &str, count: i64, recent: i64) -> TaskGroup {
        aged(stage, status, count, recent, 120)
    }

    fn aged(stage: i32, status: &str, count: i64, recent: i64, age: i64) -> TaskGroup {
        TaskGroup {
            stage,
            capability: if stage == 0 { "a" } else { "b" }.into(),
            status: status.into(),
            count,
            recent,
            first_created_at: Utc::now() - Duration::seconds(age),
            last_updated_at: Utc::now(),
        }
    }

    #[test]
    fn eta_from_the_stage_rate_of_a_known_job() {
        // The second stage has run for 2 minutes (window: the last 60 s),
        // finishing 10 tasks a second: 600 in the window. 300 are left: 30 s.
        let now = Utc::now();
        let j = job(JobStatus::Running, Some(now - Duration::seconds(180)));
        let tasks = [
            group(0, "succeeded", 1, 0),
            group(1, "succeeded", 1200, 600),
            group(1, "pending", 290, 0),
            group(1, "running", 10, 0),
        ];
        let p = compute(&j, &tasks, &[], now);
        assert_eq!(p.remaining_tasks, 300);
        assert_eq!(p.stages[1].tasks_per_minute, 600.0);
        assert_eq!(p.stages[1].rate_window_seconds, 60.0);
        assert_eq!(p.eta_seconds, Some(30.0));
        assert_eq!(p.eta_confidence.as_deref(), Some("high"));
        assert!(
            p.eta_note
                .unwrap()
                .contains("600 tasks finished in the last 60 s")
        );
        // The first stage's slow minute does not drag the estimate.
        assert_eq!(p.stages[0].tasks_per_minute, 0.0);
    }

    #[test]
    fn a_young_stage_is_measured_over_its_own_life_with_low_confidence() {
        // Stage 1 was created 5 s ago and finished 15 tasks: 3 per second.
        let now = Utc::now();
        let j = job(JobStatus::Running, Some(now - Duration::seconds(100)));
        let tasks = [
            group(0, "succeeded", 1, 1),
            aged(1, "succeeded", 15, 15, 5),
            aged(1, "pending", 30, 0, 5),
        ];
        let p = compute(&j, &tasks, &[], now);
        let eta = p.eta_seconds.unwrap();
        assert!((eta - 10.0).abs() < 0.2, "{eta}");
        assert_eq!(p.eta_confidence.as_deref(), Some("low"));
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
        assert!(
            p.eta_reason
                .unwrap()
                .contains("no task of stage 1 (`b`) finished")
        );
        let p = compute(&job(JobStatus::Queued, None), &[], &[], now);
        assert_eq!(
            p.eta_reason.as_deref(),
            Some("no agent has taken the job's first task yet")
        );
    }
}
