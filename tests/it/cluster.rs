//! The cluster's foundations: nodes on one Postgres database register and
//! see each other, exactly one holds the monitor lease, a dead node's lease
//! passes to a live one within `node_timeout`, and SQLite refuses a second
//! hub on the same file.

use std::time::Duration;

use sqlx::Connection;

use reqwest::Method;
use serde_json::Value;
use switchyard::Server;
use switchyard::auth::Role;
use switchyard::config::Settings;
use switchyard::server::StartError;
use switchyard_tests::app::json;
use switchyard_tests::process::ServeProcess;
use switchyard_tests::{Backend, TestApp, spawn_app, spawn_app_with};

async fn nodes(app: &TestApp) -> Value {
    let (status, body) = json(
        app.as_role(Role::Viewer, Method::GET, "/v1/nodes")
            .send()
            .await
            .expect("nodes"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls `GET /v1/nodes` until `check` holds (or panics after 10 s).
async fn wait_for_nodes(app: &TestApp, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let body = nodes(app).await;
        let list = body["nodes"].as_array().expect("nodes").clone();
        if check(&list) {
            return list;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {list:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_second_hub_on_the_same_sqlite_file_is_refused() {
    let mut app = spawn_app(Backend::Sqlite).await;
    let mut raw = app.raw.clone();
    let other_dir = tempfile::tempdir().expect("temp dir");
    raw.data_dir = other_dir.path().to_path_buf();
    let settings = Settings::from_raw(raw).expect("valid");
    let err = match Server::start(settings.clone()).await {
        Err(e) => e,
        Ok(_) => panic!("a second hub started on the same SQLite file"),
    };
    assert!(matches!(err, StartError::SqliteInUse { .. }), "{err}");
    let message = err.to_string();
    for needle in [
        "SQLite runs one hub at a time",
        "use Postgres",
        "stop the other hub",
    ] {
        assert!(message.contains(needle), "{needle} in {message}");
    }
    // Once the first hub has stopped, the file is free.
    app.hub.take().expect("running").stop().await;
    let second = Server::start(settings)
        .await
        .expect("the file is free again");
    second.stop().await;
    app.restart().await;
    let list = nodes(&app).await;
    let list = list["nodes"].as_array().expect("nodes");
    let alive: Vec<&Value> = list.iter().filter(|n| n["alive"] == true).collect();
    assert_eq!(alive.len(), 1, "one live node: {list:#?}");
    assert_eq!(
        (alive[0]["this"].as_bool(), alive[0]["leader"].as_bool()),
        (Some(true), Some(true))
    );
}

#[tokio::test]
async fn nodes_see_each_other_and_a_killed_leaders_lease_passes_on() {
    let url = switchyard_tests::db::fresh_postgres_url().await;
    // A `serve` process starts first and takes the monitor lease.
    let mut leader =
        ServeProcess::start(url.clone(), &[("SWITCHYARD_NODE_TIMEOUT", "500ms")]).await;
    let app = spawn_app_with(Backend::Postgres, |raw| {
        raw.database_url = url.clone();
        raw.node_timeout = "500ms".into();
    })
    .await;
    let list = wait_for_nodes(&app, "both nodes alive", |list| {
        list.iter().filter(|n| n["alive"] == true).count() == 2
    })
    .await;
    let other = list
        .iter()
        .find(|n| n["this"] == false)
        .expect("the other node");
    assert_eq!(other["url"], leader.base.as_str());
    assert_eq!(other["leader"], true, "the first node leads: {list:#?}");
    let me = list.iter().find(|n| n["this"] == true).expect("this node");
    assert_eq!(me["leader"], false, "one leader: {list:#?}");
    assert_eq!(nodes(&app).await["node_timeout_ms"], 500);

    // SIGKILL: no clean stop, the lease is left to expire. Within
    // node_timeout (and a heartbeat) the survivor sees the node dead and
    // leads.
    leader.kill9().await;
    let killed = leader.base.clone();
    let list = wait_for_nodes(&app, "the survivor leads", |list| {
        list.iter()
            .any(|n| n["this"] == true && n["leader"] == true)
            && list
                .iter()
                .any(|n| n["url"] == killed.as_str() && n["alive"] == false)
    })
    .await;
    assert_eq!(
        list.iter().filter(|n| n["leader"] == true).count(),
        1,
        "{list:#?}"
    );
}

/// Two in-process nodes on one fresh Postgres database, each seeing the
/// other alive (`node_timeout` 500 ms).
async fn two_nodes() -> (String, TestApp, TestApp) {
    let url = switchyard_tests::db::fresh_postgres_url().await;
    let config = |raw: &mut switchyard::config::RawConfig| {
        raw.database_url = url.clone();
        raw.node_timeout = "500ms".into();
    };
    let a = spawn_app_with(Backend::Postgres, config).await;
    let b = spawn_app_with(Backend::Postgres, config).await;
    for node in [&a, &b] {
        wait_for_nodes(node, "both nodes alive", |list| {
            list.iter().filter(|n| n["alive"] == true).count() == 2
        })
        .await;
    }
    (url, a, b)
}

#[tokio::test]
async fn a_stream_on_one_node_carries_the_events_of_another() {
    let (url, a, b) = two_nodes().await;
    // Each node listens for the other's commits (the listeners connect in
    // the background: wait for them).
    let mut pg = sqlx::PgConnection::connect(&url).await.expect("connect");
    let database = url.rsplit('/').next().expect("database name").to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listeners: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'LISTEN%switchyard_commits%'",
        )
        .bind(&database)
        .fetch_one(&mut pg)
        .await
        .expect("pg_stat_activity");
        if listeners == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{listeners} LISTEN connections, not one per node"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut stream = switchyard_tests::sse::SseStream::open(&b, "/v1/events", None).await;
    let job = a
        .create_job(serde_json::json!({"prompt": "across", "pipeline": ["test.across"]}))
        .await;
    let id = job["id"].as_str().expect("id");
    loop {
        let event = stream.next().await.expect("the stream goes on").json();
        if event["type"] == "job.created" && event["job_id"] == id {
            break;
        }
    }
}

#[tokio::test]
async fn work_submitted_on_one_node_reaches_an_agent_on_another() {
    let (_url, a, b) = two_nodes().await;
    let worker = crate::monitor::support::agent(
        &b,
        "remote-worker",
        "test.remote",
        |_ctx, input| async move {
            Ok::<_, switchyard_agent::TaskError>(serde_json::json!({"echo": input["prompt"]}))
        },
    );
    worker.wait_connected().await.expect("connected to b");
    let mut ids = Vec::new();
    for i in 0..20 {
        let job = a
            .create_job(
                serde_json::json!({"prompt": format!("job {i}"), "pipeline": ["test.remote"]}),
            )
            .await;
        ids.push(job["id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        let job = a
            .wait_for_job(id, "completed", Duration::from_secs(20))
            .await;
        assert_eq!(job["status"], "completed");
    }
    worker.kill();
}

#[tokio::test]
async fn a_cancel_on_one_node_stops_the_agent_on_another() {
    let (_url, a, b) = two_nodes().await;
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (stopped_tx, mut stopped) = tokio::sync::mpsc::unbounded_channel::<()>();
    let worker =
        crate::monitor::support::agent(&b, "remote-runner", "test.cancel", move |ctx, _input| {
            let (started_tx, stopped_tx) = (started_tx.clone(), stopped_tx.clone());
            async move {
                let _ = started_tx.send(());
                ctx.cancelled().cancelled().await;
                let _ = stopped_tx.send(());
                Err::<Value, _>(switchyard_agent::TaskError::fatal("cancelled"))
            }
        });
    worker.wait_connected().await.expect("connected to b");
    let job = a
        .create_job(serde_json::json!({"prompt": "stop me", "pipeline": ["test.cancel"]}))
        .await;
    let id = job["id"].as_str().expect("id");
    tokio::time::timeout(Duration::from_secs(20), started.recv())
        .await
        .expect("the task runs on b's agent");
    let (status, body) = json(
        a.as_role(Role::Operator, Method::DELETE, &format!("/v1/jobs/{id}"))
            .send()
            .await
            .expect("cancel"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Node b learns of it from the log and tells its agent.
    tokio::time::timeout(Duration::from_secs(10), stopped.recv())
        .await
        .expect("the agent on b is told to stop");
    worker.kill();
}

/// An agent that dies with its node never resumes its task anywhere: the
/// leader takes it back once the node has been gone `reconnect_grace`,
/// long before the task's lease (60 s) and `stuck_grace` (60 s) would.
#[tokio::test]
async fn a_dead_nodes_unresumed_task_is_taken_back_within_the_grace() {
    let url = switchyard_tests::db::fresh_postgres_url().await;
    let timings = [
        ("SWITCHYARD_NODE_TIMEOUT", "500ms"),
        ("SWITCHYARD_RECONNECT_GRACE", "1s"),
        ("SWITCHYARD_LEASE", "60s"),
        ("SWITCHYARD_STUCK_GRACE", "60s"),
        ("SWITCHYARD_MONITOR_INTERVAL", "100ms"),
    ];
    let mut doomed_node = ServeProcess::start(url.clone(), &timings).await;
    let survivor = spawn_app_with(Backend::Postgres, |raw| {
        raw.database_url = url.clone();
        raw.node_timeout = "500ms".into();
        raw.reconnect_grace = "1s".into();
        raw.lease = "60s".into();
        raw.stuck_grace = "60s".into();
        raw.monitor_interval = "100ms".into();
    })
    .await;
    wait_for_nodes(&survivor, "both nodes alive", |list| {
        list.iter().filter(|n| n["alive"] == true).count() == 2
    })
    .await;

    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<()>();
    let doomed = switchyard_agent::Agent::builder(
        doomed_node.agent_url(),
        doomed_node.token(Role::Agent, "doomed"),
        "doomed",
    )
    .capability(
        switchyard_agent::CapabilitySpec::new("test.gone"),
        move |_ctx, _input: Value| {
            let started_tx = started_tx.clone();
            async move {
                let _ = started_tx.send(());
                std::future::pending::<()>().await;
                Ok::<Value, switchyard_agent::TaskError>(Value::Null)
            }
        },
    )
    .build()
    .expect("agent")
    .spawn();
    doomed.wait_connected().await.expect("connected");
    let job = survivor
        .create_job(serde_json::json!({"prompt": "outlive", "pipeline": ["test.gone"]}))
        .await;
    let id = job["id"].as_str().expect("id").to_owned();
    tokio::time::timeout(Duration::from_secs(20), started.recv())
        .await
        .expect("the task runs on the doomed node's agent");

    // Running as far as the store knows (an attempt never started would go
    // back to the queue as soon as the node saw its agent go).
    let mut pg = sqlx::PgConnection::connect(&url).await.expect("connect");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM tasks WHERE job_id = $1::uuid")
            .bind(&id)
            .fetch_one(&mut pg)
            .await
            .expect("the task");
        if status == "running" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the task is {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The node and its agent die together; another agent waits elsewhere.
    let rescuer = crate::monitor::support::agent(
        &survivor,
        "rescuer",
        "test.gone",
        |_ctx, _input| async move {
            Ok::<_, switchyard_agent::TaskError>(serde_json::json!({"rescued": true}))
        },
    );
    rescuer.wait_connected().await.expect("connected");
    doomed.kill();
    doomed_node.kill9().await;
    let killed = std::time::Instant::now();

    let done = survivor
        .wait_for_job(&id, "completed", Duration::from_secs(15))
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    // For the record (not asserted: timings are benchmarks' business).
    eprintln!(
        "taken back and completed {:?} after the kill (node_timeout 500 ms + reconnect_grace 1 s)",
        killed.elapsed()
    );
    rescuer.kill();
}

#[tokio::test]
async fn a_drain_on_one_node_reaches_the_agent_on_another() {
    let (_url, a, b) = two_nodes().await;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let drained = crate::monitor::support::agent(&b, "drained-remotely", "test.drain", {
        let calls = calls.clone();
        move |_ctx, _input| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { Ok::<_, switchyard_agent::TaskError>(serde_json::json!({})) }
        }
    });
    let agent_id = drained.wait_connected().await.expect("connected to b");

    // Node a lists it as connected (its session is on a live peer), not
    // offline as an agent of an earlier run would be.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = json(
            a.as_role(Role::Viewer, Method::GET, "/v1/agents")
                .send()
                .await
                .expect("agents"),
        )
        .await;
        let state = list["agents"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["id"] == agent_id.to_string()))
            .map(|x| x["session_state"].clone());
        if state == Some(Value::from("connected")) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a shows it as {state:?}: {list}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Drained through node a, which does not hold its session.
    let (status, body) = json(
        a.as_role(
            Role::Admin,
            Method::POST,
            &format!("/v1/agents/{agent_id}/drain"),
        )
        .send()
        .await
        .expect("drain"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session_state"], "draining", "{body}");
    // Node b's own view (its live session) turns draining.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, view) = json(
            b.as_role(Role::Viewer, Method::GET, &format!("/v1/agents/{agent_id}"))
                .send()
                .await
                .expect("agent"),
        )
        .await;
        if view["session_state"] == "draining" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "b never drained it: {view}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // New work goes to another agent, never to the drained one.
    let job = a
        .create_job(serde_json::json!({"prompt": "not for you", "pipeline": ["test.drain"]}))
        .await;
    let other =
        crate::monitor::support::agent(&a, "takes-over", "test.drain", |_ctx, _input| async move {
            Ok::<_, switchyard_agent::TaskError>(serde_json::json!({"by": "takes-over"}))
        });
    let done = a
        .wait_for_job(
            job["id"].as_str().expect("id"),
            "completed",
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(done["status"], "completed");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    drained.kill();
    other.kill();
}
