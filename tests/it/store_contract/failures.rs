//! Failed attempts (retries with backoff, final failure of a task, its item
//! and its job) and job dependencies.

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use serde_json::json;
use switchyard::domain::{
    ItemStatus, JobStatus, NewJob, RetryPolicy, Task, TaskFailure, TaskStatus,
};
use switchyard::store::DynStore;
use uuid::Uuid;

use super::dispatch::{agent, completion, first_task, run};
use super::{TestDb, create, event_types, new_job};

const POLICY: RetryPolicy = RetryPolicy {
    initial: StdDuration::from_millis(100),
    factor: 2.0,
    max: StdDuration::from_secs(1),
};

pub fn failure(task: &Task, agent: Option<Uuid>, retry: bool) -> TaskFailure {
    TaskFailure {
        task_id: task.id,
        attempt: task.attempt,
        agent_id: agent,
        error: "boom".into(),
        retry: retry.then_some(POLICY),
    }
}

pub fn depending_on(deps: &[Uuid]) -> NewJob {
    let mut job = new_job("alice");
    job.depends_on = deps.to_vec();
    job
}

async fn status(s: &DynStore, id: Uuid) -> (JobStatus, Option<String>) {
    let job = s.get_job(id).await.expect("get").expect("found");
    (job.status, job.status_reason)
}

pub async fn retries_until_max_attempts_then_fails_the_job_and_its_dependents(t: TestDb) {
    let s = &t.store;
    let worker = agent(s, "worker").await;
    let job = create(s, new_job("alice")).await;
    let b = create(s, depending_on(&[job.id])).await;
    let c = create(s, depending_on(&[b.id])).await;
    assert_eq!(
        (b.status, c.status),
        (JobStatus::Waiting, JobStatus::Waiting)
    );
    let mut task = first_task(s, job.id).await;

    for attempt in 1..=2 {
        let running = run(s, &task, worker).await;
        assert_eq!(running.attempt, attempt);
        let before = Utc::now();
        let out = s
            .fail_task(failure(&running, Some(worker), true))
            .await
            .expect("fail");
        let after = Utc::now();
        let retried = out.task.expect("task");
        assert_eq!(
            (
                retried.status,
                retried.attempt,
                retried.failures,
                retried.agent_id,
                retried.lease_until,
                retried.error.as_deref()
            ),
            (
                TaskStatus::Pending,
                attempt,
                attempt,
                None,
                None,
                Some("boom")
            )
        );
        // Backoff: delay(n) = 100ms * 2^(n-1), jittered within its upper half.
        let full = Duration::milliseconds(100 << (attempt - 1));
        assert!(
            retried.next_run_at >= (before + full / 2 - Duration::milliseconds(1))
                && retried.next_run_at <= after + full,
            "next_run_at {} for attempt {attempt}",
            retried.next_run_at
        );
        assert_eq!(out.ready, vec![retried.clone()]);
        assert!(out.jobs.is_empty());
        assert_eq!(first_task(s, job.id).await, retried);
        task = retried;
    }

    // The third failure is the last one (max_attempts 3): the job fails, and
    // so do the jobs waiting on it, transitively.
    let running = run(s, &task, worker).await;
    let out = s
        .fail_task(failure(&running, None, true))
        .await
        .expect("fail");
    let failed = out.task.expect("task");
    assert_eq!(
        (
            failed.status,
            failed.attempt,
            failed.failures,
            failed.agent_id
        ),
        (TaskStatus::Failed, 3, 3, Some(worker))
    );
    assert!(out.ready.is_empty());
    let reason = "stage 1 (requirements.extract) failed: boom";
    assert_eq!(
        out.jobs
            .iter()
            .map(|j| (j.id, j.status, j.status_reason.clone().unwrap_or_default()))
            .collect::<Vec<_>>(),
        [
            (job.id, JobStatus::Failed, reason.to_owned()),
            (
                b.id,
                JobStatus::Failed,
                format!("dependency {} failed", job.id)
            ),
            (
                c.id,
                JobStatus::Failed,
                format!("dependency {} failed", b.id)
            ),
        ]
    );
    assert_eq!(
        out.jobs[0],
        s.get_job(job.id).await.expect("get").expect("found")
    );
    assert!(out.jobs.iter().all(|j| j.finished_at.is_some()));
    assert_eq!(
        event_types(s, job.id).await,
        [
            "job.created",
            "task.created",
            "task.assigned",
            "job.started",
            "task.started",
            "task.retrying",
            "task.assigned",
            "task.started",
            "task.retrying",
            "task.assigned",
            "task.started",
            "task.failed",
            "job.failed",
        ]
    );
    assert_eq!(event_types(s, b.id).await, ["job.created", "job.failed"]);
    assert_eq!(event_types(s, c.id).await, ["job.created", "job.failed"]);
    let events = s.list_events(Some(job.id), 0, 100).await.expect("events");
    assert_eq!(events[5].payload["error"], "boom");
    assert_eq!(events[5].payload["agent_id"], json!(worker));
    assert!(events[5].payload["next_run_at"].is_string());
    assert_eq!(events[11].payload["agent_id"], json!(worker));
    assert_eq!(s.open_tasks().await.expect("open"), vec![]);
}

pub async fn a_later_stage_failure_fails_the_item_and_the_job_completes(t: TestDb) {
    let s = &t.store;
    let worker = agent(s, "worker").await;
    let job = create(s, new_job("alice")).await;
    let t0 = run(s, &first_task(s, job.id).await, worker).await;
    let (i1, i2) = (Uuid::now_v7(), Uuid::now_v7());
    let out = s
        .complete_task(completion(&t0, worker, &[i1, i2]))
        .await
        .expect("complete");

    // Not retryable: fails at once, however many attempts are left.
    let t1 = run(s, &out.ready[0], worker).await;
    let failed = s
        .fail_task(failure(&t1, Some(worker), false))
        .await
        .expect("fail");
    assert_eq!(failed.task.expect("task").status, TaskStatus::Failed);
    assert!(failed.jobs.is_empty(), "the other item is still open");
    let t2 = run(s, &out.ready[1], worker).await;
    let done = s
        .complete_task(completion(&t2, worker, &[]))
        .await
        .expect("complete");
    assert_eq!(done.jobs.len(), 1);
    assert_eq!(done.jobs[0].status, JobStatus::Completed);

    let items = s
        .list_items(job.id, None, None, None, 10)
        .await
        .expect("items");
    assert_eq!(
        items
            .iter()
            .map(|i| (i.id, i.status, i.last_error.as_deref(), i.retry_count))
            .collect::<Vec<_>>(),
        [
            (i1, ItemStatus::Failed, Some("boom"), 1),
            (i2, ItemStatus::Integrated, None, 0)
        ]
    );
    let kinds = event_types(s, job.id).await;
    assert_eq!(
        kinds[kinds.len() - 9..],
        [
            "task.assigned",
            "task.started",
            "task.failed",
            "item.failed",
            "task.assigned",
            "task.started",
            "task.succeeded",
            "item.integrated",
            "job.completed",
        ]
    );
    let events = s.list_events(Some(job.id), 0, 100).await.expect("events");
    let item_failed = events
        .iter()
        .find(|e| e.kind == "item.failed")
        .expect("item.failed");
    assert_eq!(
        item_failed.payload,
        json!({"item_id": i1, "job_id": job.id, "stage": 0, "reason": "boom"})
    );
}

pub async fn waiting_jobs_are_released_or_failed_with_their_dependencies(t: TestDb) {
    let s = &t.store;
    let worker = agent(s, "worker").await;
    let mut single = new_job("alice");
    single.pipeline = vec!["summarize".into()];
    let a = create(s, single).await;
    let other = create(s, new_job("alice")).await;
    let b = create(s, depending_on(&[a.id])).await;
    let both = create(s, depending_on(&[a.id, other.id])).await;

    let ta = run(s, &first_task(s, a.id).await, worker).await;
    let out = s
        .complete_task(completion(&ta, worker, &[]))
        .await
        .expect("complete a");
    assert_eq!(
        out.jobs
            .iter()
            .map(|j| (j.id, j.status))
            .collect::<Vec<_>>(),
        [(a.id, JobStatus::Completed), (b.id, JobStatus::Queued)],
        "`both` still waits for `other`"
    );
    assert_eq!(out.ready.len(), 1);
    let released = &out.ready[0];
    assert_eq!(
        (
            released.job_id,
            released.stage,
            released.status,
            released.attempt
        ),
        (b.id, 0, TaskStatus::Pending, 0)
    );
    assert_eq!(first_task(s, b.id).await, *released);
    assert_eq!(
        event_types(s, b.id).await,
        ["job.created", "job.queued", "task.created"]
    );
    assert_eq!(status(s, both.id).await, (JobStatus::Waiting, None));

    // Cancelling the other dependency fails the job waiting on both.
    s.cancel_job(other.id, "stop".into()).await.expect("cancel");
    assert_eq!(
        status(s, both.id).await,
        (
            JobStatus::Failed,
            Some(format!("dependency {} was cancelled", other.id))
        )
    );
    assert_eq!(event_types(s, both.id).await, ["job.created", "job.failed"]);
    let kinds = event_types(s, other.id).await;
    assert_eq!(kinds.last().map(String::as_str), Some("task.cancelled"));

    // A job moved to failed by hand fails its dependents too.
    let d = create(s, new_job("alice")).await;
    let e = create(s, depending_on(&[d.id])).await;
    s.transition_job(d.id, &[JobStatus::Queued], JobStatus::Failed, None)
        .await
        .expect("fail d");
    assert_eq!(
        status(s, e.id).await,
        (
            JobStatus::Failed,
            Some(format!("dependency {} failed", d.id))
        )
    );
}
