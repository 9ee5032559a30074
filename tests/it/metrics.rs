//! `/metrics` after real work passes `promtool check metrics` (every family
//! has help text, names follow Prometheus' conventions), and carries the
//! build, process and store gauges operators alert on.
//!
//! `promtool` comes from `SWITCHYARD_TEST_PROMTOOL` (set by `scripts/test`,
//! which fetches Debian's `prometheus` package when it is missing) or PATH.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::auth::Role;
use switchyard::store::Backend;
use switchyard_agent::{Agent, CapabilitySpec, TaskContext, TaskError};
use switchyard_tests::app::spawn_app;
use tokio::io::AsyncWriteExt;

const CAP: &str = "metrics.noop";

/// The promtool to run; a clear failure when there is none.
pub fn promtool() -> String {
    if let Ok(path) = std::env::var("SWITCHYARD_TEST_PROMTOOL") {
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join("promtool").is_file()))
        .unwrap_or(false);
    assert!(
        on_path,
        "promtool not found: run the suite with scripts/test (it fetches it), \
         or put Debian's prometheus package's promtool on PATH, \
         or set SWITCHYARD_TEST_PROMTOOL"
    );
    "promtool".to_owned()
}

#[tokio::test]
async fn metrics_pass_promtool_after_real_work() {
    let app = spawn_app(Backend::Sqlite).await;
    let agent = Agent::builder(app.agent_url(), app.token_for(Role::Agent, "m1"), "m1")
        .capability(
            CapabilitySpec::new(CAP).max_concurrency(2),
            |_ctx: TaskContext, _input: Value| async move { Ok::<_, TaskError>(json!({})) },
        )
        .build()
        .expect("agent")
        .spawn();
    let job = app
        .create_job(json!({"prompt": "noop", "pipeline": [CAP]}))
        .await;
    let id = job["id"].as_str().expect("job id").to_owned();
    app.wait_for_job(&id, "completed", Duration::from_secs(10))
        .await;
    // A second job nobody takes: a queue with work shows up in the gauges.
    app.create_job(json!({"prompt": "waits", "pipeline": ["metrics.nobody"]}))
        .await;

    let expected = [
        "switchyard_build_info{",
        "commit=\"",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "switchyard_jobs_active{status=\"queued\"} 1",
        "switchyard_agents_by_capability{capability=\"metrics.nobody\"} 0",
        "switchyard_agents_by_capability{capability=\"metrics.noop\"} 1",
        "switchyard_store_commit_seconds_bucket",
        "switchyard_dispatch_latency_seconds_bucket",
        "# HELP switchyard_task_transitions_total ",
    ];
    // The dispatcher's gauges follow on its next tick: wait for them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let body = loop {
        let body = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("body");
        let missing: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|e| !body.contains(e))
            .collect();
        if missing.is_empty() {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "missing {missing:?} in:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let mut child = tokio::process::Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(body.as_bytes()).await.expect("write");
    drop(stdin);
    let out = child.wait_with_output().await.expect("promtool output");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}\non:\n{body}"
    );
    agent.kill();
}
