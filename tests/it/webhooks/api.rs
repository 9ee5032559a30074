//! The `/v1/webhooks` API: CRUD, validation (nothing is created from bad
//! input), the admin-only role matrix, and the `[webhooks]` configuration.

use std::io::Write;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use switchyard::auth::Role;
use switchyard::config::{self, ConfigOverrides};
use switchyard_tests::app::json;
use switchyard_tests::{Backend, TestApp, spawn_app};

use super::{app, create_webhook};

webhook_tests!(
    crud_round_trip,
    bad_input_creates_nothing,
    no_event_types_means_all_events
);

async fn list(app: &TestApp) -> Vec<Value> {
    let (status, body) = json(app.admin(Method::GET, "/v1/webhooks").send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body["webhooks"].as_array().unwrap().clone()
}

async fn crud_round_trip(app: TestApp) {
    let created = create_webhook(
        &app,
        json!({
            "url": "http://127.0.0.1:9/hooks",
            "event_types": ["job.failed", "job.completed", "job.failed"],
            "label": "team-a",
            "description": "  ops alerts ",
        }),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["url"], "http://127.0.0.1:9/hooks");
    assert_eq!(
        created["event_types"],
        json!(["job.completed", "job.failed"])
    );
    assert_eq!(created["label"], "team-a");
    assert_eq!(created["description"], "ops alerts");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["created_by"], "admin");
    assert_eq!(created["disabled_reason"], Value::Null);
    let secret = created["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 44,
        "{secret}"
    );

    let listed = list(&app).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(listed[0].get("secret").is_none(), "secrets are shown once");

    let path = format!("/v1/webhooks/{id}");
    let (status, patched) = json(
        app.admin(Method::PATCH, &path)
            .json(&json!({"label": null, "event_types": ["*"], "enabled": false}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["label"], Value::Null);
    assert_eq!(patched["description"], "ops alerts", "untouched");
    assert_eq!(patched["event_types"], json!(["*"]));
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["disabled_reason"], "disabled by admin");

    let (status, _) = json(app.admin(Method::DELETE, &path).send().await.unwrap()).await;
    assert_eq!(status, 204);
    let (status, body) = json(app.admin(Method::GET, &path).send().await.unwrap()).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["message"], format!("webhook {id} not found"));
    let (status, _) = json(app.admin(Method::DELETE, &path).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(list(&app).await.is_empty());
}

/// Leaving `event_types` out subscribes to every event, as Svix and the
/// CLI's `webhooks create` do.
async fn no_event_types_means_all_events(app: TestApp) {
    let created = create_webhook(&app, json!({"url": "http://127.0.0.1:9/all"})).await;
    assert_eq!(created["event_types"], json!(["*"]), "{created}");
}

/// Posts `body` and expects `status` with `error` and a message containing `says`.
async fn refused(app: &TestApp, body: Value, status: u16, says: &str) {
    let res = app
        .admin(Method::POST, "/v1/webhooks")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (got, answer) = json(res).await;
    assert_eq!(got, status, "{body}: {answer}");
    let text = answer.to_string();
    assert!(text.contains(says), "{body}: expected `{says}` in {answer}");
}

async fn bad_input_creates_nothing(app: TestApp) {
    let ok_url = "http://127.0.0.1:9/hooks";
    refused(
        &app,
        json!({"url": ok_url, "event_types": ["job.created", "job.exploded"]}),
        422,
        "unknown event type `job.exploded`; known types: *, job.created",
    )
    .await;
    refused(
        &app,
        json!({"url": ok_url, "event_types": []}),
        422,
        "event_types",
    )
    .await;
    refused(
        &app,
        json!({"event_types": ["*"]}),
        422,
        "\"field\":\"url\"",
    )
    .await;
    refused(
        &app,
        json!({"url": "not a url", "event_types": ["*"]}),
        422,
        "`not a url` is not a valid URL",
    )
    .await;
    refused(
        &app,
        json!({"url": "ftp://example.com/x", "event_types": ["*"]}),
        422,
        "scheme `ftp` is not allowed",
    )
    .await;
    refused(
        &app,
        json!({"url": "file:///etc/passwd", "event_types": ["*"]}),
        422,
        "scheme `file` is not allowed",
    )
    .await;
    refused(
        &app,
        json!({"url": "http://user:pw@127.0.0.1:9/", "event_types": ["*"]}),
        422,
        "user name or password",
    )
    .await;
    // Private and link-local targets are refused (only loopback is allowed here).
    refused(
        &app,
        json!({"url": "http://10.1.2.3/hooks", "event_types": ["*"]}),
        422,
        "10.1.2.3 is a private address; set webhooks.allow_private = true",
    )
    .await;
    refused(
        &app,
        json!({"url": "http://169.254.169.254/latest/meta-data", "event_types": ["*"]}),
        422,
        "169.254.169.254 is a link-local address; such targets are never allowed",
    )
    .await;
    refused(
        &app,
        json!({"url": "http://[::ffff:192.168.0.1]/", "event_types": ["*"]}),
        422,
        "is a private address",
    )
    .await;
    // IANA special-purpose ranges: never a webhook receiver.
    for target in [
        "http://[64:ff9b::a00:1]/",
        "http://[2002:a00:1::1]/",
        "http://[::ffff:0:a00:1]/",
        "http://[2001:db8::1]/",
        "http://[100::1]/",
        "http://192.0.2.1/",
        "http://198.18.0.1/",
        "http://198.51.100.7/",
        "http://203.0.113.9/",
    ] {
        refused(
            &app,
            json!({"url": target, "event_types": ["*"]}),
            422,
            "is a reserved address; such targets are never allowed",
        )
        .await;
    }
    refused(
        &app,
        json!({"url": ok_url, "event_types": ["*"], "label": "no spaces"}),
        422,
        "is not a job label",
    )
    .await;
    refused(
        &app,
        json!({"url": ok_url, "event_types": ["*"], "secret": "mine"}),
        400,
        "secret",
    )
    .await;
    let res = app
        .admin(Method::POST, "/v1/webhooks")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(list(&app).await.is_empty(), "bad input created a webhook");

    // Patches are validated the same way and change nothing when refused.
    let hook = create_webhook(&app, json!({"url": ok_url, "event_types": ["job.created"]})).await;
    let path = format!("/v1/webhooks/{}", hook["id"].as_str().unwrap());
    for (patch, says) in [
        (
            json!({"event_types": ["nope"]}),
            "unknown event type `nope`",
        ),
        (
            json!({"url": "gopher://x"}),
            "scheme `gopher` is not allowed",
        ),
        (json!({"url": "http://192.168.1.1/"}), "private address"),
        (json!({"enabled": "yes"}), "enabled"),
    ] {
        let (status, body) = json(
            app.admin(Method::PATCH, &path)
                .json(&patch)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(status == 422 || status == 400, "{patch}: {status} {body}");
        assert!(body.to_string().contains(says), "{patch}: {body}");
    }
    let (_, unchanged) = json(app.admin(Method::GET, &path).send().await.unwrap()).await;
    assert_eq!(unchanged["url"], ok_url);
    assert_eq!(unchanged["event_types"], json!(["job.created"]));

    // Ids, cursors, limits and replay bodies.
    let (status, body) = json(
        app.admin(Method::GET, "/v1/webhooks/nope")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["error"].clone()), (400, json!("invalid_id")));
    let unknown = format!("/v1/webhooks/{}", uuid::Uuid::now_v7());
    let (status, _) = json(app.admin(Method::GET, &unknown).send().await.unwrap()).await;
    assert_eq!(status, 404);
    let (status, _) = json(
        app.admin(Method::POST, &format!("{unknown}/replay"))
            .json(&json!({"since_seq": 0}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    for query in ["limit=0", "limit=501", "cursor=garbage", "colour=red"] {
        let (status, body) = json(
            app.admin(Method::GET, &format!("{path}/deliveries?{query}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
    }
    for (replay, says) in [
        (json!({}), "exactly one of since_seq"),
        (json!({"since_seq": -4}), "negative"),
        (json!({"since_time": "last tuesday"}), "RFC 3339"),
        (
            json!({"since_seq": 1, "since_time": "2025-01-01T00:00:00Z"}),
            "exactly one",
        ),
    ] {
        let (status, body) = json(
            app.admin(Method::POST, &format!("{path}/replay"))
                .json(&replay)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 422, "{replay}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{replay}: {body}"
        );
    }
    assert_eq!(list(&app).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_targets_need_allow_loopback() {
    // The default configuration: no loopback.
    let app = spawn_app(Backend::Sqlite).await;
    for (url, says) in [
        (
            "http://127.0.0.1:9/hooks",
            "127.0.0.1 is a loopback address; set webhooks.allow_loopback = true",
        ),
        ("http://[::1]:9/", "::1 is a loopback address"),
        ("http://localhost:9/", "host `localhost` resolves to"),
        ("http://0.0.0.0:9/", "0.0.0.0 is an unspecified address"),
    ] {
        refused(&app, json!({"url": url, "event_types": ["*"]}), 422, says).await;
    }
    assert!(list(&app).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_manage_webhooks() {
    let app = app(Backend::Sqlite).await;
    let hook = create_webhook(
        &app,
        json!({"url": "http://127.0.0.1:9/", "event_types": ["*"]}),
    )
    .await;
    let id = hook["id"].as_str().unwrap();
    let body = json!({"url": "http://127.0.0.1:9/", "event_types": ["*"]});
    let endpoints = [
        (Method::POST, "/v1/webhooks".to_owned(), Some(body.clone())),
        (Method::GET, "/v1/webhooks".to_owned(), None),
        (Method::GET, format!("/v1/webhooks/{id}"), None),
        (
            Method::PATCH,
            format!("/v1/webhooks/{id}"),
            Some(json!({"enabled": false})),
        ),
        (
            Method::POST,
            format!("/v1/webhooks/{id}/rotate-secret"),
            None,
        ),
        (Method::GET, format!("/v1/webhooks/{id}/deliveries"), None),
        (
            Method::POST,
            format!("/v1/webhooks/{id}/replay"),
            Some(json!({"since_seq": 0})),
        ),
        (Method::DELETE, format!("/v1/webhooks/{id}"), None),
    ];
    for (method, path, body) in &endpoints {
        for role in [Role::Viewer, Role::Operator, Role::Agent] {
            let mut req = app.as_role(role, method.clone(), path);
            if let Some(body) = body {
                req = req.json(body);
            }
            let (status, answer) = json(req.send().await.unwrap()).await;
            assert_eq!(status, 403, "{role:?} {method} {path}: {answer}");
            assert!(
                answer["message"].as_str().unwrap().contains("admin"),
                "{answer}"
            );
        }
        // Even a malformed body gets 403 first.
        let (status, _) = json(
            app.as_role(Role::Viewer, method.clone(), path)
                .header("content-type", "application/json")
                .body("{")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 403, "{method} {path}");
        let (status, _) = json(
            app.client
                .request(method.clone(), app.url(path))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401, "{method} {path} without a token");
    }
    // Nothing changed; the admin can do all of it.
    let listed = list(&app).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["enabled"], true);
    for (method, path, body) in &endpoints {
        let mut req = app.admin(method.clone(), path);
        if let Some(body) = body {
            req = req.json(body);
        }
        let res = req.send().await.unwrap();
        assert!(
            res.status().is_success(),
            "admin {method} {path}: {}",
            res.status()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_the_webhook_endpoints() {
    let app = app(Backend::Sqlite).await;
    let (status, doc) = json(
        app.client
            .get(app.url("/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    for path in [
        "/v1/webhooks",
        "/v1/webhooks/{id}",
        "/v1/webhooks/{id}/rotate-secret",
        "/v1/webhooks/{id}/deliveries",
        "/v1/webhooks/{id}/replay",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    assert!(doc["paths"]["/v1/webhooks/{id}"].get("patch").is_some());
}

fn load_toml(text: &str) -> Result<config::Settings, String> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    config::load(Some(file.path()), &ConfigOverrides::default()).map_err(|e| e.to_string())
}

#[test]
fn the_webhooks_section_is_read_from_file_and_environment() {
    let defaults = load_toml("").unwrap().webhooks;
    assert!(!defaults.allow_loopback && !defaults.allow_private);
    assert_eq!(defaults.timeout, Duration::from_secs(15));
    assert_eq!(defaults.retry_schedule.len(), 8);
    assert_eq!(defaults.disable_after, Duration::from_secs(5 * 24 * 3600));
    assert_eq!(defaults.rotation_overlap, Duration::from_secs(24 * 3600));

    // SAFETY: these variables are read only by `config::load`, whose other
    // callers in this binary do not look at the webhook settings; nextest
    // runs every test in its own process anyway.
    unsafe {
        std::env::set_var("SWITCHYARD_WEBHOOKS_ALLOW_LOOPBACK", "true");
        std::env::set_var("SWITCHYARD_WEBHOOKS_RETRY_SCHEDULE", "[0s, 1s, 2m]");
        std::env::set_var("SWITCHYARD_WEBHOOKS_MAX_IN_FLIGHT", "3");
    }
    let loaded =
        load_toml("[webhooks]\nallow_private = true\ntimeout = \"3s\"\nmax_in_flight = 7\n");
    unsafe {
        std::env::remove_var("SWITCHYARD_WEBHOOKS_ALLOW_LOOPBACK");
        std::env::remove_var("SWITCHYARD_WEBHOOKS_RETRY_SCHEDULE");
        std::env::remove_var("SWITCHYARD_WEBHOOKS_MAX_IN_FLIGHT");
    }
    let s = loaded.unwrap().webhooks;
    assert!(s.allow_loopback, "SWITCHYARD_WEBHOOKS_ALLOW_LOOPBACK=true");
    assert!(s.allow_private, "from the file");
    assert_eq!(s.timeout, Duration::from_secs(3));
    assert_eq!(
        s.retry_schedule,
        [0, 1, 120].map(Duration::from_secs).to_vec()
    );
    assert_eq!(s.max_in_flight, 3, "the environment wins over the file");
}

#[test]
fn bad_webhook_settings_name_the_key() {
    for (toml, says) in [
        (
            "[webhooks]\ntimeout = \"forever\"",
            "`webhooks.timeout` = \"forever\"",
        ),
        (
            "[webhooks]\nretry_schedule = []",
            "`webhooks.retry_schedule`",
        ),
        (
            "[webhooks]\nretry_schedule = [\"1s\", \"later\"]",
            "`webhooks.retry_schedule` = \"later\"",
        ),
        (
            "[webhooks]\ndisable_after = \"0s\"",
            "`webhooks.disable_after`",
        ),
        (
            "[webhooks]\nmax_in_flight = 0",
            "`webhooks.max_in_flight` = \"0\"",
        ),
        ("[webhooks]\nallow_loopback = \"maybe\"", "allow_loopback"),
        ("[webhooks]\nallow_everything = true", "allow_everything"),
    ] {
        let err = load_toml(toml).expect_err(toml);
        assert!(err.contains(says), "{toml}: {err}");
    }
}
