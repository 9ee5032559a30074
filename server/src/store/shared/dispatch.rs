//! Dispatch, shared by both backends: the event payloads of tasks and items,
//! and what happens after a task finishes, as pure functions over small row
//! structs; each backend runs the SQL they ask for. Which transitions an
//! attempt allows is in [`super::fencing`].

use std::collections::HashSet;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use serde_json::json;
use sqlx::types::Json;
use switchyard_agent::protocol::Verdict;
use uuid::Uuid;

use super::{NewTask, parse_status};
use crate::domain::{
    EventType, ItemStatus, JobStatus, NewEvent, NewItem, Task, TaskCompletion, TaskFailure,
};
use crate::store::StoreError;

/// Job states in which a finished task can still complete (or fail) its job.
pub(crate) const FINISHABLE_JOB: [JobStatus; 2] = [JobStatus::Queued, JobStatus::Running];

/// Item states a task outcome may still change.
pub(crate) const OPEN_ITEM: [ItemStatus; 2] = [ItemStatus::Pending, ItemStatus::Validating];

/// The job of a task, read (on Postgres: locked) before the task finishes.
#[derive(sqlx::FromRow)]
pub(crate) struct JobHead {
    pub id: Uuid,
    pub pipeline: Json<Vec<String>>,
    pub priority: i16,
    pub max_attempts: i32,
}

/// What a transaction changed beyond its task: events to append (in this
/// order), tasks that became ready, and the ids of jobs whose status changed.
#[derive(Default)]
pub(crate) struct Changes {
    pub events: Vec<NewEvent>,
    pub ready: Vec<Task>,
    pub jobs: Vec<Uuid>,
}

impl Changes {
    pub fn job_changed(&mut self, id: Uuid) {
        if !self.jobs.contains(&id) {
            self.jobs.push(id);
        }
    }
}

/// A `task.*` event: `{task_id, job_id, stage, capability, attempt,
/// agent_id}` plus the fields of `extra` (an object).
pub(crate) fn task_event(
    kind: EventType,
    task: &Task,
    agent_id: Option<Uuid>,
    extra: serde_json::Value,
) -> NewEvent {
    let mut payload = json!({
        "task_id": task.id,
        "job_id": task.job_id,
        "stage": task.stage,
        "capability": task.capability,
        "attempt": task.attempt,
        "agent_id": agent_id,
    });
    if let (Some(payload), serde_json::Value::Object(extra)) = (payload.as_object_mut(), extra) {
        payload.extend(extra);
    }
    NewEvent {
        job_id: Some(task.job_id),
        kind,
        payload,
    }
}

/// An `item.*` status event: `{item_id, job_id, stage, reason?}`.
pub(crate) fn item_event(
    kind: EventType,
    item_id: Uuid,
    job_id: Uuid,
    stage: i32,
    reason: Option<&str>,
) -> NewEvent {
    let mut payload = json!({ "item_id": item_id, "job_id": job_id, "stage": stage });
    if let Some(reason) = reason {
        payload["reason"] = json!(reason);
    }
    NewEvent {
        job_id: Some(job_id),
        kind,
        payload,
    }
}

/// How a completed task decides its input item.
pub(crate) struct ItemDecision {
    pub item_id: Uuid,
    pub status: ItemStatus,
    pub reason: Option<String>,
    event: NewEvent,
}

impl ItemDecision {
    /// The event, once the item's update changed a row.
    pub fn event(self) -> NewEvent {
        self.event
    }
}

/// The input item's new state after `task` completed (`None` for stage 0):
/// `integrated` when accepted, `rejected` with the reason otherwise.
pub(crate) fn input_item_decision(task: &Task, c: &TaskCompletion) -> Option<ItemDecision> {
    let item_id = task.item_id?;
    let (status, kind, reason) = match c.verdict {
        Verdict::Accepted => (ItemStatus::Integrated, EventType::ItemIntegrated, None),
        Verdict::Rejected => (
            ItemStatus::Rejected,
            EventType::ItemRejected,
            c.reason.clone(),
        ),
    };
    // The input item was emitted by the previous stage.
    let event = item_event(
        kind,
        item_id,
        task.job_id,
        task.stage - 1,
        reason.as_deref(),
    );
    Some(ItemDecision {
        item_id,
        status,
        reason,
        event,
    })
}

/// `task.succeeded`, with the verdict (and reason) for a task that judged an item.
pub(crate) fn succeeded_event(task: &Task, c: &TaskCompletion) -> NewEvent {
    let extra = if task.item_id.is_some() {
        json!({ "verdict": c.verdict, "reason": c.reason })
    } else {
        json!({})
    };
    task_event(EventType::TaskSucceeded, task, Some(c.agent_id), extra)
}

/// The items a completed task emitted, and what becomes of them.
pub(crate) struct Emission {
    /// One per id (the first wins), in emission order, `stage = task.stage`.
    pub items: Vec<NewItem>,
    /// `pending` when a next stage takes them, `integrated` after the last stage.
    pub status: ItemStatus,
    next: Option<NewTask>,
}

/// Plans the emitted items of `task` (in a job with `job`'s pipeline).
pub(crate) fn emission(
    task: &Task,
    job: &JobHead,
    emitted: &[(Uuid, serde_json::Value)],
) -> Emission {
    let mut seen = HashSet::new();
    let items = emitted
        .iter()
        .filter(|(id, _)| seen.insert(*id))
        .map(|(id, data)| NewItem {
            id: *id,
            job_id: task.job_id,
            source_task_id: Some(task.id),
            stage: task.stage,
            data: data.clone(),
        })
        .collect();
    let next_stage = task.stage + 1;
    let next = usize::try_from(next_stage)
        .ok()
        .and_then(|i| job.pipeline.0.get(i))
        .map(|capability| NewTask {
            id: Uuid::nil(),
            job_id: task.job_id,
            stage: next_stage,
            capability: capability.clone(),
            item_id: None,
            priority: job.priority,
            max_attempts: job.max_attempts,
        });
    Emission {
        items,
        status: if next.is_some() {
            ItemStatus::Pending
        } else {
            ItemStatus::Integrated
        },
        next,
    }
}

impl Emission {
    /// Given the ids actually stored (a repeated id is skipped): the
    /// next-stage tasks to insert and the events, per item in emission order
    /// (`item.created`, then `task.created` or `item.integrated`).
    pub fn settle(&self, stored: &HashSet<Uuid>) -> (Vec<NewTask>, Vec<NewEvent>) {
        let mut tasks = Vec::new();
        let mut events = Vec::new();
        for item in self.items.iter().filter(|i| stored.contains(&i.id)) {
            events.push(super::item_created_event(item));
            match &self.next {
                Some(next) => {
                    let task = NewTask {
                        id: Uuid::now_v7(),
                        item_id: Some(item.id),
                        ..next.clone()
                    };
                    events.push(task.event());
                    tasks.push(task);
                }
                None => events.push(item_event(
                    EventType::ItemIntegrated,
                    item.id,
                    item.job_id,
                    item.stage,
                    None,
                )),
            }
        }
        (tasks, events)
    }
}

/// What a failed attempt leads to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FailurePlan {
    /// Back to `pending`, due at `next_run_at`.
    Retry { next_run_at: DateTime<Utc> },
    /// Failed for good; a stage-0 task fails its job with `job_reason`.
    Fail { job_reason: Option<String> },
}

/// Retry while the failure allows it and `failures + 1 < max_attempts`;
/// `random_unit` (0..1) places the delay within the policy's jitter.
pub(crate) fn plan_failure(
    task: &Task,
    failure: &TaskFailure,
    at: DateTime<Utc>,
    random_unit: f64,
) -> FailurePlan {
    let failures = task.failures.saturating_add(1);
    match &failure.retry {
        Some(policy) if failures < task.max_attempts => {
            let delay = policy.delay(failures.unsigned_abs(), random_unit);
            let delay = TimeDelta::from_std(delay).unwrap_or(TimeDelta::days(365));
            FailurePlan::Retry {
                next_run_at: (at + delay).trunc_subsecs(6),
            }
        }
        _ => FailurePlan::Fail {
            job_reason: (task.stage == 0)
                .then(|| format!("stage 1 ({}) failed: {}", task.capability, failure.error)),
        },
    }
}

/// What becomes of a `waiting` job once one of its dependencies finished.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Release {
    /// Every dependency completed: `queued`, with its stage-0 task.
    Queue,
    /// A dependency failed or was cancelled: `failed` with this reason.
    Fail(String),
    /// Some dependency is still unfinished.
    Wait,
}

/// Decides a waiting job from its dependencies' `(id, status)`, sorted by id:
/// the first failed or cancelled dependency fails it.
pub(crate) fn release(deps: &[(Uuid, String)]) -> Result<Release, StoreError> {
    let mut all_completed = true;
    for (id, status) in deps {
        match parse_status::<JobStatus>(status, "job", *id)? {
            JobStatus::Completed => {}
            JobStatus::Failed => return Ok(Release::Fail(format!("dependency {id} failed"))),
            JobStatus::Cancelled => {
                return Ok(Release::Fail(format!("dependency {id} was cancelled")));
            }
            JobStatus::Waiting | JobStatus::Queued | JobStatus::Running => all_completed = false,
        }
    }
    Ok(if all_completed {
        Release::Queue
    } else {
        Release::Wait
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use switchyard_agent::protocol::Usage;

    use super::*;
    use crate::domain::{RetryPolicy, TaskStatus};

    fn task(stage: i32, failures: i32) -> Task {
        let at = crate::store::shared::now();
        Task {
            id: Uuid::from_u128(7),
            job_id: Uuid::from_u128(9),
            stage,
            capability: "extract".into(),
            status: TaskStatus::Running,
            item_id: (stage > 0).then(|| Uuid::from_u128(3)),
            priority: 5,
            attempt: failures + 1,
            failures,
            max_attempts: 3,
            agent_id: None,
            lease_until: None,
            next_run_at: at,
            error: None,
            created_at: at,
            updated_at: at,
        }
    }

    fn failure(retry: bool) -> TaskFailure {
        TaskFailure {
            task_id: Uuid::from_u128(7),
            attempt: 1,
            agent_id: None,
            error: "boom".into(),
            retry: retry.then_some(RetryPolicy {
                initial: Duration::from_secs(2),
                factor: 2.0,
                max: Duration::from_secs(60),
            }),
        }
    }

    #[test]
    fn retries_while_attempts_are_left() {
        let at = crate::store::shared::now();
        assert_eq!(
            plan_failure(&task(0, 0), &failure(true), at, 1.0),
            FailurePlan::Retry {
                next_run_at: at + TimeDelta::seconds(2)
            }
        );
        assert_eq!(
            plan_failure(&task(1, 1), &failure(true), at, 0.0),
            FailurePlan::Retry {
                next_run_at: at + TimeDelta::seconds(2)
            },
            "delay(2) = 4s, jittered down to half"
        );
        assert_eq!(
            plan_failure(&task(0, 2), &failure(true), at, 1.0),
            FailurePlan::Fail {
                job_reason: Some("stage 1 (extract) failed: boom".into())
            }
        );
        assert_eq!(
            plan_failure(&task(1, 0), &failure(false), at, 1.0),
            FailurePlan::Fail { job_reason: None }
        );
    }

    #[test]
    fn the_first_failed_or_cancelled_dependency_decides() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let deps = |x: &str, y: &str| vec![(a, x.to_owned()), (b, y.to_owned())];
        assert_eq!(
            release(&deps("completed", "completed")).ok(),
            Some(Release::Queue)
        );
        assert_eq!(
            release(&deps("completed", "running")).ok(),
            Some(Release::Wait)
        );
        assert_eq!(
            release(&deps("running", "cancelled")).ok(),
            Some(Release::Fail(format!("dependency {b} was cancelled")))
        );
        assert_eq!(
            release(&deps("failed", "cancelled")).ok(),
            Some(Release::Fail(format!("dependency {a} failed")))
        );
        assert!(release(&deps("done", "completed")).is_err());
    }

    #[test]
    fn emitted_items_are_deduplicated_and_feed_the_next_stage() {
        let job = JobHead {
            id: Uuid::from_u128(9),
            pipeline: Json(vec!["extract".into(), "validate".into()]),
            priority: 8,
            max_attempts: 4,
        };
        let (x, y) = (Uuid::from_u128(10), Uuid::from_u128(11));
        let emitted = [(x, json!(1)), (y, json!(2)), (x, json!(3))];
        let plan = emission(&task(0, 0), &job, &emitted);
        assert_eq!(plan.items.iter().map(|i| i.id).collect::<Vec<_>>(), [x, y]);
        assert_eq!(plan.items[0].data, json!(1));
        assert_eq!(plan.status, ItemStatus::Pending);
        let (tasks, events) = plan.settle(&HashSet::from([y]));
        assert_eq!(tasks.len(), 1);
        assert_eq!(
            (
                tasks[0].stage,
                tasks[0].capability.as_str(),
                tasks[0].item_id
            ),
            (1, "validate", Some(y))
        );
        assert_eq!((tasks[0].priority, tasks[0].max_attempts), (8, 4));
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["item.created", "task.created"]);

        let last = emission(&task(1, 0), &job, &emitted[..1]);
        assert_eq!(last.status, ItemStatus::Integrated);
        let (tasks, events) = last.settle(&HashSet::from([x]));
        assert!(tasks.is_empty());
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["item.created", "item.integrated"]);
    }

    #[test]
    fn task_events_carry_the_attempt_and_extras() {
        let t = task(1, 0);
        let c = TaskCompletion {
            task_id: t.id,
            attempt: 1,
            agent_id: Uuid::from_u128(5),
            output: json!({}),
            verdict: Verdict::Rejected,
            reason: Some("vague".into()),
            usage: Usage::default(),
            items: vec![],
        };
        let e = succeeded_event(&t, &c);
        assert_eq!(e.job_id, Some(t.job_id));
        assert_eq!(
            e.payload,
            json!({"task_id": t.id, "job_id": t.job_id, "stage": 1, "capability": "extract",
                   "attempt": 1, "agent_id": c.agent_id, "verdict": "rejected", "reason": "vague"})
        );
        let d = input_item_decision(&t, &c).expect("an item");
        assert_eq!(
            (d.status, d.reason.as_deref()),
            (ItemStatus::Rejected, Some("vague"))
        );
        assert_eq!(
            d.event().payload,
            json!({"item_id": Uuid::from_u128(3), "job_id": t.job_id, "stage": 0, "reason": "vague"})
        );
        assert!(input_item_decision(&task(0, 0), &c).is_none());
    }
}
