//! Dispatch races: outcomes of one attempt, the last tasks of a job and the
//! dependencies of a waiting job, each finishing concurrently. Exactly one
//! writer wins each race, and a job completes (or is released) exactly once.

use futures::future::join_all;
use switchyard::domain::{JobStatus, TaskStatus};
use switchyard::store::StoreError;
use uuid::Uuid;

use super::dispatch::{agent, completion, first_task, run};
use super::failures::{depending_on, failure};
use super::{TestDb, create, event_types, new_job};

/// Runs `a` and `b` concurrently, polling `a` first in even rounds and `b`
/// first in odd ones, so both orders happen on every backend.
///
/// The hot path's transitions are queued when called (group commit applies
/// them in call order), so the calls themselves alternate, not just the polls.
async fn both<A: Future, B: Future>(
    round: usize,
    a: impl FnOnce() -> A,
    b: impl FnOnce() -> B,
) -> (A::Output, B::Output) {
    if round.is_multiple_of(2) {
        let (a, b) = (a(), b());
        tokio::join!(a, b)
    } else {
        let (b, a) = (b(), a());
        let (b, a) = tokio::join!(b, a);
        (a, b)
    }
}

/// The agent completes an attempt just as the hub times it out: exactly one
/// of the two is recorded, and the loser changes nothing.
pub async fn completion_racing_a_hub_failure_has_one_winner(t: TestDb) {
    const ROUNDS: usize = 20;
    let s = &t.store;
    let worker = agent(s, "worker").await;
    let (mut completed, mut failed) = (0, 0);
    for round in 0..ROUNDS {
        let job = create(s, new_job("alice")).await;
        let task = run(s, &first_task(s, job.id).await, worker).await;
        let item = Uuid::now_v7();
        let (done, timed_out) = both(
            round,
            || s.complete_task(completion(&task, worker, &[item])),
            || s.fail_task(failure(&task, None, true)),
        )
        .await;
        let stored = s.list_tasks(job.id).await.expect("tasks");
        let kinds = event_types(s, job.id).await;
        let count = |k: &str| kinds.iter().filter(|e| *e == k).count();
        match (done, timed_out) {
            (Ok(out), Err(StoreError::Conflict { message })) => {
                completed += 1;
                assert_eq!(stored[0].status, TaskStatus::Succeeded);
                assert_eq!(stored[0].failures, 0);
                assert_eq!(out.ready.len(), 1);
                assert_eq!(stored.len(), 2);
                assert!(message.contains("status succeeded"), "{message}");
                assert_eq!((count("task.succeeded"), count("task.retrying")), (1, 0));
            }
            (Err(StoreError::Conflict { message }), Ok(out)) => {
                failed += 1;
                assert_eq!(
                    (stored[0].status, stored[0].failures),
                    (TaskStatus::Pending, 1)
                );
                assert_eq!(out.ready, stored);
                assert_eq!(
                    message,
                    format!(
                        "task {} attempt 1 is no longer current (the task is at attempt 1, status pending)",
                        task.id
                    )
                );
                assert_eq!((count("task.succeeded"), count("task.retrying")), (0, 1));
                assert_eq!(
                    s.list_items(job.id, None, None, None, 10)
                        .await
                        .expect("items"),
                    vec![]
                );
            }
            other => panic!("expected exactly one winner, got {other:?}"),
        }
    }
    assert_eq!(completed + failed, ROUNDS);
    assert!(
        completed > 0 && failed > 0,
        "both orders happened: {completed} completions, {failed} failures"
    );
}

/// The last tasks of a job finish at the same time: each sees the others
/// (they serialise on the job), so the job completes exactly once.
pub async fn last_tasks_finishing_together_complete_the_job_once(t: TestDb) {
    const ITEMS: usize = 6;
    let s = &t.store;
    let worker = agent(s, "worker").await;
    for round in 0..5 {
        let job = create(s, new_job("alice")).await;
        let t0 = run(s, &first_task(s, job.id).await, worker).await;
        let items: Vec<Uuid> = (0..ITEMS).map(|_| Uuid::now_v7()).collect();
        let out = s
            .complete_task(completion(&t0, worker, &items))
            .await
            .expect("stage 0");
        let mut running = Vec::new();
        for task in &out.ready {
            running.push(run(s, task, worker).await);
        }
        // Half complete, half fail for good (the item fails), all at once.
        let finishing = running.iter().enumerate().map(|(i, task)| async move {
            if (i + round) % 2 == 0 {
                s.complete_task(completion(task, worker, &[])).await
            } else {
                s.fail_task(failure(task, Some(worker), false)).await
            }
        });
        let outcomes: Vec<_> = join_all(finishing).await;
        let completed_by: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter_map(|(i, o)| {
                let o = o.as_ref().expect("each finishes its own task");
                o.jobs
                    .iter()
                    .any(|j| j.id == job.id && j.status == JobStatus::Completed)
                    .then_some(i)
            })
            .collect();
        assert_eq!(completed_by.len(), 1, "exactly one completes the job");
        let kinds = event_types(s, job.id).await;
        assert_eq!(kinds.iter().filter(|k| *k == "job.completed").count(), 1);
        assert_eq!(kinds.last().map(String::as_str), Some("job.completed"));
        let stored = s.get_job(job.id).await.expect("get").expect("found");
        assert_eq!(stored.status, JobStatus::Completed);
        let counts = s.item_counts(job.id).await.expect("counts");
        assert_eq!((counts.integrated + counts.failed, counts.total), (6, 6));
    }
}

/// Both dependencies of a waiting job complete at the same time: the job is
/// released exactly once, with one first task.
pub async fn dependencies_finishing_together_release_once(t: TestDb) {
    let s = &t.store;
    let worker = agent(s, "worker").await;
    for round in 0..10 {
        let single = || {
            let mut job = new_job("alice");
            job.pipeline = vec!["summarize".into()];
            job
        };
        let a = create(s, single()).await;
        let b = create(s, single()).await;
        let waiting = create(s, depending_on(&[a.id, b.id])).await;
        assert_eq!(waiting.status, JobStatus::Waiting);
        let ta = run(s, &first_task(s, a.id).await, worker).await;
        let tb = run(s, &first_task(s, b.id).await, worker).await;
        let (oa, ob) = both(
            round,
            || s.complete_task(completion(&ta, worker, &[])),
            || s.complete_task(completion(&tb, worker, &[])),
        )
        .await;
        let (oa, ob) = (oa.expect("complete a"), ob.expect("complete b"));
        let released: Vec<_> = oa.ready.iter().chain(&ob.ready).collect();
        assert_eq!(released.len(), 1, "released by exactly one of them");
        assert_eq!(released[0].job_id, waiting.id);
        let tasks = s.list_tasks(waiting.id).await.expect("tasks");
        assert_eq!(tasks, vec![released[0].clone()]);
        assert_eq!(tasks[0].status, TaskStatus::Pending);
        assert_eq!(
            event_types(s, waiting.id).await,
            ["job.created", "job.queued", "task.created"]
        );
    }
}
