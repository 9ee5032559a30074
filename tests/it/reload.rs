//! Hot reload: `POST /v1/admin/reload` and SIGHUP re-read the configuration,
//! apply what is safe to change live, name every key that changed, and
//! refuse (changing nothing) an invalid file or a key that needs a restart.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use switchyard::auth::Role;
use switchyard_tests::app::json;
use switchyard_tests::process::ConfiguredServe;
use switchyard_tests::raw_agent::RawAgent;
use switchyard_tests::{Backend, TestApp, spawn_app};

async fn reload(app: &TestApp) -> (u16, Value) {
    json(
        app.admin(Method::POST, "/v1/admin/reload")
            .send()
            .await
            .expect("reload"),
    )
    .await
}

fn keys(body: &Value) -> Vec<&str> {
    body["changed"]
        .as_array()
        .expect("changed")
        .iter()
        .map(|c| c["key"].as_str().expect("key"))
        .collect()
}

/// The CORS origin `/health` allows for `origin`, if any.
async fn allowed_origin(app: &TestApp, origin: &str) -> Option<String> {
    let res = app
        .client
        .get(app.url("/health"))
        .header("origin", origin)
        .send()
        .await
        .expect("health");
    res.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().expect("ascii").to_owned())
}

#[tokio::test]
async fn reload_applies_live_settings_and_names_each_key() {
    let app = spawn_app(Backend::Sqlite).await;
    let origin = "https://app.example.com";
    assert_eq!(allowed_origin(&app, origin).await, None);

    app.write_config(&format!(
        "cors_allowed_origins = [\"{origin}\"]\nrate_limit_per_second = 1\nrate_limit_burst = 1\nstuck_after = \"42s\"\n"
    ));
    let (status, body) = reload(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        keys(&body),
        [
            "cors_allowed_origins",
            "rate_limit_burst",
            "rate_limit_per_second",
            "stuck_after"
        ]
    );
    let stuck = &body["changed"][3];
    assert_eq!(
        (stuck["from"].as_str(), stuck["to"].as_str()),
        (Some("10m"), Some("42s"))
    );
    assert_eq!(stuck["live"], true);

    // CORS answers the new origin.
    assert_eq!(allowed_origin(&app, origin).await.as_deref(), Some(origin));
    // The monitor's threshold is the new one.
    let (_, report) = json(
        app.as_role(Role::Viewer, Method::GET, "/v1/jobs/stuck")
            .send()
            .await
            .expect("stuck"),
    )
    .await;
    assert_eq!(report["settings"]["stuck_after_seconds"], 42.0);
    // One request per second with a burst of one: of twenty requests in a
    // row, all but the first few are refused.
    let mut limited = 0;
    for _ in 0..20 {
        let res = app
            .as_role(Role::Viewer, Method::GET, "/v1/jobs")
            .send()
            .await
            .expect("jobs");
        if res.status() == 429 {
            assert!(res.headers().contains_key("retry-after"));
            limited += 1;
        }
    }
    assert!(limited > 0, "the reloaded rate limit refuses requests");

    // Reading the same file again changes nothing.
    let (status, body) = reload(&app).await;
    if status == 429 {
        return; // the admin is rate limited too; the rest is covered above
    }
    assert_eq!((status, keys(&body).len()), (200, 0), "{body}");
}

#[tokio::test]
async fn a_key_that_needs_a_restart_is_refused_and_nothing_changes() {
    let app = spawn_app(Backend::Sqlite).await;
    let origin = "https://app.example.com";
    app.write_config(&format!(
        "listen = \"127.0.0.1:1\"\npool_size = 7\ncors_allowed_origins = [\"{origin}\"]\n"
    ));
    let (status, body) = reload(&app).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "restart_required");
    let message = body["message"].as_str().expect("message");
    for needle in ["`listen`", "`pool_size`", "restart the hub", "unchanged"] {
        assert!(message.contains(needle), "{needle} in {message}");
    }
    assert!(
        !message.contains("cors"),
        "only the refused keys are named: {message}"
    );
    assert_eq!(
        allowed_origin(&app, origin).await,
        None,
        "nothing was applied"
    );

    // The database URL is named without its password.
    app.write_config("database_url = \"postgres://u:hunter2@db.example/x\"\n");
    let (status, body) = reload(&app).await;
    assert_eq!(status, 409);
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains("`database_url`") && !message.contains("hunter2"),
        "{message}"
    );
}

#[tokio::test]
async fn an_invalid_configuration_leaves_the_running_one() {
    let app = spawn_app(Backend::Sqlite).await;
    let (a, b) = ("https://a.example.com", "https://b.example.com");
    app.write_config(&format!("cors_allowed_origins = [\"{a}\"]\n"));
    assert_eq!(reload(&app).await.0, 200);

    for (file, named) in [
        (
            format!("cors_allowed_origins = [\"{b}\"]\nlease = \"soon\"\n"),
            "`lease`",
        ),
        (
            format!("cors_allowed_origins = [\"{b}\"]\nleese = \"5s\"\n"),
            "leese",
        ),
        ("cors_allowed_origins = [".to_owned(), "TOML"),
    ] {
        app.write_config(&file);
        let (status, body) = reload(&app).await;
        assert_eq!(status, 400, "{file}: {body}");
        assert_eq!(body["error"], "invalid_configuration");
        let message = body["message"].as_str().expect("message");
        assert!(message.contains(named), "{named} in {message}");
        assert!(message.contains("unchanged"), "{message}");
        assert_eq!(
            allowed_origin(&app, a).await.as_deref(),
            Some(a),
            "still the running origin"
        );
        assert_eq!(allowed_origin(&app, b).await, None);
    }
    // Writing the running values back changes nothing: they were untouched.
    app.write_config(&format!("cors_allowed_origins = [\"{a}\"]\n"));
    let (status, body) = reload(&app).await;
    assert_eq!((status, keys(&body).len()), (200, 0), "{body}");
}

#[tokio::test]
async fn new_sessions_get_the_reloaded_timings_and_connected_ones_keep_theirs() {
    let app = spawn_app(Backend::Sqlite).await;
    let (mut before, welcome) = RawAgent::hello(&app, "before", "echo", 1, json!([])).await;
    assert_eq!(welcome["heartbeat_interval_ms"], 5000);

    app.write_config("heartbeat_interval = \"7s\"\nlease = \"90s\"\n");
    let (status, body) = reload(&app).await;
    assert_eq!(
        (status, keys(&body)),
        (200, vec!["heartbeat_interval", "lease"]),
        "{body}"
    );

    let (_after, welcome) = RawAgent::hello(&app, "after", "echo", 1, json!([])).await;
    assert_eq!(welcome["heartbeat_interval_ms"], 7000);
    assert_eq!(welcome["lease_ms"], 90_000);

    // The earlier session runs its task under its own lease (60 s), not
    // the reloaded one (90 s).
    app.create_job(json!({"prompt": "x", "pipeline": ["echo"]}))
        .await;
    let task = before.expect_type("task").await;
    before
        .send(json!({"type": "accept", "task_id": task["task_id"], "attempt": task["attempt"]}))
        .await;
    let store = &app.hub.as_ref().expect("running").state.store;
    let lease_until = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let tasks = store.open_tasks().await.expect("open tasks");
            // Running: an assigned task's lease_until is its accept deadline.
            if let Some(until) = tasks
                .iter()
                .filter(|t| t.status == switchyard::domain::TaskStatus::Running)
                .find_map(|t| t.lease_until)
            {
                return until;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the accept is recorded with a lease");
    let left = (lease_until - chrono::Utc::now()).num_seconds();
    assert!(
        (50..=60).contains(&left),
        "lease of the earlier session: {left} s left"
    );
}

#[tokio::test]
async fn webhook_settings_apply_to_new_subscriptions() {
    let app = spawn_app(Backend::Sqlite).await;
    let create = || async {
        json(
            app.admin(Method::POST, "/v1/webhooks")
                .json(&json!({"url": "http://127.0.0.1:9/hook"}))
                .send()
                .await
                .expect("create webhook"),
        )
        .await
    };
    let (status, body) = create().await;
    assert_eq!(status, 422, "loopback is refused by default: {body}");
    app.write_config("[webhooks]\nallow_loopback = true\ntimeout = \"2s\"\n");
    let (status, body) = reload(&app).await;
    assert_eq!(
        (status, keys(&body)),
        (200, vec!["webhooks.allow_loopback", "webhooks.timeout"]),
        "{body}"
    );
    let (status, body) = create().await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn only_admins_reload() {
    let app = spawn_app(Backend::Sqlite).await;
    for role in [Role::Operator, Role::Viewer, Role::Agent] {
        let res = app
            .as_role(role, Method::POST, "/v1/admin/reload")
            .send()
            .await
            .expect("reload");
        assert_eq!(res.status(), 403, "{role:?}");
    }
    let res = app
        .client
        .post(app.url("/v1/admin/reload"))
        .send()
        .await
        .expect("reload");
    assert_eq!(res.status(), 401);
}

/// The next log line (a JSON object) of `hub` that `wanted` accepts.
async fn wait_for_log(
    hub: &mut ConfiguredServe,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = hub.lines.next_line().await.expect("read the hub's output") {
            if let Ok(log) = serde_json::from_str::<Value>(&line)
                && wanted(&log)
            {
                return Some(log);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(log)) => log,
        _ => panic!("the hub did not log {what}"),
    }
}

#[tokio::test]
async fn sighup_reloads_a_serve_process_and_logs_what_changed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("switchyard.toml");
    let base = "log_format = \"json\"\nlisten = \"127.0.0.1:0\"\n";
    std::fs::write(&config, format!("{base}log_filter = \"warn\"\n")).expect("write config");
    let mut hub = ConfiguredServe::start(&config, dir.path(), &[]).await;

    // An info line shows only once the reload has lowered the filter.
    std::fs::write(&config, format!("{base}log_filter = \"info\"\n")).expect("write config");
    hub.hangup();
    let applied = wait_for_log(&mut hub, "the applied log filter", |log| {
        log["fields"]["message"] == "configuration reloaded: applied"
    })
    .await;
    assert_eq!(applied["fields"]["key"], "log_filter");
    assert_eq!(applied["fields"]["from"], "\"warn\"");
    assert_eq!(applied["fields"]["to"], "\"info\"");

    // A key that needs a restart: refused, named, and logged as a warning.
    std::fs::write(
        &config,
        format!("{base}log_filter = \"info\"\npool_size = 3\n"),
    )
    .expect("write config");
    hub.hangup();
    let refused = wait_for_log(&mut hub, "the refusal", |log| {
        log["fields"]["message"] == "configuration reload refused"
    })
    .await;
    assert_eq!(refused["level"], "WARN");
    let error = refused["fields"]["error"].as_str().expect("error");
    assert!(error.contains("`pool_size`"), "{error}");
}
