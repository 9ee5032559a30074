//! Dispatch: assigning, starting and completing tasks through a pipeline,
//! and the fencing of stale attempts. Helpers shared by the dispatch scenarios.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::json;
use switchyard::domain::{ItemCounts, ItemStatus, JobStatus, Task, TaskCompletion, TaskStatus};
use switchyard::store::{DynStore, StoreError};
use switchyard_agent::protocol::{Usage, Verdict};
use uuid::Uuid;

use super::agents::registration;
use super::{TestDb, conflict, create, document, event_types, new_job};

/// `now + secs`, microsecond precise (what both backends store).
pub fn in_secs(secs: i64) -> DateTime<Utc> {
    (Utc::now() + Duration::seconds(secs)).trunc_subsecs(6)
}

/// Registers an agent and returns its id.
pub async fn agent(s: &DynStore, name: &str) -> Uuid {
    s.register_agent(registration(name, vec![]))
        .await
        .expect("register")
        .id
}

/// Assigns a pending task to `agent` and starts it: the running task.
pub async fn run(s: &DynStore, task: &Task, agent: Uuid) -> Task {
    let assigned = s
        .assign_task(task.id, task.attempt, agent, in_secs(30))
        .await
        .expect("assign")
        .task
        .expect("task");
    s.start_task(task.id, assigned.attempt, agent, in_secs(60))
        .await
        .expect("start")
}

/// A completion of `task` (as running) by `agent`.
pub fn completion(task: &Task, agent: Uuid, items: &[Uuid]) -> TaskCompletion {
    TaskCompletion {
        task_id: task.id,
        attempt: task.attempt,
        agent_id: agent,
        output: json!({"ok": true}),
        verdict: Verdict::Accepted,
        reason: None,
        usage: Usage {
            tokens_in: 10,
            tokens_out: 5,
            requests: 1,
            model: Some("m".into()),
        },
        items: items
            .iter()
            .map(|id| (*id, json!({"text": format!("requirement {id}")})))
            .collect(),
    }
}

/// The single pending task of a new job.
pub async fn first_task(s: &DynStore, job_id: Uuid) -> Task {
    let tasks = s.list_tasks(job_id).await.expect("tasks");
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    tasks.into_iter().next().expect("task")
}

pub async fn two_stage_job_runs_to_completion(t: TestDb) {
    let s = &t.store;
    let worker = agent(s, "worker").await;
    let mut new = new_job("alice");
    new.document = Some(document());
    let job = create(s, new).await;
    let task = first_task(s, job.id).await;
    assert_eq!((task.attempt, task.failures), (0, 0));
    assert_eq!(s.open_tasks().await.expect("open"), vec![task.clone()]);

    // Assign: attempt 1, the job starts.
    let accept_by = in_secs(30);
    let assigned = s
        .assign_task(task.id, 0, worker, accept_by)
        .await
        .expect("assign");
    let t0 = assigned.task.clone().expect("task");
    assert_eq!(
        (t0.status, t0.attempt, t0.agent_id, t0.lease_until),
        (TaskStatus::Assigned, 1, Some(worker), Some(accept_by))
    );
    assert_eq!(assigned.jobs.len(), 1);
    assert_eq!(
        (assigned.jobs[0].status, assigned.jobs[0].version),
        (JobStatus::Running, 2)
    );
    assert!(assigned.ready.is_empty());
    assert_eq!(s.list_tasks(job.id).await.expect("tasks"), vec![t0.clone()]);

    let input = s.task_input(&t0).await.expect("input");
    assert_eq!(input["job_id"], json!(job.id));
    assert_eq!(input["prompt"], "Extract the requirements");
    assert_eq!(input["context"], job.context);
    assert_eq!(input["document"]["file_name"], "spec.pdf");
    assert_eq!(input["document"]["size"], 259);
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(input["document"]["content_base64"].as_str().expect("b64"))
        .expect("standard base64");
    assert_eq!(bytes, document().bytes);

    // Start, progress, complete with two items (one sent twice).
    let lease = in_secs(60);
    let t0 = s
        .start_task(task.id, 1, worker, lease)
        .await
        .expect("start");
    assert_eq!(
        (t0.status, t0.lease_until),
        (TaskStatus::Running, Some(lease))
    );
    s.extend_lease(task.id, 1, worker, in_secs(90), json!({"percent": 50}))
        .await
        .expect("progress");
    let (i1, i2) = (Uuid::now_v7(), Uuid::now_v7());
    let done = s
        .complete_task(completion(&t0, worker, &[i1, i2, i1]))
        .await
        .expect("complete stage 0");
    let t0 = done.task.expect("task");
    assert_eq!(
        (t0.status, t0.attempt, t0.failures),
        (TaskStatus::Succeeded, 1, 0)
    );
    assert!(done.jobs.is_empty(), "the job goes on: {:?}", done.jobs);
    assert_eq!(done.ready.len(), 2);
    for (next, item) in done.ready.iter().zip([i1, i2]) {
        assert_eq!(
            (
                next.job_id,
                next.stage,
                next.capability.as_str(),
                next.item_id
            ),
            (job.id, 1, "requirements.validate", Some(item))
        );
        assert_eq!(
            (next.status, next.attempt, next.priority, next.max_attempts),
            (TaskStatus::Pending, 0, 5, 3)
        );
    }
    let tasks = s.list_tasks(job.id).await.expect("tasks");
    assert_eq!(tasks[1..], done.ready[..], "ready is what was stored");
    let items = s
        .list_items(job.id, None, None, None, 100)
        .await
        .expect("items");
    assert_eq!(items.iter().map(|i| i.id).collect::<Vec<_>>(), [i1, i2]);
    assert!(items.iter().all(|i| (i.stage, i.source_task_id, i.status)
        == (0, Some(t0.id), ItemStatus::Pending)));

    // Stage 1: the first item is accepted, the second rejected.
    let input = s.task_input(&done.ready[0]).await.expect("input");
    assert_eq!(
        input["item"],
        json!({"id": i1, "stage": 0, "data": {"text": format!("requirement {i1}")}})
    );
    let t1 = run(s, &done.ready[0], worker).await;
    assert_eq!(
        s.list_items(job.id, Some(ItemStatus::Validating), None, None, 10)
            .await
            .expect("items")[0]
            .id,
        i1
    );
    let out = s
        .complete_task(completion(&t1, worker, &[]))
        .await
        .expect("accept");
    assert!(out.jobs.is_empty() && out.ready.is_empty());
    let t2 = run(s, &done.ready[1], worker).await;
    let mut reject = completion(&t2, worker, &[]);
    reject.verdict = Verdict::Rejected;
    reject.reason = Some("not testable".into());
    let out = s.complete_task(reject).await.expect("reject");
    assert!(out.ready.is_empty());
    assert_eq!(out.jobs.len(), 1);
    let finished = &out.jobs[0];
    assert_eq!(finished.status, JobStatus::Completed);
    assert_eq!(finished.finished_at, Some(finished.updated_at));
    assert_eq!(
        &s.get_job(job.id).await.expect("get").expect("found"),
        finished
    );

    let items = s
        .list_items(job.id, None, None, None, 100)
        .await
        .expect("items");
    assert_eq!(
        items
            .iter()
            .map(|i| (i.status, i.rejection_reason.as_deref()))
            .collect::<Vec<_>>(),
        [
            (ItemStatus::Integrated, None),
            (ItemStatus::Rejected, Some("not testable"))
        ]
    );
    assert_eq!(
        s.item_counts(job.id).await.expect("counts"),
        ItemCounts {
            total: 2,
            integrated: 1,
            rejected: 1,
            ..Default::default()
        }
    );
    assert!(
        s.list_tasks(job.id)
            .await
            .expect("tasks")
            .iter()
            .all(|t| t.status == TaskStatus::Succeeded)
    );
    assert_eq!(s.open_tasks().await.expect("open"), vec![]);
    assert_eq!(
        event_types(s, job.id).await,
        [
            "job.created",
            "task.created",
            "task.assigned",
            "job.started",
            "task.started",
            "task.progress",
            "task.succeeded",
            "item.created",
            "task.created",
            "item.created",
            "task.created",
            "task.assigned",
            "task.started",
            "task.succeeded",
            "item.integrated",
            "task.assigned",
            "task.started",
            "task.succeeded",
            "item.rejected",
            "job.completed",
        ]
    );
    let events = s.list_events(Some(job.id), 0, 100).await.expect("events");
    assert_eq!(
        events[2].payload,
        json!({"task_id": task.id, "job_id": job.id, "stage": 0,
               "capability": "requirements.extract", "attempt": 1, "agent_id": worker,
               "accept_by": accept_by})
    );
    assert_eq!(
        events[8].payload,
        json!({"job_id": job.id, "task_id": done.ready[0].id, "stage": 1,
               "capability": "requirements.validate", "item_id": i1})
    );
    assert_eq!(
        events[18].payload,
        json!({"item_id": i2, "job_id": job.id, "stage": 0, "reason": "not testable"})
    );
    assert_eq!(events[17].payload["verdict"], "rejected");
}

pub async fn last_stage_items_are_integrated_at_once(t: TestDb) {
    let s = &t.store;
    let worker = agent(s, "worker").await;
    let mut new = new_job("alice");
    new.pipeline = vec!["summarize".into()];
    let job = create(s, new).await;
    let t0 = run(s, &first_task(s, job.id).await, worker).await;
    let input = s.task_input(&t0).await.expect("input");
    assert_eq!(input["document"], json!(null));
    let item = Uuid::now_v7();
    let out = s
        .complete_task(completion(&t0, worker, &[item]))
        .await
        .expect("complete");
    assert!(out.ready.is_empty());
    assert_eq!(out.jobs[0].status, JobStatus::Completed);
    let items = s
        .list_items(job.id, None, None, None, 10)
        .await
        .expect("items");
    assert_eq!(
        (items.len(), items[0].status, items[0].stage),
        (1, ItemStatus::Integrated, 0)
    );
    let kinds = event_types(s, job.id).await;
    assert_eq!(
        kinds[kinds.len() - 4..],
        [
            "task.succeeded",
            "item.created",
            "item.integrated",
            "job.completed"
        ]
    );
}

pub async fn stale_attempts_are_conflicts_and_change_nothing(t: TestDb) {
    let s = &t.store;
    let (a, b) = (agent(s, "a").await, agent(s, "b").await);
    let job = create(s, new_job("alice")).await;
    let task = first_task(s, job.id).await;
    let id = task.id;

    // Assign with an attempt that is not the current one.
    let message = conflict(s.assign_task(id, 3, a, in_secs(30)).await);
    assert_eq!(
        message,
        format!(
            "task {id} attempt 3 is no longer current (the task is at attempt 0, status pending)"
        )
    );
    let assigned = s
        .assign_task(id, 0, a, in_secs(30))
        .await
        .expect("assign")
        .task
        .expect("task");
    let message = conflict(s.assign_task(id, 0, b, in_secs(30)).await);
    assert_eq!(
        message,
        format!(
            "task {id} attempt 0 is no longer current (the task is at attempt 1, status assigned)"
        )
    );
    let message = conflict(s.start_task(id, 1, b, in_secs(60)).await);
    assert_eq!(
        message,
        format!(
            "task {id} attempt 1 is not held by agent {b} (the task is at attempt 1, status assigned)"
        )
    );
    let message = conflict(s.complete_task(completion(&assigned, a, &[])).await);
    assert_eq!(
        message,
        format!("task {id} attempt 1 is assigned; only running tasks can complete")
    );
    let message = conflict(s.extend_lease(id, 1, a, in_secs(60), json!({})).await);
    assert_eq!(
        message,
        format!("task {id} attempt 1 is assigned; only running tasks can report progress")
    );
    let running = s.start_task(id, 1, a, in_secs(60)).await.expect("start");

    let tasks_before = s.list_tasks(job.id).await.expect("tasks");
    let events_before = s.list_events(None, 0, 1000).await.expect("events");
    let job_before = s.get_job(job.id).await.expect("get");

    let mut stale = completion(&running, a, &[Uuid::now_v7()]);
    stale.attempt = 0;
    assert_eq!(
        conflict(s.complete_task(stale).await),
        format!(
            "task {id} attempt 0 is no longer current (the task is at attempt 1, status running)"
        )
    );
    assert_eq!(
        conflict(
            s.complete_task(completion(&running, b, &[Uuid::now_v7()]))
                .await
        ),
        format!(
            "task {id} attempt 1 is not held by agent {b} (the task is at attempt 1, status running)"
        )
    );
    assert_eq!(
        conflict(s.requeue_task(id, 1, a, in_secs(0), "busy".into()).await),
        format!("task {id} attempt 1 is running; only assigned tasks can be requeued")
    );
    assert!(matches!(
        s.complete_task(completion(
            &Task {
                id: Uuid::now_v7(),
                ..running.clone()
            },
            a,
            &[]
        ))
        .await,
        Err(StoreError::NotFound("task"))
    ));
    assert!(matches!(
        s.assign_task(Uuid::now_v7(), 0, a, in_secs(1)).await,
        Err(StoreError::NotFound("task"))
    ));

    assert_eq!(s.list_tasks(job.id).await.expect("tasks"), tasks_before);
    assert_eq!(
        s.list_events(None, 0, 1000).await.expect("events"),
        events_before
    );
    assert_eq!(s.get_job(job.id).await.expect("get"), job_before);
    assert_eq!(
        s.list_items(job.id, None, None, None, 10)
            .await
            .expect("items"),
        vec![]
    );

    // Once completed, a repeated completion is stale too.
    let done = s
        .complete_task(completion(&running, a, &[]))
        .await
        .expect("complete");
    assert_eq!(done.task.expect("task").status, TaskStatus::Succeeded);
    assert_eq!(
        conflict(s.complete_task(completion(&running, a, &[])).await),
        format!(
            "task {id} attempt 1 is no longer current (the task is at attempt 1, status succeeded)"
        )
    );

    // A task of a finished job is not handed out.
    let other = create(s, new_job("alice")).await;
    let pending = first_task(s, other.id).await;
    s.transition_job(other.id, &[JobStatus::Queued], JobStatus::Failed, None)
        .await
        .expect("fail job");
    assert_eq!(
        conflict(s.assign_task(pending.id, 0, a, in_secs(30)).await),
        format!(
            "task {} attempt 0 cannot be assigned: its job {} is failed",
            pending.id, other.id
        )
    );
}
