//! `switchyard bench` is built and smoke-run with tiny sizes so it never rots.
//! Only the scenarios' own checks (exact counts, no losses, no duplicates)
//! are asserted; no timing is.

use std::process::Stdio;

use serde_json::Value;

async fn bench(args: &[&str]) -> Value {
    let output = tokio::process::Command::new(switchyard_tests::cli::binary())
        .arg("bench")
        .args(args)
        .arg("--json")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run switchyard bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bench {args:?} failed: {stdout}\n{stderr}"
    );
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("bench {args:?} printed no JSON ({e}): {stdout}\n{stderr}"));
    let checks = report["checks"].as_array().expect("checks");
    assert!(!checks.is_empty(), "{report}");
    for check in checks {
        assert_eq!(check[1], true, "check failed: {check} in {report}");
    }
    report
}

fn metric(report: &Value, name: &str) -> f64 {
    report["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["value"].as_f64())
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

#[tokio::test]
async fn drain_on_both_backends() {
    for backend in ["sqlite", "postgres"] {
        let report = bench(&[
            "drain",
            "--backend",
            backend,
            "--tasks",
            "60",
            "--agents",
            "2",
            "--slots",
            "2",
        ])
        .await;
        assert!(metric(&report, "tasks_per_second") > 0.0);
        // The peer harness's columns: the rate after the submit returned is
        // never below the rate including it, and the store's CPU is the
        // hub's plus its database's.
        assert!(
            metric(&report, "tasks_per_second_after_submit") >= metric(&report, "tasks_per_second")
        );
        let (submit, drain) = (
            metric(&report, "submit_elapsed"),
            metric(&report, "drain_elapsed"),
        );
        assert!((submit + drain - metric(&report, "elapsed")).abs() < 1e-6);
        assert!(
            metric(&report, "store_cpu_per_1000_tasks")
                >= metric(&report, "hub_cpu_per_1000_tasks")
        );
    }
}

#[tokio::test]
async fn latency_sessions_failover_and_pipeline() {
    let latency = bench(&[
        "latency",
        "--tasks",
        "20",
        "--rates",
        "40",
        "--duration",
        "250ms",
        "--agents",
        "1",
        "--slots",
        "2",
    ])
    .await;
    assert!(metric(&latency, "submit_to_agent_p50") > 0.0);
    let sessions = bench(&["sessions", "--sessions", "20", "--duration", "300ms"]).await;
    assert!(metric(&sessions, "hub_rss_after") > 0.0);
    bench(&["failover", "--agents", "2", "--slots", "2"]).await;
    bench(&["pipeline", "--requirements", "25", "--agents", "1"]).await;
    let hooks = bench(&["webhooks", "--tasks", "40", "--agents", "1", "--slots", "2"]).await;
    assert!(metric(&hooks, "deliveries_per_second") > 0.0);
}

/// The soak's machinery on both stores: calibration, open-loop load,
/// samples, growth checks. Its judgement needs a long run (`--duration 30m`,
/// docs/benchmarks.md); this only proves the parts work together.
#[tokio::test]
async fn soak_samples_and_judges_on_both_backends() {
    for backend in ["sqlite", "postgres"] {
        let report = bench(&[
            "soak",
            "--backend",
            backend,
            "--tasks",
            "100",
            "--agents",
            "1",
            "--slots",
            "4",
            "--duration",
            "1500ms",
            "--sample-every",
            "300ms",
        ])
        .await;
        assert!(metric(&report, "soak_jobs") > 0.0, "{report}");
        assert!(metric(&report, "last_rss") > 0.0, "{report}");
        assert!(metric(&report, "last_store_per_job") > 0.0, "{report}");
        assert!(
            report["notes"].to_string().contains("growth not judged"),
            "five samples are too few to judge: {report}"
        );
    }
}

#[tokio::test]
async fn cluster_measures_each_node_count() {
    let report = bench(&[
        "cluster", "--nodes", "1,2", "--tasks", "200", "--agents", "1", "--slots", "2",
    ])
    .await;
    for k in [1, 2] {
        assert!(metric(&report, &format!("nodes_{k}_tasks_per_second")) > 0.0);
        assert!(metric(&report, &format!("nodes_{k}_submit_to_agent_p50")) > 0.0);
        assert!(
            metric(&report, &format!("nodes_{k}_hub_cpu_per_1000_tasks"))
                >= metric(
                    &report,
                    &format!("nodes_{k}_hub_cpu_per_1000_tasks_per_node")
                )
        );
    }
    // One check per node count and property, every one held (see `bench`).
    assert_eq!(report["checks"].as_array().unwrap().len(), 6, "{report}");
}

#[tokio::test]
async fn bad_flags_are_refused_clearly() {
    let output = tokio::process::Command::new(switchyard_tests::cli::binary())
        .args(["bench", "drain", "--tasks", "0"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--tasks"), "{stderr}");
    let output = tokio::process::Command::new(switchyard_tests::cli::binary())
        .args(["bench", "cluster", "--nodes", "0"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--nodes takes node counts from 1 to 16"),
        "{stderr}"
    );
}

/// `--url` drives a hub that is already running: the admin token for the
/// API, the hub's secret (here from the environment, as operators pass it)
/// for the agents' own tokens; leaving the secret out is refused up front.
#[tokio::test]
async fn drain_against_a_running_hub() {
    use switchyard::auth::Role;
    use switchyard::store::Backend;

    let app = switchyard_tests::app::spawn_app(Backend::Sqlite).await;
    let admin = app.token(Role::Admin);
    let base = app.base.clone();
    let drain = ["drain", "--url", &base, "--token", &admin, "--tasks", "30"];
    let output = tokio::process::Command::new(switchyard_tests::cli::binary())
        .arg("bench")
        .args(drain)
        .arg("--json")
        .env("SWITCHYARD_JWT_SECRET", switchyard_tests::app::TEST_SECRET)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).expect("a JSON report");
    assert!(metric(&report, "tasks_per_second") > 0.0);
    let checks = report["checks"].as_array().expect("checks");
    assert!(checks.iter().all(|c| c[1] == true), "{report}");

    let output = tokio::process::Command::new(switchyard_tests::cli::binary())
        .arg("bench")
        .args(drain)
        .env_remove("SWITCHYARD_JWT_SECRET")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--jwt-secret"), "{stderr}");
}
