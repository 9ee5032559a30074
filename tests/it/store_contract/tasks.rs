//! Declines, repeated item ids and the start-up reload of unfinished tasks.

use serde_json::json;
use switchyard::domain::{NewItem, TaskFailure, TaskStatus};
use uuid::Uuid;

use super::dispatch::{agent, completion, first_task, in_secs, run};
use super::{TestDb, conflict, create, event_types, new_job};

pub async fn requeue_does_not_count_a_failure(t: TestDb) {
    let s = &t.store;
    let (a, b) = (agent(s, "a").await, agent(s, "b").await);
    let job = create(s, new_job("alice")).await;
    let task = first_task(s, job.id).await;
    s.assign_task(task.id, 0, a, in_secs(30))
        .await
        .expect("assign");
    assert_eq!(
        conflict(s.requeue_task(task.id, 1, b, in_secs(0), "no".into()).await),
        format!(
            "task {} attempt 1 is not held by agent {b} (the task is at attempt 1, status assigned)",
            task.id
        )
    );
    let run_at = in_secs(5);
    let requeued = s
        .requeue_task(task.id, 1, a, run_at, "at capacity".into())
        .await
        .expect("requeue");
    assert_eq!(
        (
            requeued.status,
            requeued.attempt,
            requeued.failures,
            requeued.agent_id,
            requeued.lease_until,
            requeued.next_run_at
        ),
        (TaskStatus::Pending, 1, 0, None, None, run_at)
    );
    assert_eq!(
        conflict(s.start_task(task.id, 1, a, in_secs(60)).await),
        format!(
            "task {} attempt 1 is no longer current (the task is at attempt 1, status pending)",
            task.id
        )
    );
    // Handed out again: the next attempt, to another agent.
    let again = s
        .assign_task(task.id, 1, b, in_secs(30))
        .await
        .expect("assign again");
    assert!(again.jobs.is_empty(), "the job was already running");
    let again = again.task.expect("task");
    assert_eq!(
        (again.attempt, again.failures, again.agent_id),
        (2, 0, Some(b))
    );
    let events = s.list_events(Some(job.id), 0, 100).await.expect("events");
    let requeued_event = events
        .iter()
        .find(|e| e.kind == "task.requeued")
        .expect("requeued");
    assert_eq!(requeued_event.payload["reason"], "at capacity");
    assert_eq!(requeued_event.payload["agent_id"], json!(a));
    assert_eq!(requeued_event.payload["next_run_at"], json!(run_at));
    assert_eq!(
        event_types(s, job.id).await,
        [
            "job.created",
            "task.created",
            "task.assigned",
            "job.started",
            "task.requeued",
            "task.assigned"
        ]
    );
}

pub async fn duplicate_item_ids_are_stored_once(t: TestDb) {
    let s = &t.store;
    let worker = agent(s, "worker").await;
    let job = create(s, new_job("alice")).await;
    let t0 = run(s, &first_task(s, job.id).await, worker).await;
    // One id already stored (an earlier delivery), one repeated in the batch.
    let known = Uuid::now_v7();
    s.insert_items(vec![NewItem {
        id: known,
        job_id: job.id,
        source_task_id: Some(t0.id),
        stage: 0,
        data: json!({"text": "first delivery"}),
    }])
    .await
    .expect("insert");
    let (x, y) = (Uuid::now_v7(), Uuid::now_v7());
    let out = s
        .complete_task(completion(&t0, worker, &[x, known, y, x, y]))
        .await
        .expect("complete");
    assert_eq!(
        out.ready.iter().map(|t| t.item_id).collect::<Vec<_>>(),
        [Some(x), Some(y)]
    );
    let items = s
        .list_items(job.id, None, None, None, 100)
        .await
        .expect("items");
    assert_eq!(
        items.iter().map(|i| i.id).collect::<Vec<_>>(),
        [known, x, y]
    );
    assert_eq!(items[0].data, json!({"text": "first delivery"}));
    assert_eq!(s.list_tasks(job.id).await.expect("tasks").len(), 3);
    let kinds = event_types(s, job.id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "item.created").count(), 3);
    assert_eq!(kinds.iter().filter(|k| *k == "task.created").count(), 3);
}

pub async fn open_tasks_are_exactly_the_unfinished_ones(mut t: TestDb) {
    let worker = agent(&t.store, "worker").await;
    let s = t.store.clone();
    let pending = first_task(&s, create(&s, new_job("alice")).await.id).await;
    let assigned = first_task(&s, create(&s, new_job("alice")).await.id).await;
    s.assign_task(assigned.id, 0, worker, in_secs(30))
        .await
        .expect("assign");
    let running_job = create(&s, new_job("alice")).await;
    let running = run(&s, &first_task(&s, running_job.id).await, worker).await;
    // A succeeded task with two next-stage tasks, one of them running.
    let out = s
        .complete_task(completion(
            &running,
            worker,
            &[Uuid::now_v7(), Uuid::now_v7()],
        ))
        .await
        .expect("complete");
    let next_running = run(&s, &out.ready[1], worker).await;
    // Failed for good, and cancelled.
    let failed = run(
        &s,
        &first_task(&s, create(&s, new_job("alice")).await.id).await,
        worker,
    )
    .await;
    s.fail_task(TaskFailure {
        task_id: failed.id,
        attempt: failed.attempt,
        agent_id: Some(worker),
        error: "bad input".into(),
        retry: None,
    })
    .await
    .expect("fail");
    let cancelled_job = create(&s, new_job("alice")).await;
    s.cancel_job(cancelled_job.id, "stop".into())
        .await
        .expect("cancel");

    t.reopen().await;
    let open = t.store.open_tasks().await.expect("open");
    assert_eq!(
        open.iter().map(|t| (t.id, t.status)).collect::<Vec<_>>(),
        [
            (pending.id, TaskStatus::Pending),
            (assigned.id, TaskStatus::Assigned),
            (out.ready[0].id, TaskStatus::Pending),
            (next_running.id, TaskStatus::Running),
        ]
    );
    assert_eq!(open[3], next_running);
}
