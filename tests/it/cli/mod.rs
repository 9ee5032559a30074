//! The `switchyard` client commands, run as a subprocess against a real hub:
//! create --wait, status, list, report, cancel, exit codes and error lines.

use std::time::Duration;

use serde_json::json;
use switchyard::auth::Role;
use switchyard_tests::cli::run;
use switchyard_tests::{TestApp, backend_tests};

use crate::monitor::support::{SAMPLE, reference_agents};

backend_tests!(
    create_wait_status_list_and_report,
    cancel_needs_force_without_a_terminal,
    failures_are_one_line_with_a_meaningful_exit_code
);

async fn create_wait_status_list_and_report(app: TestApp) {
    let agents = reference_agents(&app).await;
    let operator = app.token_for(Role::Operator, "cli-user");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("sample-spec.md");
    std::fs::write(&spec, SAMPLE).unwrap();

    let out = run(
        &app,
        &operator,
        &[
            "jobs",
            "create",
            "--prompt",
            "Extract the requirements",
            "--document",
            spec.to_str().unwrap(),
            "--label",
            "cli",
            "--priority",
            "6",
            "--wait",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("completed: 15 items, 12 integrated, 3 rejected, 0 failed"),
        "{out:?}"
    );
    let job_id = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("created job "))
        .unwrap()
        .trim()
        .to_owned();

    let out = run(&app, &operator, &["jobs", "status", &job_id]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("status    completed"), "{out:?}");
    assert!(out.stdout.contains("document  sample-spec.md"), "{out:?}");
    let out = run(&app, &operator, &["jobs", "status", &job_id, "--json"]).await;
    let job = out.json();
    assert_eq!(job["items"]["integrated"], 12);
    assert_eq!(job["priority"], 6);
    assert_eq!(job["created_by"], "cli-user");

    let out = run(&app, &operator, &["jobs", "status", &job_id, "--progress"]).await;
    // Stages are counted from 1 for people, as in reports and the dashboard.
    assert!(
        out.stdout.contains("  stage 1/2 requirements.extract"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("  stage 2/2 requirements.validate"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("items 15: 12 integrated, 3 rejected, 0 failed, 0 open"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("ETA unknown: the job has finished (completed)"),
        "{out:?}"
    );
    let out = run(&app, &operator, &["jobs", "status", &job_id, "--rejected"]).await;
    assert!(out.stdout.starts_with("3 rejected item(s)"), "{out:?}");
    assert!(out.stdout.contains("too vague"), "{out:?}");
    let out = run(&app, &operator, &["jobs", "status", &job_id, "--report"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("total 15: 12 integrated, 3 rejected"),
        "{out:?}"
    );
    assert!(out.stdout.contains("15.750000 EUR"), "{out:?}");
    let out = run(
        &app,
        &operator,
        &[
            "jobs", "status", &job_id, "--report", "--format", "markdown",
        ],
    )
    .await;
    assert!(
        out.stdout.starts_with(&format!("# Job report `{job_id}`")),
        "{out:?}"
    );
    let out = run(
        &app,
        &operator,
        &["jobs", "status", &job_id, "--report", "--json"],
    )
    .await;
    assert_eq!(
        out.json()["usage"]["total"]["cost"],
        json!([{"currency": "EUR", "amount": 15.75}])
    );

    let out = run(
        &app,
        &operator,
        &["jobs", "list", "--status", "completed", "--json"],
    )
    .await;
    let list = out.json();
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(list["jobs"][0]["id"], job_id.as_str());
    let out = run(&app, &operator, &["jobs", "list", "--stats", "--days", "2"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.lines().next().unwrap().starts_with("ID"),
        "{out:?}"
    );
    assert!(out.stdout.contains(&job_id), "{out:?}");
    // Times are whole: date, time to the second and the zone, never cut.
    let row = out
        .stdout
        .lines()
        .find(|l| l.contains(job_id.as_str()))
        .unwrap();
    let created = row.split_whitespace().nth(3).unwrap_or_default();
    let time = row.split_whitespace().nth(4).unwrap_or_default();
    assert!(
        created.len() == 10 && time.len() == 9 && time.ends_with('Z') && !row.contains('…'),
        "{row}"
    );
    assert!(
        out.stdout.contains(
            "all jobs: 0 waiting, 0 queued, 0 running, 1 completed, 0 failed, 0 cancelled"
        ),
        "{out:?}"
    );
    // Prompt text and creation time, sent to the hub as q, created_after and created_before.
    for (args, n) in [
        (vec!["--search", "EXTRACT"], 1),
        (vec!["--search", "no such prompt"], 0),
        (
            vec![
                "--since",
                "2000-01-01T00:00:00Z",
                "--until",
                "2100-01-01T00:00:00Z",
            ],
            1,
        ),
        (vec!["--since", "2100-01-01T00:00:00Z"], 0),
    ] {
        let mut argv = vec!["jobs", "list", "--json"];
        argv.extend(args.iter().copied());
        let listed = run(&app, &operator, &argv).await;
        assert_eq!(listed.code, 0, "{args:?}: {listed:?}");
        assert_eq!(
            listed.json()["jobs"].as_array().map(Vec::len),
            Some(n),
            "{args:?}"
        );
    }
    let refused = run(&app, &operator, &["jobs", "list", "--since", "yesterday"]).await;
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("RFC 3339"), "{refused:?}");
    let total = out.stdout.lines().find(|l| l.starts_with("total")).unwrap();
    let cells: Vec<&str> = total.split_whitespace().collect();
    assert_eq!(
        cells[..8],
        ["total", "1", "1", "0", "0", "12", "3", "0"],
        "{out:?}"
    );

    // watch on a finished job replays it and exits with its outcome.
    let out = run(&app, &operator, &["jobs", "watch", &job_id]).await;
    assert_eq!(out.code, 0, "{out:?}");

    let out = run(&app, &operator, &["agents", "list"]).await;
    assert!(out.stdout.contains("validator-priced"), "{out:?}");
    for a in agents {
        a.kill();
    }
}

async fn cancel_needs_force_without_a_terminal(app: TestApp) {
    let operator = app.token_for(Role::Operator, "cli-user");
    let job = app
        .create_job(json!({"prompt": "p", "pipeline": ["nobody.here"]}))
        .await;
    let id = job["id"].as_str().unwrap();

    let out = run(&app, &operator, &["jobs", "cancel", id]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("refusing to cancel"), "{out:?}");
    assert!(out.stderr.contains("--force"), "{out:?}");
    let (_, still) = switchyard_tests::app::json(
        app.as_role(
            Role::Viewer,
            reqwest::Method::GET,
            &format!("/v1/jobs/{id}"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(still["status"], "queued");

    // A job being watched ends with exit code 4 when it is cancelled.
    let watcher = {
        let operator = operator.clone();
        let id = id.to_owned();
        let base = app.base.clone();
        tokio::spawn(async move {
            switchyard_tests::cli::run_at(&base, &operator, &["jobs", "watch", &id]).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = run(&app, &operator, &["jobs", "cancel", id, "--force"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), format!("job {id} cancelled"));
    let watched = watcher.await.unwrap();
    assert_eq!(watched.code, 4, "{watched:?}");
    assert!(
        watched.stderr.contains(&format!(
            "error: job {id} was cancelled: cancelled by cli-user"
        )),
        "{watched:?}"
    );

    let out = run(&app, &operator, &["jobs", "cancel", id, "--force"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.starts_with("error: job"), "{out:?}");
    assert!(out.stderr.contains("(HTTP 409 conflict)"), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
}

async fn failures_are_one_line_with_a_meaningful_exit_code(app: TestApp) {
    let viewer = app.token_for(Role::Viewer, "v");
    let out = run(&app, &viewer, &["jobs", "create", "--prompt", "x"]).await;
    assert_eq!(out.code, 6, "{out:?}");
    assert!(out.stderr.contains("may not do this"), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");

    let out = run(&app, "not-a-token", &["jobs", "list"]).await;
    assert_eq!(out.code, 6, "{out:?}");

    let operator = app.token_for(Role::Operator, "o");
    let out = run(
        &app,
        &operator,
        &["jobs", "create", "--prompt", "x", "--priority", "12"],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("priority"), "{out:?}");
    assert!(out.stderr.contains("HTTP 422"), "{out:?}");

    let out = run(&app, &operator, &["jobs", "status", "../../etc"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("not a valid job id"), "{out:?}");

    let out = run(&app, &operator, &["jobs", "frobnicate"]).await;
    assert_eq!(out.code, 2, "{out:?}");

    let missing = uuid::Uuid::now_v7();
    let out = run(&app, &operator, &["jobs", "status", &missing.to_string()]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        format!("error: job {missing} not found (HTTP 404 not_found)")
    );

    let out =
        switchyard_tests::cli::run_at("http://127.0.0.1:9", &operator, &["jobs", "list"]).await;
    assert_eq!(out.code, 5, "{out:?}");
    assert!(
        out.stderr
            .contains("cannot reach the hub at http://127.0.0.1:9"),
        "{out:?}"
    );

    // A job that fails makes `--wait` exit 3.
    let failer = crate::monitor::support::agent(
        &app,
        "failer",
        "test.fail",
        |_ctx, _input: serde_json::Value| async {
            Err::<serde_json::Value, _>(switchyard_agent::TaskError::fatal("broken on purpose"))
        },
    );
    failer.wait_connected().await.unwrap();
    let out = run(
        &app,
        &operator,
        &[
            "jobs",
            "create",
            "--prompt",
            "x",
            "--pipeline",
            "test.fail",
            "--wait",
            "--json",
        ],
    )
    .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.json()["status"], "failed");
    assert!(out.stderr.contains("broken on purpose"), "{out:?}");
    failer.kill();
}

/// No CLI command sends anything (least of all the caller's token) to a
/// webhook target: `webhooks create --target` names where the hub posts
/// events, while `--url` stays the hub's own address.
#[tokio::test]
async fn webhook_targets_never_see_the_cli_or_its_token() {
    use axum::http::HeaderMap;
    use std::sync::{Arc, Mutex};

    let app = crate::webhooks::app(switchyard_tests::Backend::Sqlite).await;
    let seen: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let recorder = {
        let seen = seen.clone();
        axum::Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                let has_auth = headers.contains_key("authorization");
                seen.lock().unwrap().push((uri.to_string(), has_auth));
                axum::http::StatusCode::OK
            }
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, recorder).await });

    let admin = app.token_for(Role::Admin, "cli-admin");
    let out = run(
        &app,
        &admin,
        &[
            "webhooks",
            "create",
            "--target",
            &target,
            "--events",
            "job.created",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = run(&app, &admin, &["webhooks", "list", "--json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(list["webhooks"][0]["url"], target.as_str(), "{list}");
    let id = list["webhooks"][0]["id"].as_str().unwrap().to_owned();

    // A delivery reaches the target: it is the hub's POST, unauthenticated.
    app.create_job(json!({"prompt": "p", "pipeline": ["nobody.here"]}))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for args in [
        vec!["webhooks", "deliveries", id.as_str()],
        vec!["webhooks", "delete", id.as_str()],
    ] {
        let out = run(&app, &admin, &args).await;
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
    }
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().all(|(uri, _)| uri == "/hook"), "{seen:?}");
    assert!(seen.iter().all(|(_, auth)| !auth), "{seen:?}");
}

#[tokio::test]
async fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_switchyard()"),
        ("zsh", "#compdef switchyard"),
        ("fish", "complete -c switchyard"),
    ] {
        let output = tokio::process::Command::new(switchyard_tests::cli::binary())
            .args(["completions", shell])
            .output()
            .await
            .expect("run switchyard completions");
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(
            script.contains(marker),
            "{shell}: {}",
            &script[..script.len().min(200)]
        );
        assert!(
            script.contains("webhooks") && script.contains("doctor"),
            "{shell}"
        );
    }
    let output = tokio::process::Command::new(switchyard_tests::cli::binary())
        .args(["completions", "tcsh"])
        .output()
        .await
        .expect("run switchyard completions");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("possible values"));
}
