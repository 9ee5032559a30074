//! Racing writers: conditional updates give exactly one winner, and the
//! stored state and event log agree with it.
//!
//! Each race runs the two operations concurrently (`tokio::join!` on a
//! multi-threaded runtime, each on its own pooled connection where the
//! backend has several) for many jobs, alternating which starts first, so
//! both orders occur and the tests assert both outcomes.

use switchyard::domain::{JobStatus, TaskStatus};
use switchyard::store::StoreError;

use super::{TestDb, create, event_types, new_job};

const JOBS: usize = 20;

/// Runs `a` and `b` concurrently, polling `a` first in even rounds and `b`
/// first in odd ones: with a single writer (SQLite) the first polled wins the
/// connection, so alternating makes both orders happen on every backend.
async fn both<A: Future, B: Future>(round: usize, a: A, b: B) -> (A::Output, B::Output) {
    if round.is_multiple_of(2) {
        tokio::join!(a, b)
    } else {
        let (b, a) = tokio::join!(b, a);
        (a, b)
    }
}

/// Cancel and complete exclude each other: whichever commits first wins,
/// the other finds a terminal job.
pub async fn cancel_racing_completion_has_one_winner(t: TestDb) {
    let s = &t.store;
    let mut ids = Vec::new();
    for _ in 0..JOBS {
        let job = create(s, new_job("alice")).await;
        s.transition_job(job.id, &[JobStatus::Queued], JobStatus::Running, None)
            .await
            .expect("start");
        ids.push(job.id);
    }
    let (mut cancels, mut completes) = (0, 0);
    for (i, id) in ids.into_iter().enumerate() {
        let (cancel, complete) = both(
            i,
            s.cancel_job(id, "race".into()),
            s.transition_job(id, &[JobStatus::Running], JobStatus::Completed, None),
        )
        .await;
        let stored = s.get_job(id).await.expect("get").expect("found");
        let events = event_types(s, id).await;
        let terminal: Vec<&String> = events
            .iter()
            .filter(|e| *e == "job.cancelled" || *e == "job.completed")
            .collect();
        match (cancel, complete) {
            (Ok((job, tasks)), Err(StoreError::Conflict { message })) => {
                cancels += 1;
                assert_eq!(stored, job);
                assert_eq!(stored.status, JobStatus::Cancelled);
                assert_eq!(tasks.len(), 1);
                assert!(message.contains("is cancelled"), "{message}");
                assert_eq!(terminal, ["job.cancelled"]);
            }
            (Err(StoreError::Conflict { message }), Ok(job)) => {
                completes += 1;
                assert_eq!(stored, job);
                assert_eq!(stored.status, JobStatus::Completed);
                assert!(message.contains("is already completed"), "{message}");
                assert_eq!(terminal, ["job.completed"]);
                let tasks = s.list_tasks(id).await.expect("tasks");
                assert_eq!(
                    tasks[0].status,
                    TaskStatus::Pending,
                    "a lost cancel touches no task"
                );
            }
            other => panic!("expected exactly one winner, got {other:?}"),
        }
        assert_eq!(stored.version, 3, "exactly one change after the start");
    }
    assert_eq!(cancels + completes, JOBS);
    assert!(
        cancels > 0 && completes > 0,
        "both orders happened: {cancels} cancels, {completes} completions"
    );
}

/// Cancel racing a start (queued → running): a start that commits first
/// leaves a running job, which the cancel still cancels, so the cancel
/// always succeeds; a start that comes second finds the job cancelled. The
/// end state is cancelled either way, and the log tells which order happened.
pub async fn cancel_racing_start_always_ends_cancelled(t: TestDb) {
    let s = &t.store;
    let mut ids = Vec::new();
    for _ in 0..JOBS {
        ids.push(create(s, new_job("alice")).await.id);
    }
    let (mut started_first, mut cancelled_first) = (0, 0);
    for (i, id) in ids.into_iter().enumerate() {
        let (cancel, start) = both(
            i,
            s.cancel_job(id, "race".into()),
            s.transition_job(id, &[JobStatus::Queued], JobStatus::Running, None),
        )
        .await;
        let (cancelled, tasks) = cancel.expect("a cancel of a queued or running job succeeds");
        assert_eq!(tasks.len(), 1);
        let stored = s.get_job(id).await.expect("get").expect("found");
        assert_eq!(stored, cancelled);
        assert_eq!(stored.status, JobStatus::Cancelled);
        let events = event_types(s, id).await;
        match start {
            Ok(started) => {
                started_first += 1;
                assert_eq!(started.status, JobStatus::Running);
                assert_eq!(stored.version, 3);
                assert_eq!(stored.started_at, started.started_at);
                assert_eq!(
                    events,
                    [
                        "job.created",
                        "task.created",
                        "job.started",
                        "job.cancelled",
                        "task.cancelled"
                    ]
                );
            }
            Err(StoreError::Conflict { message }) => {
                cancelled_first += 1;
                assert!(message.contains("is cancelled"), "{message}");
                assert_eq!((stored.version, stored.started_at), (2, None));
                assert_eq!(
                    events,
                    [
                        "job.created",
                        "task.created",
                        "job.cancelled",
                        "task.cancelled"
                    ]
                );
            }
            Err(other) => panic!("expected Conflict, got {other:?}"),
        }
    }
    assert!(
        started_first > 0 && cancelled_first > 0,
        "both orders: {started_first}, {cancelled_first}"
    );
}

/// Two dispatchers starting the same job: exactly one wins.
pub async fn double_start_has_one_winner(t: TestDb) {
    let s = &t.store;
    for _ in 0..JOBS {
        let id = create(s, new_job("alice")).await.id;
        let (a, b) = tokio::join!(
            s.transition_job(id, &[JobStatus::Queued], JobStatus::Running, None),
            s.transition_job(id, &[JobStatus::Queued], JobStatus::Running, None),
        );
        let winner = match (a, b) {
            (Ok(job), Err(StoreError::Conflict { .. }))
            | (Err(StoreError::Conflict { .. }), Ok(job)) => job,
            other => panic!("expected exactly one winner, got {other:?}"),
        };
        let stored = s.get_job(id).await.expect("get").expect("found");
        assert_eq!((stored.status, stored.version), (JobStatus::Running, 2));
        assert_eq!(stored, winner);
        assert_eq!(
            event_types(s, id).await,
            ["job.created", "task.created", "job.started"]
        );
    }
}
