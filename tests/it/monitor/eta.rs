//! The ETA against a job whose rate is known: 200 validations by one agent
//! that takes 40 ms each, two at a time (at most 50 a second). Half-way,
//! the ETA the hub gives must be within a factor of two of the time the
//! rest actually takes. Both are measured on the same run, so a slow
//! machine slows the rate the hub measures and the remaining work alike.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::{TestApp, backend_tests};
use tokio::time::Instant;

use super::support::{agent, create, get};

backend_tests!(the_eta_of_a_job_with_a_known_rate_holds);

const ITEMS: i64 = 200;

async fn the_eta_of_a_job_with_a_known_rate_holds(app: TestApp) {
    let extractor = agent(&app, "eta-extractor", "eta.extract", |ctx, _| async move {
        for n in 0..ITEMS {
            ctx.emit_item(json!({"text": format!("item {n}")})).await;
        }
        Ok(json!({}))
    });
    let checker = switchyard_agent::Agent::builder(
        app.agent_url(),
        app.token_for(switchyard::auth::Role::Agent, "eta-checker"),
        "eta-checker",
    )
    .capability(
        switchyard_agent::CapabilitySpec::new("eta.check").max_concurrency(2),
        |_ctx, _input: Value| async move {
            tokio::time::sleep(Duration::from_millis(40)).await;
            Ok(json!({"verdict": "accepted"}))
        },
    )
    .build()
    .expect("agent")
    .spawn();
    extractor.wait_connected().await.expect("connects");
    checker.wait_connected().await.expect("connects");
    let job_id = create(&app, &["eta.extract", "eta.check"], json!({})).await;

    // Half-way through the checks: what does the hub expect?
    let path = format!("/v1/jobs/{job_id}/progress");
    let deadline = Instant::now() + Duration::from_secs(60);
    let (at, progress) = loop {
        let (status, p) = get(&app, &path).await;
        assert_eq!(status, 200, "{p}");
        let done = p["stages"][1]["tasks"]["succeeded"].as_i64().unwrap_or(0);
        if done >= ITEMS / 2 {
            break (Instant::now(), p);
        }
        assert!(
            Instant::now() < deadline,
            "the checks did not get half-way: {p}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let eta = progress["eta_seconds"]
        .as_f64()
        .unwrap_or_else(|| panic!("an ETA half-way: {progress}"));
    let stage = &progress["stages"][1];
    assert!(
        stage["tasks_per_minute"].as_f64().unwrap_or(0.0) > 0.0,
        "{progress}"
    );
    // 100 tasks behind it; a window under 10 s (about 2 s here) is `low`.
    let window = stage["rate_window_seconds"].as_f64().unwrap_or(0.0);
    let expected = if window < 10.0 { "low" } else { "medium" };
    assert_eq!(progress["eta_confidence"], expected, "{progress}");
    assert!(
        progress["eta_note"]
            .as_str()
            .unwrap_or("")
            .contains("tasks finished")
    );

    app.wait_for_job(&job_id, "completed", Duration::from_secs(60))
        .await;
    let actual = at.elapsed().as_secs_f64();
    let ratio = eta / actual;
    assert!(
        (0.5..=2.0).contains(&ratio),
        "the ETA half-way was {eta:.2} s; the rest took {actual:.2} s: {progress}"
    );
    extractor.kill();
    checker.kill();
}
