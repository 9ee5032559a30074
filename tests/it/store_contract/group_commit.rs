//! Group commit: the hot path's transitions are queued when called, applied
//! in call order, and many share a transaction; one op that is refused, or
//! that fails in the database, must not take the others with it.

use switchyard::domain::{JobStatus, TaskStatus};
use switchyard::store::{Backend, StoreError};

use super::dispatch::{agent, completion, first_task, in_secs};
use super::failures::failure;
use super::{TestDb, create, event_types, new_job};

const JOBS: usize = 12;

/// Assign, a stale start, the real start and the completion of every task
/// are queued without waiting for any commit: each real transition applies
/// after the one called before it, and each stale start is refused alone.
pub async fn queued_transitions_apply_in_call_order(t: TestDb) {
    let s = &t.store;
    let worker = agent(s, "worker").await;
    let mut tasks = Vec::new();
    for _ in 0..JOBS {
        let job = create(s, new_job("alice")).await;
        tasks.push(first_task(s, job.id).await);
    }
    let mut assigns = Vec::new();
    let mut stale = Vec::new();
    let mut starts = Vec::new();
    let mut completes = Vec::new();
    for task in &tasks {
        assigns.push(s.assign_task(task.id, task.attempt, worker, in_secs(30)));
        // Attempt 2 does not exist yet: refused, and changes nothing.
        stale.push(s.start_task(task.id, task.attempt + 2, worker, in_secs(60)));
        starts.push(s.start_task(task.id, task.attempt + 1, worker, in_secs(60)));
        let mut running = task.clone();
        running.attempt += 1;
        completes.push(s.complete_task(completion(&running, worker, &[])));
    }
    for (i, task) in tasks.iter().enumerate() {
        let assigned = assigns.remove(0).await.expect("assign");
        assert_eq!(assigned.task.expect("task").status, TaskStatus::Assigned);
        match stale.remove(0).await {
            Err(StoreError::Conflict { message }) => {
                assert!(message.contains(&task.id.to_string()), "{message}")
            }
            other => panic!("stale start {i}: expected a conflict, got {other:?}"),
        }
        assert_eq!(
            starts.remove(0).await.expect("start").status,
            TaskStatus::Running
        );
        let done = completes.remove(0).await.expect("complete");
        assert_eq!(done.task.expect("task").status, TaskStatus::Succeeded);
        assert_eq!(done.jobs[0].status, JobStatus::Completed);
        assert_eq!(
            event_types(s, task.job_id).await,
            [
                "job.created",
                "task.created",
                "task.assigned",
                "job.started",
                "task.started",
                "task.succeeded",
                "job.completed"
            ]
        );
    }
}

/// A database error in one op of a batch (here a trigger refusing one
/// failure) rolls the batch back; the other ops are applied on their own
/// and succeed, the failing one changes nothing.
pub async fn a_database_error_fails_only_its_own_op(t: TestDb) {
    match t.backend {
        Backend::Sqlite => {
            t.exec(
                "CREATE TRIGGER refuse_kaboom BEFORE UPDATE ON tasks \
                 WHEN NEW.error = 'kaboom' BEGIN SELECT RAISE(ABORT, 'kaboom refused'); END",
            )
            .await
        }
        Backend::Postgres => {
            t.exec(
                "CREATE FUNCTION refuse_kaboom() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF NEW.error = 'kaboom' THEN RAISE EXCEPTION 'kaboom refused'; END IF; \
                 RETURN NEW; END $$",
            )
            .await;
            t.exec(
                "CREATE TRIGGER refuse_kaboom BEFORE UPDATE ON tasks \
                 FOR EACH ROW EXECUTE FUNCTION refuse_kaboom()",
            )
            .await
        }
    }
    let s = &t.store;
    let worker = agent(s, "worker").await;
    let mut running = Vec::new();
    for _ in 0..3 {
        let job = create(s, new_job("alice")).await;
        running.push(super::dispatch::run(s, &first_task(s, job.id).await, worker).await);
    }
    let mut bad = failure(&running[1], Some(worker), false);
    bad.error = "kaboom".into();
    let first = s.complete_task(completion(&running[0], worker, &[]));
    let refused = s.fail_task(bad);
    let last = s.complete_task(completion(&running[2], worker, &[]));

    assert_eq!(
        first.await.expect("first").jobs[0].status,
        JobStatus::Completed
    );
    match refused.await {
        Err(StoreError::Database(e)) => assert!(e.to_string().contains("kaboom refused"), "{e}"),
        other => panic!("expected the trigger's error, got {other:?}"),
    }
    assert_eq!(
        last.await.expect("last").jobs[0].status,
        JobStatus::Completed
    );
    let tasks = s.list_tasks(running[1].job_id).await.expect("tasks");
    assert_eq!(
        (tasks[0].status, tasks[0].failures),
        (TaskStatus::Running, 0)
    );
    assert_eq!(
        event_types(s, running[1].job_id)
            .await
            .last()
            .map(String::as_str),
        Some("task.started")
    );
}
