//! Stuck work: a silent agent, a row the dispatcher does not know, a task
//! left running across a restart, an item left validating with no task, a
//! job past its timeout, and retrying failed items.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use switchyard::auth::Role;
use switchyard::config::RawConfig;
use switchyard_agent::TaskError;
use switchyard_tests::raw_agent::RawAgent;
use switchyard_tests::{Backend, TestApp, spawn_app_with};

use super::support::{agent, create, events_of, exec_sql, get, post, wait_until};

/// One `#[tokio::test]` per backend for `async fn name(Backend)`.
macro_rules! both {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(switchyard_tests::Backend::Sqlite).await; })+
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(switchyard_tests::Backend::Postgres).await; })+
        }
    };
}

both!(
    a_silent_agent_is_reported_stuck_and_its_task_taken_back,
    a_row_the_dispatcher_does_not_know_is_recovered_by_the_monitor,
    a_task_left_running_by_a_stopped_hub_is_taken_back_after_restart,
    an_item_left_validating_without_a_task_gets_a_new_one,
    a_job_past_its_timeout_fails_with_a_clear_reason,
    retry_failed_requeues_the_failed_items
);

fn fast(c: &mut RawConfig) {
    c.monitor_interval = "50ms".into();
    c.reconnect_grace = "100ms".into();
    c.stuck_grace = "100ms".into();
    c.retry_initial = "10ms".into();
}

fn ok_agent(app: &TestApp, name: &str, capability: &str) -> switchyard_agent::AgentHandle {
    agent(app, name, capability, |_ctx, _input: Value| async {
        Ok::<Value, TaskError>(json!({}))
    })
}

async fn accept_one(raw: &mut RawAgent) -> (Value, u64) {
    let task = raw.expect_type("task").await;
    let attempt = task["attempt"].as_u64().unwrap();
    raw.send(json!({"type": "accept", "task_id": task["task_id"], "attempt": attempt}))
        .await;
    (task["task_id"].clone(), attempt)
}

async fn stage0_task(app: &TestApp, job_id: &str) -> switchyard::domain::Task {
    app.store()
        .list_tasks(job_id.parse().unwrap())
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.stage == 0)
        .unwrap()
}

async fn a_silent_agent_is_reported_stuck_and_its_task_taken_back(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        fast(c);
        c.lease = "1500ms".into();
        c.stuck_after = "300ms".into();
    })
    .await;
    let (mut silent, _) = RawAgent::hello(&app, "silent", "test.work", 1, json!([])).await;
    let job_id = create(&app, &["test.work"], json!({})).await;
    accept_one(&mut silent).await;

    // Accepted, then nothing: after stuck_after the job is listed, with why.
    let stuck = wait_until(&app, "/v1/jobs/stuck", Duration::from_secs(10), |s| {
        s["jobs"].as_array().is_some_and(|j| !j.is_empty())
    })
    .await;
    let job = &stuck["jobs"][0];
    assert_eq!(job["job_id"], job_id.as_str());
    assert_eq!(job["status"], "running");
    assert_eq!(job["held_tasks"], 1);
    let reason = job["reason"].as_str().unwrap();
    assert!(reason.starts_with("no event for"), "{reason}");
    assert!(
        reason.contains("1 task(s) are held by agents that report no progress"),
        "{reason}"
    );

    // A working agent stands by; when the lease runs out the task moves to it.
    let good = ok_agent(&app, "good", "test.work");
    good.wait_connected().await.unwrap();
    app.wait_for_job(&job_id, "completed", Duration::from_secs(15))
        .await;
    let task = stage0_task(&app, &job_id).await;
    assert_eq!((task.attempt, task.failures), (2, 1));
    let retrying = events_of(&app, &job_id, "task.retrying").await;
    assert_eq!(retrying.len(), 1);
    assert!(
        retrying[0].payload["error"]
            .as_str()
            .unwrap()
            .contains("lease expired"),
        "{:?}",
        retrying[0].payload
    );
    let (_, stuck) = get(&app, "/v1/jobs/stuck").await;
    assert_eq!(stuck["jobs"], json!([]));
    good.kill();
    silent.close().await;
}

async fn a_row_the_dispatcher_does_not_know_is_recovered_by_the_monitor(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        fast(c);
        c.stuck_grace = "1500ms".into();
    })
    .await;
    let job_id = create(&app, &["test.later"], json!({})).await;
    // Nobody offers the capability: the dispatcher holds the task in its
    // queue. Behind its back the row is handed to an agent that does not
    // exist, with a lease that has already run out (as another node that
    // crashed would leave it).
    let task = stage0_task(&app, &job_id).await;
    let ghost = uuid::Uuid::now_v7();
    app.store()
        .assign_task(task.id, 0, ghost, Utc::now())
        .await
        .unwrap();

    let (_, stuck) = get(&app, "/v1/jobs/stuck").await;
    assert_eq!(stuck["tasks"].as_array().unwrap().len(), 1, "{stuck}");
    let listed = &stuck["tasks"][0];
    assert_eq!(listed["task_id"], task.id.to_string());
    assert_eq!(listed["status"], "assigned");
    assert_eq!(listed["attempt"], 1);
    assert_eq!(listed["agent_id"], ghost.to_string());
    let reason = listed["reason"].as_str().unwrap();
    assert!(reason.contains("is not connected to this hub"), "{reason}");

    // The monitor takes it back (the dispatcher alone never would: its
    // queued copy is an attempt behind) and the dispatcher hands it out.
    let worker = ok_agent(&app, "later", "test.later");
    app.wait_for_job(&job_id, "completed", Duration::from_secs(15))
        .await;
    let task = stage0_task(&app, &job_id).await;
    assert_eq!((task.attempt, task.failures), (2, 1));
    let retrying = events_of(&app, &job_id, "task.retrying").await;
    assert_eq!(retrying.len(), 1);
    let error = retrying[0].payload["error"].as_str().unwrap();
    assert!(error.contains("recovered by the monitor"), "{error}");
    assert!(error.contains(&ghost.to_string()), "{error}");
    worker.kill();
}

async fn a_task_left_running_by_a_stopped_hub_is_taken_back_after_restart(backend: Backend) {
    let mut app = spawn_app_with(backend, |c| {
        c.lease = "2s".into();
        c.reconnect_grace = "30s".into();
    })
    .await;
    let (mut silent, _) = RawAgent::hello(&app, "silent", "test.work", 1, json!([])).await;
    let job_id = create(&app, &["test.work"], json!({})).await;
    accept_one(&mut silent).await;
    wait_until(
        &app,
        &format!("/v1/jobs/{job_id}/progress"),
        Duration::from_secs(5),
        |p| p["stages"][0]["tasks"]["running"] == 1,
    )
    .await;

    // Stop the hub with the task running in the database; change nothing in
    // it; start again with short settings.
    fast(&mut app.raw);
    app.restart().await;
    drop(silent);
    let good = ok_agent(&app, "good", "test.work");
    app.wait_for_job(&job_id, "completed", Duration::from_secs(20))
        .await;
    let task = stage0_task(&app, &job_id).await;
    assert_eq!((task.attempt, task.failures), (2, 1));
    assert_eq!(events_of(&app, &job_id, "task.retrying").await.len(), 1);
    good.kill();
}

async fn an_item_left_validating_without_a_task_gets_a_new_one(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        fast(c);
        c.stuck_grace = "0s".into();
    })
    .await;
    let emitter = agent(
        &app,
        "emitter",
        "test.emit",
        |ctx, _input: Value| async move {
            ctx.emit_item(json!({"text": "one"})).await;
            Ok::<Value, TaskError>(json!({}))
        },
    );
    let (mut checker, _) = RawAgent::hello(&app, "raw-check", "test.check", 1, json!([])).await;
    let job_id = create(&app, &["test.emit", "test.check"], json!({})).await;
    let (task_id, _) = accept_one(&mut checker).await;
    wait_until(
        &app,
        &format!("/v1/jobs/{job_id}"),
        Duration::from_secs(5),
        |j| j["items"]["validating"] == 1,
    )
    .await;
    // A bug (or a hand edit) ends the task without deciding its item.
    let task_id: uuid::Uuid = task_id.as_str().unwrap().parse().unwrap();
    exec_sql(
        &app,
        "UPDATE tasks SET status = 'cancelled' WHERE id = $1",
        task_id,
    )
    .await;

    let good = ok_agent(&app, "good-check", "test.check");
    let job = app
        .wait_for_job(&job_id, "completed", Duration::from_secs(15))
        .await;
    assert_eq!(job["items"]["integrated"], 1, "{job}");
    let created = events_of(&app, &job_id, "task.created").await;
    let recovered: Vec<_> = created
        .iter()
        .filter(|e| {
            e.payload["reason"]
                .as_str()
                .is_some_and(|r| r.contains("recovered by the monitor"))
        })
        .collect();
    assert_eq!(recovered.len(), 1, "{created:?}");
    assert_eq!(recovered[0].payload["stage"], 1);
    emitter.kill();
    good.kill();
    checker.close().await;
}

async fn a_job_past_its_timeout_fails_with_a_clear_reason(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        fast(c);
        c.job_timeout = "1s".into();
    })
    .await;
    let job_id = create(&app, &["nobody.here"], json!({})).await;
    let dependent = create(&app, &["nobody.here"], json!({"depends_on": [job_id]})).await;
    let job = app
        .wait_for_job(&job_id, "failed", Duration::from_secs(10))
        .await;
    assert_eq!(
        job["status_reason"],
        "timed out: not finished within job_timeout (1.0s) of its creation"
    );
    let task = stage0_task(&app, &job_id).await;
    assert_eq!(task.status, switchyard::domain::TaskStatus::Cancelled);
    assert_eq!(events_of(&app, &job_id, "task.cancelled").await.len(), 1);
    let dep = app
        .wait_for_job(&dependent, "failed", Duration::from_secs(5))
        .await;
    assert_eq!(dep["status_reason"], format!("dependency {job_id} failed"));
}

async fn retry_failed_requeues_the_failed_items(backend: Backend) {
    let app = spawn_app_with(backend, fast).await;
    let fixed = Arc::new(AtomicBool::new(false));
    let emitter = agent(
        &app,
        "emitter",
        "test.emit",
        |ctx, _input: Value| async move {
            ctx.emit_item(json!({"text": "good"})).await;
            ctx.emit_item(json!({"text": "bad"})).await;
            Ok::<Value, TaskError>(json!({}))
        },
    );
    let flag = fixed.clone();
    let checker = agent(&app, "checker", "test.check", move |_ctx, input: Value| {
        let fixed = flag.load(Ordering::SeqCst);
        async move {
            if input["item"]["data"]["text"] == "bad" && !fixed {
                return Err(TaskError::fatal("bad input"));
            }
            Ok::<Value, TaskError>(json!({}))
        }
    });
    let job_id = create(
        &app,
        &["test.emit", "test.check"],
        json!({"max_attempts": 1}),
    )
    .await;
    let job = app
        .wait_for_job(&job_id, "completed", Duration::from_secs(15))
        .await;
    assert_eq!(
        (
            job["items"]["integrated"].as_i64(),
            job["items"]["failed"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let (_, report) = get(&app, &format!("/v1/jobs/{job_id}/report")).await;
    assert_eq!(report["failed"]["total"], 1);
    assert_eq!(report["failed"]["items"][0]["text"], "bad");
    assert_eq!(report["failed"]["items"][0]["reason"], "bad input");

    fixed.store(true, Ordering::SeqCst);
    let (status, body) = post(
        &app,
        Role::Operator,
        &format!("/v1/jobs/{job_id}/retry-failed"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["requeued_tasks"], 1);
    assert_eq!(body["requeued_items"], 1);
    assert_eq!(body["job"]["status"], "queued");
    let job = app
        .wait_for_job(&job_id, "completed", Duration::from_secs(15))
        .await;
    assert_eq!(
        (
            job["items"]["integrated"].as_i64(),
            job["items"]["failed"].as_i64()
        ),
        (Some(2), Some(0))
    );
    let queued = events_of(&app, &job_id, "job.queued").await;
    assert_eq!(queued.len(), 1);
    assert_eq!(
        queued[0].payload["reason"],
        "retry of failed work requested by operator"
    );

    let (status, body) = post(
        &app,
        Role::Operator,
        &format!("/v1/jobs/{job_id}/retry-failed"),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    emitter.kill();
    checker.kill();
}
