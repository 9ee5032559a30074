//! `GET /v1/stream`: tickets, first-message auth, subscriptions with and
//! without `after`, errors that keep the connection open, `agents` and
//! `stats` snapshots.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use switchyard::auth::Role;
use switchyard_tests::{Backend, TestApp, spawn_app_with};
use uuid::Uuid;

use super::{Said, StreamClient, Worker, cancel, create_job, fast, seqs, stored_events};

fast_backend_tests!(subscriptions_replay_then_follow_in_seq_order);

fn refused_with(err: tokio_tungstenite::tungstenite::Error, status: u16) {
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status().as_u16(), status);
            let body = response.body().clone().unwrap_or_default();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            assert!(
                body["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("ticket"),
                "{body}"
            );
        }
        other => panic!("expected HTTP {status}, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_are_single_use_and_short_lived() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        fast(c);
        c.stream_ticket_ttl = "1s".into();
    })
    .await;
    let res = app
        .as_role(Role::Viewer, Method::POST, "/v1/stream/tickets")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 201);
    assert_eq!(
        res.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let (_, ticket) = switchyard_tests::app::json(res).await;
    let expires_at: chrono::DateTime<chrono::Utc> = ticket["expires_at"]
        .as_str()
        .expect("expires_at")
        .parse()
        .expect("RFC 3339");
    let ttl = expires_at - chrono::Utc::now();
    assert!(
        ttl > chrono::TimeDelta::zero() && ttl <= chrono::TimeDelta::seconds(1),
        "{ttl}"
    );
    let ticket = ticket["ticket"].as_str().expect("ticket").to_owned();

    // First use: the upgrade succeeds and the connection works.
    let url = StreamClient::url(&app, Some(&ticket));
    let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("upgrade");
    let mut client = StreamClient::from(ws);
    client.subscribe("s", "*", None).await;

    // Second use, unknown and expired tickets: 401 before the upgrade.
    refused_with(
        tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap_err(),
        401,
    );
    let unknown = StreamClient::url(&app, Some("not-a-ticket"));
    refused_with(
        tokio_tungstenite::connect_async(unknown.as_str())
            .await
            .unwrap_err(),
        401,
    );
    let stale = StreamClient::ticket(&app, Role::Operator).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = StreamClient::url(&app, Some(&stale));
    refused_with(
        tokio_tungstenite::connect_async(stale.as_str())
            .await
            .unwrap_err(),
        401,
    );

    // Only readers get tickets.
    let agent = app
        .as_role(Role::Agent, Method::POST, "/v1/stream/tickets")
        .send()
        .await
        .expect("request");
    assert_eq!(agent.status().as_u16(), 403);
    let anonymous = app
        .client
        .post(app.url("/v1/stream/tickets"))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status().as_u16(), 401);
    // Plain HTTP on the stream endpoint: a clear 400.
    let plain = app
        .as_role(Role::Viewer, Method::GET, "/v1/stream")
        .send()
        .await
        .expect("request");
    assert_eq!(plain.status().as_u16(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_ticket_authenticates_with_its_first_message() {
    let app = spawn_app_with(Backend::Sqlite, fast).await;
    let url = StreamClient::url(&app, None);

    let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("upgrade");
    let mut client = StreamClient::from(ws);
    client
        .send(json!({"type": "auth", "token": app.token(Role::Viewer)}))
        .await;
    client.subscribe("all", "*", None).await;
    client
        .send(json!({"type": "auth", "token": app.token(Role::Viewer)}))
        .await;
    let again = client.expect("error").await;
    assert_eq!(again["code"], "already_authenticated");

    for (first, text) in [
        (
            json!({"type": "auth", "token": "nonsense"}),
            "malformed token",
        ),
        (
            json!({"type": "auth", "token": app.token(Role::Agent)}),
            "role `agent`",
        ),
        (
            json!({"type": "subscribe", "id": "s", "topic": "*"}),
            "first message",
        ),
    ] {
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("upgrade");
        let mut client = StreamClient::from(ws);
        client.send(first.clone()).await;
        let Said::Json(error) = client.next().await else {
            panic!("no error for {first}")
        };
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["code"], "unauthorized", "{error}");
        assert!(
            error["message"].as_str().unwrap_or_default().contains(text),
            "{first}: {error}"
        );
        assert!(
            matches!(client.next().await, Said::Closed(Some(1008))),
            "closed after {first}"
        );
    }
}

/// The subscription's events, checked to be strictly increasing.
fn increasing(events: &[Value]) -> Vec<i64> {
    let seqs = seqs(events);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    seqs
}

async fn subscriptions_replay_then_follow_in_seq_order(app: TestApp) {
    let agent = Worker::connect(&app, "echo-1").await;
    let job = create_job(&app, json!({"prompt": "p"}), "r1").await;
    let other = create_job(
        &app,
        json!({"prompt": "q", "pipeline": ["nobody.home"]}),
        "r2",
    )
    .await;
    let mut worker = Worker::take(agent).await;
    // The task is pushed before its assignment commits: wait for the
    // assignment (the job starts with it), so the log is quiet from here.
    app.wait_for_job(&job.to_string(), "running", Duration::from_secs(10))
        .await;
    let mut client = StreamClient::connect(&app).await;

    // `job:<id>` with after=0: the job's history, then live.
    let history = stored_events(&app, Some(job)).await;
    let subscribed = client
        .subscribe("mine", &format!("job:{job}"), Some(0))
        .await;
    let latest = subscribed["latest_seq"].as_i64().expect("latest_seq");
    assert_eq!(
        latest,
        stored_events(&app, None)
            .await
            .last()
            .and_then(|e| e["seq"].as_i64())
            .unwrap_or(0)
    );
    let last = history.last().and_then(|e| e["seq"].as_i64()).expect("seq");
    let mut mine = client.events_until("mine", last).await;
    assert_eq!(mine, history);

    // `*` without after: only what happens from now on.
    let all = client.subscribe("all", "*", None).await;
    let from = all["latest_seq"].as_i64().expect("latest_seq");

    worker.accept().await;
    worker.item("one").await;
    worker.complete().await;
    app.wait_for_job(&job.to_string(), "completed", Duration::from_secs(10))
        .await;
    let done = stored_events(&app, Some(job)).await;
    let end = done.last().and_then(|e| e["seq"].as_i64()).expect("seq");

    // Live frames arrive in global seq order; collect both subscriptions.
    let mut everything = Vec::new();
    loop {
        let frame = client.expect("event").await;
        let event = frame["event"].clone();
        let seq = event["seq"].as_i64().expect("seq");
        if frame["id"] == "mine" {
            mine.push(event.clone());
        }
        if frame["id"] == "all" {
            everything.push(event);
        }
        if seq >= end && frame["id"] == "all" {
            break;
        }
    }
    increasing(&mine);
    assert_eq!(mine, done, "the job's events, no gap, no duplicate");
    let live: Vec<Value> = stored_events(&app, None)
        .await
        .into_iter()
        .filter(|e| e["seq"].as_i64() > Some(from))
        .collect();
    increasing(&everything);
    assert_eq!(everything, live);

    // A second connection replays `*` from a position.
    let mut second = StreamClient::connect(&app).await;
    second.subscribe("again", "*", Some(from)).await;
    assert_eq!(second.events_until("again", end).await, live);

    // Mistakes get an error frame; the connection stays usable.
    let cases = [
        (json!({"type": "dance"}), "unknown_type"),
        (
            json!({"type": "subscribe", "id": "x", "topic": "jobs"}),
            "invalid_topic",
        ),
        (
            json!({"type": "subscribe", "id": "x", "topic": "job:42"}),
            "invalid_topic",
        ),
        (
            json!({"type": "subscribe", "id": "x", "topic": "*", "after": -1}),
            "invalid_after",
        ),
        (
            json!({"type": "subscribe", "id": "x", "topic": "*", "after": "abc"}),
            "invalid_after",
        ),
        (
            json!({"type": "subscribe", "id": "x", "topic": format!("job:{}", Uuid::now_v7())}),
            "unknown_job",
        ),
        (
            json!({"type": "subscribe", "id": "mine", "topic": "*"}),
            "duplicate_subscription",
        ),
        (
            json!({"type": "unsubscribe", "id": "nope"}),
            "unknown_subscription",
        ),
        (
            json!({"type": "subscribe", "topic": "*"}),
            "invalid_message",
        ),
    ];
    for (message, code) in cases {
        client.send(message.clone()).await;
        let error = client.expect("error").await;
        assert_eq!(error["code"], code, "{message}: {error}");
        assert!(!error["message"].as_str().unwrap_or_default().is_empty());
    }
    client
        .send(json!({"type": "unsubscribe", "id": "all"}))
        .await;
    client
        .send(json!({"type": "unsubscribe", "id": "mine"}))
        .await;
    let sub = client
        .subscribe("other", &format!("job:{other}"), Some(0))
        .await;
    assert_eq!(sub["topic"], format!("job:{other}"));
    let other_events = stored_events(&app, Some(other)).await;
    let other_last = other_events
        .last()
        .and_then(|e| e["seq"].as_i64())
        .expect("seq");
    // Only `other` frames now: the unsubscribed ones are gone.
    loop {
        let frame = client.expect("event").await;
        assert_eq!(frame["id"], "other", "{frame}");
        if frame["event"]["seq"].as_i64() >= Some(other_last) {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_and_stats_snapshots_arrive_and_follow_changes() {
    let app = spawn_app_with(Backend::Sqlite, fast).await;
    let (_agent, welcome) =
        switchyard_tests::raw_agent::RawAgent::hello(&app, "echo-1", "test.echo", 2, json!([]))
            .await;
    let agent_id = welcome["agent_id"].as_str().expect("agent_id").to_owned();
    let mut client = StreamClient::connect(&app).await;

    client.subscribe("a", "agents", None).await;
    let snapshot = client.expect("agents").await;
    assert_eq!(snapshot["id"], "a");
    let agents = snapshot["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), 1, "{snapshot}");
    let agent = &agents[0];
    assert_eq!(
        (agent["id"].as_str(), agent["name"].as_str()),
        (Some(agent_id.as_str()), Some("echo-1"))
    );
    assert_eq!(
        (agent["session_state"].as_str(), agent["health"].as_str()),
        (Some("connected"), Some("active"))
    );
    assert_eq!(
        (agent["in_flight"].as_u64(), agent["capacity"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(agent["capabilities"], json!(["test.echo"]));
    for field in ["trust_score", "load", "last_heartbeat_at"] {
        assert!(agent.get(field).is_some(), "{field} in {agent}");
    }

    client.subscribe("s", "stats", None).await;
    // `latest_seq` is the newest event the hub has *published*; the event
    // pump may not have published the agent's `agent.connected` yet when
    // the first frame is built, so wait for a frame that has it.
    let stats = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let stats = client.expect("stats").await;
            if stats["latest_seq"].as_i64() >= Some(1) {
                break stats;
            }
        }
    })
    .await
    .expect("a stats frame with latest_seq >= 1 within 10 s");
    assert_eq!(stats["id"], "s");
    assert_eq!(
        stats["agents"],
        json!({"connected": 1, "draining": 0, "offline": 0, "degraded": 0})
    );
    assert!(
        stats["at"]
            .as_str()
            .is_some_and(|at| at.parse::<chrono::DateTime<chrono::Utc>>().is_ok()),
        "{stats}"
    );

    // Work nobody can take shows up in the queue statistics...
    create_job(
        &app,
        json!({"prompt": "p", "pipeline": ["nobody.home"]}),
        "r1",
    )
    .await;
    let queued = loop {
        let stats = client.expect("stats").await;
        if stats["queues"]["nobody.home"]["depth"] == 1 {
            break stats;
        }
    };
    assert!(
        queued["queues"]["nobody.home"]["oldest_seconds"]
            .as_f64()
            .is_some(),
        "{queued}"
    );

    // ...and a drained agent in the next agents snapshot and stats.
    let res = app
        .admin(Method::POST, &format!("/v1/agents/{agent_id}/drain"))
        .send()
        .await
        .expect("drain");
    assert_eq!(res.status().as_u16(), 200);
    loop {
        let snapshot = client.expect("agents").await;
        if snapshot["agents"][0]["session_state"] == "draining" {
            break;
        }
    }
    loop {
        let stats = client.expect("stats").await;
        if stats["agents"]["draining"] == 1 {
            assert_eq!(stats["agents"]["connected"], 0, "{stats}");
            break;
        }
    }
}

/// `types` narrows an event subscription, in the replay and live; an
/// unknown type is refused and the connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_can_ask_for_some_event_types_only() {
    let app = spawn_app_with(Backend::Sqlite, fast).await;
    let mut client = StreamClient::connect(&app).await;
    client
        .send(json!({"type": "subscribe", "id": "bad", "topic": "*", "types": ["job.exploded"]}))
        .await;
    let refused = client.expect("error").await;
    assert_eq!(refused["code"], "unknown_event_type", "{refused}");

    let first = create_job(
        &app,
        json!({"prompt": "one", "pipeline": ["nobody.home"]}),
        "t1",
    )
    .await;
    client
        .send(json!({"type": "subscribe", "id": "done", "topic": "*", "after": 0, "types": ["job.cancelled"]}))
        .await;
    client.expect("subscribed").await;
    let second = create_job(
        &app,
        json!({"prompt": "two", "pipeline": ["nobody.home"]}),
        "t2",
    )
    .await;
    for job in [first, second] {
        cancel(&app, job).await;
    }
    // Only the two cancellations arrive, not the creations or the task events.
    for job in [first, second] {
        match client.next().await {
            Said::Json(v) => {
                assert_eq!(v["type"], "event", "{v}");
                assert_eq!(v["event"]["type"], "job.cancelled", "{v}");
                assert_eq!(v["event"]["job_id"], json!(job), "{v}");
            }
            other => panic!("expected an event, got {other:?}"),
        }
    }
    let third = create_job(
        &app,
        json!({"prompt": "three", "pipeline": ["nobody.home"]}),
        "t3",
    )
    .await;
    cancel(&app, third).await;
    match client.next().await {
        Said::Json(v) => assert_eq!(
            (v["event"]["type"].clone(), v["event"]["job_id"].clone()),
            (json!("job.cancelled"), json!(third)),
            "{v}"
        ),
        other => panic!("expected an event, got {other:?}"),
    }
}

/// `task:<uuid>` follows one task: its events only, replayed then live; an
/// unknown task is refused and the connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_can_follow_one_task() {
    let app = spawn_app_with(Backend::Sqlite, fast).await;
    let mut client = StreamClient::connect(&app).await;
    let nobody = Uuid::now_v7();
    client
        .send(json!({"type": "subscribe", "id": "x", "topic": format!("task:{nobody}")}))
        .await;
    let refused = client.expect("error").await;
    assert_eq!(refused["code"], "unknown_task", "{refused}");

    let job = create_job(
        &app,
        json!({"prompt": "one", "pipeline": ["nobody.home"]}),
        "t1",
    )
    .await;
    let _other = create_job(
        &app,
        json!({"prompt": "two", "pipeline": ["nobody.home"]}),
        "t2",
    )
    .await;
    let tasks = app.store().list_tasks(job).await.expect("tasks");
    let task = tasks[0].id;
    client
        .subscribe("t", &format!("task:{task}"), Some(0))
        .await;
    match client.next().await {
        Said::Json(v) => {
            assert_eq!(v["event"]["type"], "task.created", "{v}");
            assert_eq!(v["event"]["payload"]["task_id"], json!(task), "{v}");
        }
        other => panic!("expected the replayed task.created, got {other:?}"),
    }
    // Cancelling the job cancels the task: job.cancelled is not about the task.
    cancel(&app, job).await;
    match client.next().await {
        Said::Json(v) => assert_eq!(
            (
                v["event"]["type"].clone(),
                v["event"]["payload"]["task_id"].clone()
            ),
            (json!("task.cancelled"), json!(task)),
            "{v}"
        ),
        other => panic!("expected task.cancelled, got {other:?}"),
    }
    let stored = stored_events(&app, None).await;
    assert!(
        stored.iter().any(|e| e["type"] == "job.cancelled"),
        "the job's own event exists but was not sent"
    );
}
