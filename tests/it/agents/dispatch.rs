//! Dispatch with real SDK agents: order, load, concurrency, cancel, retries,
//! drain, restart. Schemas are in `schemas.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use switchyard::auth::Role;
use switchyard::config::RawConfig;
use switchyard_agent::{Agent, CapabilitySpec, TaskContext, TaskError};
use switchyard_tests::app::json as body;
use switchyard_tests::{Backend, TestApp, spawn_app_with};
use uuid::Uuid;

pub(super) const CAP: &str = "test.work";

pub(super) fn fast(c: &mut RawConfig) {
    c.heartbeat_interval = "200ms".into();
    c.accept_timeout = "10s".into();
    c.lease = "5s".into();
    c.reconnect_grace = "300ms".into();
    c.retry_initial = "20ms".into();
    c.retry_max = "200ms".into();
    c.default_pipeline = vec![CAP.into()];
}

pub(super) fn builder(app: &TestApp, name: &str) -> switchyard_agent::agent::AgentBuilder {
    Agent::builder(app.agent_url(), app.token_for(Role::Agent, name), name)
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

/// Records which agent ran which job, in order, and how many ran at once.
#[derive(Default)]
struct Log {
    order: Vec<(String, String)>,
    running: HashMap<String, usize>,
    max_running: HashMap<String, usize>,
}

fn recording_agent(
    app: &TestApp,
    name: &str,
    concurrency: u32,
    work: Duration,
    log: Arc<Mutex<Log>>,
) -> Agent {
    let who = name.to_owned();
    builder(app, name)
        .capability(
            CapabilitySpec::new(CAP).max_concurrency(concurrency),
            move |_ctx: TaskContext, input: Value| {
                let (log, who) = (log.clone(), who.clone());
                async move {
                    {
                        let mut log = log.lock().unwrap();
                        log.order.push((
                            who.clone(),
                            input["prompt"].as_str().unwrap_or("").to_owned(),
                        ));
                        let n = log.running.entry(who.clone()).or_default();
                        *n += 1;
                        let n = *n;
                        let max = log.max_running.entry(who.clone()).or_default();
                        *max = (*max).max(n);
                    }
                    tokio::time::sleep(work).await;
                    *log.lock().unwrap().running.get_mut(&who).unwrap() -= 1;
                    Ok::<_, TaskError>(json!({"done": true}))
                }
            },
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn higher_priority_first_fifo_within_and_aging_prevents_starvation() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        fast(c);
        c.aging_interval = "1h".into();
    })
    .await;
    // Submitted while no agent is connected, so they all wait in the queue.
    for (prompt, priority) in [
        ("p2-a", 2),
        ("p9", 9),
        ("p2-b", 2),
        ("p5", 5),
        ("p0", 0),
        ("p2-c", 2),
    ] {
        app.create_job(json!({"prompt": prompt, "priority": priority}))
            .await;
    }
    let log = Arc::new(Mutex::new(Log::default()));
    let agent = recording_agent(&app, "solo", 1, Duration::ZERO, log.clone()).spawn();
    agent.wait_connected().await.unwrap();
    wait_until(|| log.lock().unwrap().order.len() == 6).await;
    let order: Vec<String> = log
        .lock()
        .unwrap()
        .order
        .iter()
        .map(|(_, p)| p.clone())
        .collect();
    assert_eq!(order, ["p9", "p5", "p2-a", "p2-b", "p2-c", "p0"]);
    agent.kill();

    // With aging, a low-priority task that waited long enough goes first.
    let app = spawn_app_with(Backend::Sqlite, |c| {
        fast(c);
        c.aging_interval = "20ms".into();
    })
    .await;
    app.create_job(json!({"prompt": "old-low", "priority": 0}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await; // 15 levels of aging
    app.create_job(json!({"prompt": "new-high", "priority": 9}))
        .await;
    let log = Arc::new(Mutex::new(Log::default()));
    let agent = recording_agent(&app, "solo", 1, Duration::ZERO, log.clone()).spawn();
    wait_until(|| log.lock().unwrap().order.len() == 2).await;
    let order: Vec<String> = log
        .lock()
        .unwrap()
        .order
        .iter()
        .map(|(_, p)| p.clone())
        .collect();
    assert_eq!(order, ["old-low", "new-high"]);
    agent.kill();
}

#[tokio::test]
async fn load_is_spread_and_concurrency_limits_hold() {
    let app = spawn_app_with(Backend::Postgres, fast).await;
    let log = Arc::new(Mutex::new(Log::default()));
    let agents: Vec<_> = (0..3)
        .map(|i| {
            recording_agent(
                &app,
                &format!("w{i}"),
                2,
                Duration::from_millis(150),
                log.clone(),
            )
            .spawn()
        })
        .collect();
    for a in &agents {
        a.wait_connected().await.unwrap();
    }
    let mut ids = Vec::new();
    for i in 0..18 {
        ids.push(
            app.create_job(json!({"prompt": format!("job {i}")})).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for id in &ids {
        app.wait_for_job(id, "completed", Duration::from_secs(20))
            .await;
    }
    let log = log.lock().unwrap();
    assert_eq!(log.order.len(), 18, "each task ran exactly once");
    let mut per_agent: HashMap<&str, usize> = HashMap::new();
    for (who, _) in &log.order {
        *per_agent.entry(who.as_str()).or_default() += 1;
    }
    for i in 0..3 {
        let n = per_agent
            .get(format!("w{i}").as_str())
            .copied()
            .unwrap_or(0);
        assert!(n >= 3, "work is spread over every agent: {per_agent:?}");
        assert!(
            log.max_running[&format!("w{i}")] <= 2,
            "max_concurrency 2 respected: {:?}",
            log.max_running
        );
    }
    assert!(
        log.max_running.values().any(|n| *n == 2),
        "agents do run tasks in parallel: {:?}",
        log.max_running
    );
    for a in agents {
        a.kill();
    }
}

#[tokio::test]
async fn cancel_reaches_the_running_agent() {
    let app = spawn_app_with(Backend::Sqlite, fast).await;
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let (cancelled_tx, mut cancelled_rx) = tokio::sync::mpsc::unbounded_channel();
    let agent = builder(&app, "patient")
        .capability(
            CapabilitySpec::new(CAP),
            move |ctx: TaskContext, _input: Value| {
                let (started_tx, cancelled_tx) = (started_tx.clone(), cancelled_tx.clone());
                async move {
                    let _ = started_tx.send(ctx.job_id());
                    ctx.cancelled().cancelled().await;
                    let _ = cancelled_tx.send(ctx.job_id());
                    Err::<Value, _>(TaskError::retryable("cancelled"))
                }
            },
        )
        .build()
        .unwrap()
        .spawn();
    agent.wait_connected().await.unwrap();
    let job = app.create_job(json!({"prompt": "long"})).await;
    let job_id: Uuid = job["id"].as_str().unwrap().parse().unwrap();
    let started = tokio::time::timeout(Duration::from_secs(5), started_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started, job_id);
    let res = app
        .as_role(
            Role::Operator,
            Method::DELETE,
            &format!("/v1/jobs/{job_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cancelled = tokio::time::timeout(Duration::from_secs(5), cancelled_rx.recv())
        .await
        .expect("the agent saw the cancel")
        .unwrap();
    assert_eq!(cancelled, job_id);
    let tasks = app.store().list_tasks(job_id).await.unwrap();
    assert_eq!(
        tasks[0].status.as_str(),
        "cancelled",
        "the late failure did not overwrite the cancel"
    );
    agent.kill();
}

#[tokio::test]
async fn retries_back_off_and_stop_at_max_attempts() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = spawn_app_with(backend, |c| {
            fast(c);
            c.retry_initial = "40ms".into();
            c.retry_factor = 2.0;
            c.retry_max = "1s".into();
        })
        .await;
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let seen = attempts.clone();
        let agent = builder(&app, "flaky")
            .capability(
                CapabilitySpec::new(CAP),
                move |ctx: TaskContext, input: Value| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().unwrap().push((
                            input["prompt"].as_str().unwrap().to_owned(),
                            ctx.attempt(),
                            tokio::time::Instant::now(),
                        ));
                        if input["prompt"] == "fatal" {
                            Err::<Value, _>(TaskError::fatal("cannot ever work"))
                        } else {
                            Err(TaskError::retryable("try again"))
                        }
                    }
                },
            )
            .build()
            .unwrap()
            .spawn();
        agent.wait_connected().await.unwrap();
        let flaky = app
            .create_job(json!({"prompt": "flaky", "max_attempts": 4}))
            .await;
        let failed = app
            .wait_for_job(
                flaky["id"].as_str().unwrap(),
                "failed",
                Duration::from_secs(10),
            )
            .await;
        assert!(
            failed["status_reason"]
                .as_str()
                .unwrap()
                .contains("try again"),
            "{failed}"
        );
        let fatal = app
            .create_job(json!({"prompt": "fatal", "max_attempts": 4}))
            .await;
        app.wait_for_job(
            fatal["id"].as_str().unwrap(),
            "failed",
            Duration::from_secs(10),
        )
        .await;

        let attempts = attempts.lock().unwrap();
        let flaky: Vec<_> = attempts.iter().filter(|(p, _, _)| p == "flaky").collect();
        assert_eq!(
            flaky.iter().map(|(_, a, _)| *a).collect::<Vec<_>>(),
            [1, 2, 3, 4],
            "{backend:?}: four attempts, then stop"
        );
        // Backoff with jitter: delays are at least half of 40, 80, 160 ms.
        for (i, min_ms) in [20u64, 40, 80].iter().enumerate() {
            let gap = flaky[i + 1].2 - flaky[i].2;
            assert!(
                gap >= Duration::from_millis(*min_ms),
                "{backend:?}: retry {} came after {gap:?}",
                i + 1
            );
        }
        assert_eq!(
            attempts.iter().filter(|(p, _, _)| p == "fatal").count(),
            1,
            "a non-retryable failure stops at once"
        );
        agent.kill();
    }
}

#[tokio::test]
async fn drain_stops_new_work_but_lets_running_work_finish() {
    let app = spawn_app_with(Backend::Sqlite, fast).await;
    let log = Arc::new(Mutex::new(Log::default()));
    let a = recording_agent(&app, "drained", 1, Duration::from_millis(300), log.clone()).spawn();
    let a_id = a.wait_connected().await.unwrap();
    let first = app.create_job(json!({"prompt": "first"})).await;
    wait_until(|| log.lock().unwrap().order.len() == 1).await;

    let (status, drained) = body(
        app.admin(Method::POST, &format!("/v1/agents/{a_id}/drain"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{drained}");
    assert_eq!(drained["session_state"], "draining");
    let (status, _) = body(
        app.as_role(
            Role::Operator,
            Method::POST,
            &format!("/v1/agents/{a_id}/drain"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "only admins drain");

    let second = app.create_job(json!({"prompt": "second"})).await;
    app.wait_for_job(
        first["id"].as_str().unwrap(),
        "completed",
        Duration::from_secs(5),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        log.lock().unwrap().order.len(),
        1,
        "a draining agent gets no new work"
    );

    let b = recording_agent(&app, "fresh", 1, Duration::ZERO, log.clone()).spawn();
    app.wait_for_job(
        second["id"].as_str().unwrap(),
        "completed",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(log.lock().unwrap().order[1].0, "fresh");
    a.kill();
    b.kill();
}

#[tokio::test]
async fn hub_restart_with_tasks_in_flight_loses_nothing() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let mut app = spawn_app_with(backend, fast).await;
        // Restart on the same port so the agents find the hub again.
        app.raw.listen = app.base.trim_start_matches("http://").to_owned();
        let log = Arc::new(Mutex::new(Log::default()));
        let agents: Vec<_> = (0..2)
            .map(|i| {
                recording_agent(
                    &app,
                    &format!("r{i}"),
                    2,
                    Duration::from_millis(200),
                    log.clone(),
                )
                .spawn()
            })
            .collect();
        for a in &agents {
            a.wait_connected().await.unwrap();
        }
        let mut ids = Vec::new();
        for i in 0..10 {
            ids.push(
                app.create_job(json!({"prompt": format!("job {i}")})).await["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        wait_until(|| !log.lock().unwrap().order.is_empty()).await;
        app.restart().await;
        for id in &ids {
            app.wait_for_job(id, "completed", Duration::from_secs(30))
                .await;
        }
        for a in agents {
            a.kill();
        }
    }
}

async fn wait_until(check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
