//! Postgres restarts under a running hub: `/ready` goes unready, then ready
//! again by itself, and work accepted before and after the restart completes.

use std::time::Duration;

use serde_json::json;
use switchyard_tests::temp_pg::TempPostgres;
use switchyard_tests::{Backend, spawn_app_with};

use crate::monitor::support::agent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_rides_out_a_postgres_restart() {
    let pg = TempPostgres::start();
    let url = pg.url();
    let app = spawn_app_with(Backend::Postgres, |c| {
        c.database_url = url;
        c.retry_initial = "50ms".into();
        c.retry_max = "200ms".into();
        c.max_attempts = 20;
    })
    .await;
    let worker = agent(
        &app,
        "restart-worker",
        "test.restart",
        |_ctx, input| async move {
            Ok::<_, switchyard_agent::TaskError>(json!({"echo": input["prompt"]}))
        },
    );
    worker.wait_connected().await.unwrap();

    let before = app
        .create_job(json!({"prompt": "before", "pipeline": ["test.restart"]}))
        .await;
    app.wait_for_job(
        before["id"].as_str().unwrap(),
        "completed",
        Duration::from_secs(10),
    )
    .await;
    // Accepted before the restart, run after it: nobody serves it yet.
    let across = app
        .create_job(json!({"prompt": "across", "pipeline": ["test.later"]}))
        .await;

    pg.stop();
    wait_ready(&app, false).await;
    pg.pg_ctl_start();
    wait_ready(&app, true).await;

    let after = app
        .create_job(json!({"prompt": "after", "pipeline": ["test.restart"]}))
        .await;
    let later = agent(
        &app,
        "later-worker",
        "test.later",
        |_ctx, _input| async move { Ok::<_, switchyard_agent::TaskError>(json!({})) },
    );
    for job in [&after, &across] {
        app.wait_for_job(
            job["id"].as_str().unwrap(),
            "completed",
            Duration::from_secs(30),
        )
        .await;
    }
    worker.kill();
    later.kill();
}

/// Polls `/ready` until it says `ready` (or, with `false`, not ready).
async fn wait_ready(app: &switchyard_tests::TestApp, ready: bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = app
            .client
            .get(app.url("/ready"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if (status == 200) == ready {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/ready never became {}; last status {status}",
            if ready { "ready" } else { "unready" }
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
