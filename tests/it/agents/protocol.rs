//! The agent protocol frame by frame, with a raw client: authentication,
//! bad frames, fencing, liveness.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use switchyard::auth::Role;
use switchyard_tests::app::json as body;
use switchyard_tests::raw_agent::{Heard, RawAgent};
use switchyard_tests::{Backend, TestApp, spawn_app_with};

fn fast(c: &mut switchyard::config::RawConfig) {
    c.heartbeat_interval = "100ms".into();
    c.heartbeat_misses = 3;
    c.accept_timeout = "500ms".into();
    c.lease = "2s".into();
    c.reconnect_grace = "300ms".into();
    c.retry_initial = "10ms".into();
    c.retry_max = "50ms".into();
    c.default_pipeline = vec!["test.echo".into()];
}

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, fast).await
}

#[tokio::test]
async fn the_socket_needs_an_agent_token_before_the_upgrade() {
    let app = app(Backend::Sqlite).await;
    let url = app.agent_url();
    // No token: 401, no socket.
    let err = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // A viewer token: 403.
    let err = RawAgent::connect_with_token(&app, &app.token(Role::Viewer))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("403"), "{err}");
    // Plain HTTP on the endpoint: a clear 400.
    let (status, b) = body(
        app.as_role(Role::Agent, Method::GET, "/v1/agents/connect")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{b}");
    assert!(b["message"].as_str().unwrap().contains("WebSocket"), "{b}");
}

#[tokio::test]
async fn handshake_problems_are_named_then_closed() {
    let app = app(Backend::Sqlite).await;
    let cases = [
        (
            json!({"type": "heartbeat", "timestamp": "2026-01-01T00:00:00Z"}),
            "hello_required",
            "must be `hello`",
        ),
        (
            json!({"type": "hello", "protocol": 99, "name": "a1", "capabilities": [{"name": "x"}]}),
            "unsupported_protocol",
            "version(s) 1",
        ),
        (
            json!({"type": "hello", "protocol": 1, "name": "someone-else", "capabilities": [{"name": "x"}]}),
            "name_mismatch",
            "someone-else",
        ),
        (
            json!({"type": "hello", "protocol": 1, "name": "a1", "capabilities": []}),
            "invalid_hello",
            "no capabilities",
        ),
        (
            json!({"type": "hello", "protocol": 1, "name": "a1", "capabilities": [{"name": "Bad Name"}]}),
            "invalid_hello",
            "Bad Name",
        ),
        (
            json!({"type": "hello", "protocol": 1, "name": "a1", "capabilities": [{"name": "x", "input_schema": {"type": 12}}]}),
            "invalid_hello",
            "input_schema",
        ),
        (
            json!({"type": "hello", "protocol": 1, "name": "a1", "capabilities": [{"name": "x", "pricing": {"per_request": 1e300}}]}),
            "invalid_hello",
            "pricing.per_request",
        ),
        (
            json!({"type": "hello", "protocol": 1, "name": "a1", "capabilities": [{"name": "x", "pricing": {"per_1k_input_tokens": -1}}]}),
            "invalid_hello",
            "pricing.per_1k_input_tokens",
        ),
    ];
    for (hello, code, text) in cases {
        let mut agent = RawAgent::connect(&app, "a1").await;
        agent.send(hello.clone()).await;
        let Heard::Json(error) = agent.next().await else {
            panic!("no error frame for {hello}")
        };
        assert_eq!(error["type"], "error", "{hello}");
        assert_eq!(error["code"], code, "{error}");
        assert!(error["message"].as_str().unwrap().contains(text), "{error}");
        assert!(
            matches!(agent.next().await, Heard::Closed(_)),
            "closed after {code}"
        );
    }
}

#[tokio::test]
async fn bad_frames_get_errors_and_lose_nothing() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        fast(c);
        c.heartbeat_interval = "5s".into();
        // The test sends six bad frames before accepting: no accept timeout may interfere.
        c.accept_timeout = "60s".into();
        c.max_frame_bytes = 4096;
    })
    .await;
    let (mut agent, welcome) = RawAgent::hello(&app, "raw-1", "test.echo", 1, json!([])).await;
    assert_eq!(welcome["heartbeat_interval_ms"], 5000);

    let job = app.create_job(json!({"prompt": "p"})).await;
    let task = agent.expect_type("task").await;
    let (task_id, attempt) = (task["task_id"].clone(), task["attempt"].as_u64().unwrap());
    assert_eq!(attempt, 1);
    assert_eq!(task["input"]["prompt"], "p");

    let unknown = uuid::Uuid::now_v7();
    let cases = [
        ("not json".to_owned(), "invalid_message", "not valid JSON"),
        (
            json!({"type": "dance"}).to_string(),
            "invalid_message",
            "unknown message type `dance`",
        ),
        (
            json!({"type": "accept"}).to_string(),
            "invalid_message",
            "task_id",
        ),
        (
            json!({"type": "complete", "task_id": task_id, "attempt": attempt, "output": {}})
                .to_string(),
            "not_accepted",
            "send `accept` first",
        ),
        (
            json!({"type": "accept", "task_id": unknown, "attempt": 1}).to_string(),
            "unknown_task",
            &unknown.to_string()[..],
        ),
        (
            json!({"type": "accept", "task_id": task_id, "attempt": attempt + 5}).to_string(),
            "stale_attempt",
            "attempt",
        ),
    ];
    for (frame, code, text) in &cases {
        agent.send_text(frame).await;
        let error = agent.expect_type("error").await;
        assert_eq!(error["code"], *code, "{frame}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains(text),
            "{frame}: {error}"
        );
    }

    // The session still works: accept and complete the task for real.
    agent
        .send(json!({"type": "accept", "task_id": task_id, "attempt": attempt}))
        .await;
    agent.send(json!({"type": "item", "task_id": task_id, "attempt": attempt, "item_id": uuid::Uuid::now_v7(), "data": {"text": "one"}})).await;
    agent.send(json!({"type": "complete", "task_id": task_id, "attempt": attempt, "output": {"ok": true}})).await;
    let ack = agent.expect_type("ack").await;
    assert_eq!(ack["of"], "complete");
    let done = app
        .wait_for_job(
            job["id"].as_str().unwrap(),
            "completed",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        done["items"]["integrated"], 1,
        "a single-stage job integrates what it emits"
    );

    // An oversized frame closes the session with a reason.
    agent
        .send_text(&json!({"type": "heartbeat", "pad": "x".repeat(10_000)}).to_string())
        .await;
    let mut closed = None;
    for _ in 0..3 {
        match agent.next().await {
            Heard::Closed(c) => {
                closed = Some(c);
                break;
            }
            Heard::Json(v) => assert_eq!(v["code"], "frame_too_large", "{v}"),
        }
    }
    let closed = closed.expect("the hub closes the socket");
    if let Some((code, reason)) = closed {
        assert_eq!(code, 1009, "{reason}");
    }
}

#[tokio::test]
async fn a_stale_attempt_cannot_overwrite_the_agent_that_took_over() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = app(backend).await;
        let job = app.create_job(json!({"prompt": "p"})).await;
        let job_id = job["id"].as_str().unwrap().to_owned();

        // Agent A accepts, then vanishes (connection dropped without a word).
        let (mut a, _) = RawAgent::hello(&app, "agent-a", "test.echo", 1, json!([])).await;
        let task = a.expect_type("task").await;
        let (task_id, first) = (task["task_id"].clone(), task["attempt"].as_u64().unwrap());
        a.send(json!({"type": "accept", "task_id": task_id, "attempt": first}))
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(a);

        // After the grace period the task goes to agent B, at the next attempt.
        let (mut b, _) = RawAgent::hello(&app, "agent-b", "test.echo", 1, json!([])).await;
        let task_b = b.expect_type("task").await;
        assert_eq!(task_b["task_id"], task_id);
        let second = task_b["attempt"].as_u64().unwrap();
        assert_eq!(second, first + 1);
        b.send(json!({"type": "accept", "task_id": task_id, "attempt": second}))
            .await;
        b.send(json!({"type": "item", "task_id": task_id, "attempt": second, "item_id": uuid::Uuid::now_v7(), "data": {"by": "b"}})).await;
        b.send(json!({"type": "complete", "task_id": task_id, "attempt": second, "output": {"by": "b"}})).await;
        b.expect_type("ack").await;

        // A comes back and sends its late result: refused, nothing changes.
        let (mut a2, welcome) = RawAgent::hello(
            &app,
            "agent-a",
            "test.echo",
            1,
            json!([{"task_id": task_id, "attempt": first}]),
        )
        .await;
        assert_eq!(
            welcome["resumed"],
            json!([]),
            "the task is not A's any more"
        );
        a2.send(json!({"type": "item", "task_id": task_id, "attempt": first, "item_id": uuid::Uuid::now_v7(), "data": {"by": "a"}})).await;
        let error = a2.expect_type("error").await;
        assert_eq!(error["code"], "not_accepted");
        a2.send(json!({"type": "complete", "task_id": task_id, "attempt": first, "output": {"by": "a"}})).await;
        let error = a2.expect_type("error").await;
        assert!(
            error["code"] == "not_accepted" || error["code"] == "stale_attempt",
            "{error}"
        );

        let done = app
            .wait_for_job(&job_id, "completed", Duration::from_secs(10))
            .await;
        assert_eq!(
            done["items"]["total"], 1,
            "{backend:?}: the job holds B's item once"
        );
        let (_, items) = body(
            app.as_role(
                Role::Viewer,
                Method::GET,
                &format!("/v1/jobs/{job_id}/items"),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(items["items"][0]["data"], json!({"by": "b"}));
    }
}

#[tokio::test]
async fn missed_heartbeats_mark_an_agent_offline_and_its_task_moves_on() {
    let app = app(Backend::Sqlite).await;
    let (mut silent, _) = RawAgent::hello(&app, "silent", "test.echo", 1, json!([])).await;
    let job = app.create_job(json!({"prompt": "p"})).await;
    let task = silent.expect_type("task").await;
    silent
        .send(json!({"type": "accept", "task_id": task["task_id"], "attempt": task["attempt"]}))
        .await;
    // It never sends a heartbeat: 3 × 100 ms later it is offline.
    app.wait_for_agent("silent", Duration::from_secs(5), |a| {
        a["session_state"] == "offline"
    })
    .await;
    // The hub told it why, then closed.
    let mut saw_shutdown = false;
    loop {
        match silent.next().await {
            Heard::Json(v) if v["type"] == "shutdown" => {
                saw_shutdown = true;
                assert!(v["reason"].as_str().unwrap().contains("heartbeat"), "{v}");
            }
            Heard::Json(_) => {}
            Heard::Closed(_) => break,
        }
    }
    assert!(saw_shutdown);
    // A healthy agent gets the task after the grace period and finishes it.
    let (mut healthy, _) = RawAgent::hello(&app, "healthy", "test.echo", 1, json!([])).await;
    let task = healthy.expect_type("task").await;
    assert_eq!(task["attempt"], 2);
    healthy
        .send(json!({"type": "accept", "task_id": task["task_id"], "attempt": 2}))
        .await;
    healthy
        .send(json!({"type": "complete", "task_id": task["task_id"], "attempt": 2, "output": {}}))
        .await;
    app.wait_for_job(
        job["id"].as_str().unwrap(),
        "completed",
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test]
async fn a_task_not_accepted_in_time_goes_to_another_agent() {
    let app = app(Backend::Sqlite).await;
    let (mut sleepy, _) = RawAgent::hello(&app, "sleepy", "test.echo", 1, json!([])).await;
    let job = app.create_job(json!({"prompt": "p"})).await;
    let first = sleepy.expect_type("task").await;
    // sleepy keeps heartbeating but never accepts; after 500 ms the task is retried.
    let (mut eager, _) = RawAgent::hello(&app, "eager", "test.echo", 1, json!([])).await;
    let heartbeat =
        json!({"type": "heartbeat", "timestamp": chrono::Utc::now(), "status": "active"});
    let task = loop {
        sleepy.send(heartbeat.clone()).await;
        eager.send(heartbeat.clone()).await;
        if let Ok(Heard::Json(v)) =
            tokio::time::timeout(Duration::from_millis(50), eager.next()).await
            && v["type"] == "task"
        {
            break v;
        }
    };
    assert_eq!(task["task_id"], first["task_id"]);
    assert_eq!(task["attempt"], 2);
    // sleepy's late accept is refused.
    sleepy
        .send(json!({"type": "accept", "task_id": first["task_id"], "attempt": 1}))
        .await;
    let error = sleepy.expect_type("error").await;
    assert_eq!(error["code"], "stale_attempt", "{error}");
    eager
        .send(json!({"type": "accept", "task_id": task["task_id"], "attempt": 2}))
        .await;
    eager
        .send(json!({"type": "complete", "task_id": task["task_id"], "attempt": 2, "output": {}}))
        .await;
    app.wait_for_job(
        job["id"].as_str().unwrap(),
        "completed",
        Duration::from_secs(5),
    )
    .await;
}
