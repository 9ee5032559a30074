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

/// `GET /metrics`, as Prometheus would scrape it.
async fn scrape(app: &switchyard_tests::TestApp) -> String {
    app.client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body")
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
        let body = scrape(&app).await;
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

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository holds tests/")
        .to_path_buf()
}

/// The metric names an expression uses: its `switchyard_*` and `process_*`
/// identifiers, with a histogram's or summary's `_bucket`, `_sum` and
/// `_count` taken back to the family.
fn families_in(expr: &str) -> Vec<String> {
    use switchyard::http::metrics::{FAMILIES, Kind};
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("switchyard_") || w.starts_with("process_"))
        .map(|w| {
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = w.strip_suffix(suffix)
                    && FAMILIES
                        .iter()
                        .any(|(name, kind, _)| *name == base && *kind == Kind::Histogram)
                {
                    return base.to_owned();
                }
            }
            w.to_owned()
        })
        .collect()
}

/// Every `expr` of a Grafana dashboard, wherever it sits in the JSON.
fn exprs_of(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => exprs_of(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs_of(v, out)),
        _ => {}
    }
}

/// The dashboards are valid JSON and, with the alert rules, name only
/// families the hub exports: the hub's own list, and the `process_*`
/// families a live `/metrics` shows.
#[tokio::test]
async fn dashboards_and_alerts_name_only_exported_families() {
    use switchyard::http::metrics::FAMILIES;

    let app = spawn_app(Backend::Sqlite).await;
    let body = scrape(&app).await;
    let mut exported: Vec<String> = FAMILIES.iter().map(|(n, _, _)| (*n).to_owned()).collect();
    exported.extend(
        body.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with("process_"))
            .map(str::to_owned),
    );
    assert!(
        exported.iter().any(|n| n == "process_cpu_seconds_total"),
        "no process families in:\n{body}"
    );

    let mut exprs = Vec::new();
    let dashboards = repo().join("deploy/grafana/dashboards");
    let mut files = 0;
    for entry in std::fs::read_dir(&dashboards).expect("deploy/grafana/dashboards") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            files += 1;
            let text = std::fs::read_to_string(&path).expect("read dashboard");
            let dashboard: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
            assert!(
                dashboard["uid"].is_string() && dashboard["panels"].is_array(),
                "{}",
                path.display()
            );
            let before = exprs.len();
            exprs_of(&dashboard, &mut exprs);
            assert!(
                exprs.len() > before,
                "{} has no expressions",
                path.display()
            );
        }
    }
    assert!(files >= 2, "expected the overview and agents dashboards");
    let rules =
        std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).expect("alerts");
    exprs.extend(
        rules
            .lines()
            .filter_map(|l| l.trim().strip_prefix("expr:"))
            .map(|e| e.trim().to_owned()),
    );

    let mut unknown: Vec<(String, String)> = Vec::new();
    for expr in &exprs {
        for family in families_in(expr) {
            if !exported.contains(&family) {
                unknown.push((family, expr.clone()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "expressions name families the hub does not export: {unknown:#?}"
    );
}

/// The alert rules load, and their unit tests (each alert firing and not
/// firing) pass.
#[tokio::test]
async fn alert_rules_pass_promtool_check_and_tests() {
    let dir = repo().join("deploy/prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ] {
        let out = tokio::process::Command::new(promtool())
            .args(args)
            .current_dir(&dir)
            .output()
            .await
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
