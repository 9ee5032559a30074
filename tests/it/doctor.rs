//! `switchyard doctor` on a good setup and on broken ones: each failure is
//! named, says what to do, and makes the command exit non-zero; nothing is
//! created or migrated.

use std::path::Path;

struct Doctor {
    ok: bool,
    out: String,
}

/// Runs `switchyard doctor ARGS` in `dir`, with only the given
/// `SWITCHYARD_*` variables (none of the caller's, nor its DATABASE_URL).
async fn doctor(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Doctor {
    let mut cmd = tokio::process::Command::new(switchyard_tests::cli::binary());
    cmd.arg("doctor").args(args).current_dir(dir);
    switchyard_tests::process::without_callers_settings(&mut cmd);
    cmd.envs(env.iter().copied());
    let output = cmd.output().await.expect("run switchyard doctor");
    Doctor {
        ok: output.status.success(),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// A free local port for `--listen`.
fn free_listen() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").to_string()
}

#[tokio::test]
async fn a_good_setup_passes_every_check_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = doctor(dir.path(), &["--listen", &free_listen()], &[]).await;
    assert!(run.ok, "{}", run.out);
    for check in [
        "configuration",
        "data directory",
        "disk",
        "signing secret",
        "store",
        "listen address",
    ] {
        assert!(
            run.out
                .lines()
                .any(|l| l.starts_with("ok") && l.contains(check)),
            "no passing `{check}` in:\n{}",
            run.out
        );
    }
    assert!(run.out.contains("all 6 checks passed"), "{}", run.out);
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("read dir").count(),
        0,
        "doctor created files"
    );
}

#[tokio::test]
async fn json_output_carries_every_check_and_the_verdict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = doctor(dir.path(), &["--listen", &free_listen(), "--json"], &[]).await;
    assert!(run.ok, "{}", run.out);
    let report: serde_json::Value = serde_json::from_str(&run.out).expect("JSON only");
    assert_eq!(report["ok"], true);
    let checks = report["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 6, "{report}");
    assert!(
        checks
            .iter()
            .all(|c| c["ok"] == true && c["says"].is_string())
    );

    // A failing check: still JSON on stdout, and exit 1.
    let run = doctor(
        dir.path(),
        &["--listen", &free_listen(), "--json"],
        &[("SWITCHYARD_ACCEPT_TIMEOUT", "10")],
    )
    .await;
    assert!(!run.ok);
    let json_part = &run.out[..run.out.rfind('}').expect("a JSON object") + 1];
    let report: serde_json::Value = serde_json::from_str(json_part).expect("JSON");
    assert_eq!(report["ok"], false);
    assert_eq!(report["checks"][0]["name"], "configuration");
    assert!(
        report["checks"][0]["says"]
            .as_str()
            .unwrap()
            .contains("durations need a unit"),
        "{report}"
    );
}

#[tokio::test]
async fn token_issue_json_names_the_token_and_its_expiry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = tokio::process::Command::new(switchyard_tests::cli::binary());
    cmd.args([
        "token", "issue", "--role", "agent", "--sub", "py-1", "--ttl", "2h", "--json",
    ])
    .current_dir(dir.path());
    switchyard_tests::process::without_callers_settings(&mut cmd);
    cmd.env(
        "SWITCHYARD_JWT_SECRET",
        "a-test-secret-of-at-least-32-characters!!",
    );
    let output = cmd.output().await.expect("run switchyard token issue");
    assert!(output.status.success(), "{output:?}");
    let out: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(
        (out["sub"].as_str(), out["role"].as_str()),
        (Some("py-1"), Some("agent"))
    );
    assert_eq!(out["token"].as_str().unwrap().split('.').count(), 3);
    let expires = chrono::DateTime::parse_from_rfc3339(out["expires_at"].as_str().unwrap())
        .expect("RFC 3339");
    let left = expires.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        (7_100..=7_200).contains(&left.num_seconds()),
        "expires in {left}"
    );
}

#[tokio::test]
async fn a_duration_without_a_unit_fails_the_configuration_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = doctor(dir.path(), &[], &[("SWITCHYARD_ACCEPT_TIMEOUT", "10")]).await;
    assert!(!run.ok, "{}", run.out);
    let line = run
        .out
        .lines()
        .find(|l| l.starts_with("FAIL") && l.contains("configuration"))
        .unwrap_or_else(|| panic!("no failing configuration check in:\n{}", run.out));
    assert!(line.contains("SWITCHYARD_ACCEPT_TIMEOUT"), "{line}");
    assert!(
        line.contains("durations need a unit, e.g. \"10s\""),
        "{line}"
    );
}

#[tokio::test]
async fn a_missing_postgres_database_fails_the_store_check_naming_it() {
    let server = switchyard_tests::db::admin_url();
    let base = server.rsplit_once('/').expect("a database in the URL").0;
    let missing = format!("{base}/sy_test_doctor_missing_db");
    let dir = tempfile::tempdir().expect("tempdir");
    let run = doctor(
        dir.path(),
        &["--database-url", &missing, "--listen", &free_listen()],
        &[],
    )
    .await;
    assert!(!run.ok, "{}", run.out);
    let line = run
        .out
        .lines()
        .find(|l| l.starts_with("FAIL") && l.contains("store"))
        .unwrap_or_else(|| panic!("no failing store check in:\n{}", run.out));
    assert!(line.contains("sy_test_doctor_missing_db"), "{line}");
    assert!(
        line.contains("does not exist") && line.contains("createdb sy_test_doctor_missing_db"),
        "{line}"
    );
    assert!(!line.contains("at line"), "no driver internals: {line}");
    assert!(run.out.contains("1 of 6 checks failed"), "{}", run.out);
}

/// On Postgres the store's clock is compared with this machine's.
#[tokio::test]
async fn a_postgres_setup_also_checks_the_database_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = switchyard_tests::db::admin_url();
    let run = doctor(
        dir.path(),
        &["--database-url", &url, "--listen", &free_listen()],
        &[],
    )
    .await;
    assert!(run.ok, "{}", run.out);
    assert!(
        run.out.lines().any(|l| l.starts_with("ok")
            && l.contains("clock")
            && l.contains(" ms from this machine")),
        "{}",
        run.out
    );
    assert!(run.out.contains("all 7 checks passed"), "{}", run.out);
}

#[tokio::test]
async fn a_taken_listen_address_fails_the_listen_check() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let run = doctor(dir.path(), &["--listen", &addr], &[]).await;
    assert!(!run.ok, "{}", run.out);
    let line = run
        .out
        .lines()
        .find(|l| l.starts_with("FAIL") && l.contains("listen address"))
        .unwrap_or_else(|| panic!("no failing listen check in:\n{}", run.out));
    assert!(
        line.contains(&addr) && line.contains("SWITCHYARD_LISTEN"),
        "{line}"
    );
}

#[tokio::test]
async fn webhooks_checks_each_target_and_says_whether_secrets_are_sealed() {
    use reqwest::Method;
    use serde_json::json;

    let app = switchyard_tests::spawn_app_with(switchyard_tests::Backend::Sqlite, |raw| {
        raw.webhooks.allow_loopback = true;
    })
    .await;
    let live = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let live_url = format!("http://{}/hook", live.local_addr().expect("addr"));
    // Port 1 (tcpmux) is reserved and never served on a test machine.
    let dead_url = "http://127.0.0.1:1/hook".to_owned();
    for url in [&live_url, &dead_url] {
        let res = app
            .admin(Method::POST, "/v1/webhooks")
            .json(&json!({"url": url}))
            .send()
            .await
            .expect("create webhook");
        assert_eq!(res.status(), 201);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = app.database_url.clone();
    let args = [
        "--webhooks",
        "--database-url",
        &database_url,
        "--listen",
        &free_listen(),
    ];
    let env = [("SWITCHYARD_WEBHOOKS_ALLOW_LOOPBACK", "true")];
    let run = doctor(dir.path(), &args, &env).await;
    assert!(!run.ok, "one target is down: {}", run.out);
    let line = |prefix: &str, needle: &str| {
        run.out
            .lines()
            .find(|l| l.starts_with(prefix) && l.contains(needle))
            .unwrap_or_else(|| panic!("no `{prefix}` line with {needle} in:\n{}", run.out))
            .to_owned()
    };
    assert!(line("ok", &live_url).contains("accepts connections"));
    assert!(line("FAIL", &dead_url).contains("disable the subscription"));
    assert!(line("ok", "webhook secrets").contains("webhooks.secret_keys"));

    // Without --webhooks, targets are not contacted, and the setup passes.
    let run = doctor(dir.path(), &args[1..], &env).await;
    assert!(run.ok, "{}", run.out);
    assert!(!run.out.contains("webhook target"), "{}", run.out);
}
