//! Bad input: each a 4xx with a clear JSON message, and nothing written.

use reqwest::Method;
use reqwest::multipart::Form;
use serde_json::json;
use switchyard::auth::Role;
use switchyard_tests::app::json;
use switchyard_tests::{Backend, TestApp, backend_tests, spawn_app_with};

backend_tests!(bad_requests_are_refused_clearly_and_store_nothing);

async fn post_raw(
    app: &TestApp,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, serde_json::Value) {
    json(
        app.as_role(Role::Operator, Method::POST, "/v1/jobs")
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn bad_requests_are_refused_clearly_and_store_nothing(app: TestApp) {
    // (name, (status, body) received, expected status, expected code, text the message must contain)
    type Case = (
        &'static str,
        (u16, serde_json::Value),
        u16,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "malformed json",
            post_raw(&app, "application/json", "{\"prompt\": ").await,
            400,
            "malformed_json",
            "EOF",
        ),
        (
            "wrong type",
            post_raw(&app, "application/json", r#"{"prompt": 5}"#).await,
            400,
            "invalid_body",
            "prompt",
        ),
        (
            "unknown field",
            post_raw(&app, "application/json", r#"{"prompt": "x", "priorty": 3}"#).await,
            400,
            "invalid_body",
            "priorty",
        ),
        (
            "missing prompt",
            post_raw(&app, "application/json", r#"{"priority": 3}"#).await,
            422,
            "validation_failed",
            "prompt: is required",
        ),
        (
            "blank prompt",
            post_raw(&app, "application/json", r#"{"prompt": "   "}"#).await,
            422,
            "validation_failed",
            "prompt: must not be blank",
        ),
        (
            "priority out of range",
            post_raw(
                &app,
                "application/json",
                r#"{"prompt": "x", "priority": 10}"#,
            )
            .await,
            422,
            "validation_failed",
            "0 (lowest) to 9",
        ),
        (
            "negative priority",
            post_raw(
                &app,
                "application/json",
                r#"{"prompt": "x", "priority": -1}"#,
            )
            .await,
            422,
            "validation_failed",
            "priority",
        ),
        (
            "bad pipeline",
            post_raw(
                &app,
                "application/json",
                r#"{"prompt": "x", "pipeline": ["Bad Name"]}"#,
            )
            .await,
            422,
            "validation_failed",
            "Bad Name",
        ),
        (
            "context not object",
            post_raw(
                &app,
                "application/json",
                r#"{"prompt": "x", "context": [1]}"#,
            )
            .await,
            422,
            "validation_failed",
            "context",
        ),
        (
            "bad label",
            post_raw(
                &app,
                "application/json",
                r#"{"prompt": "x", "labels": ["no spaces"]}"#,
            )
            .await,
            422,
            "validation_failed",
            "no spaces",
        ),
        (
            "bad base64",
            post_raw(
                &app,
                "application/json",
                r#"{"prompt": "x", "document": {"content_base64": "***"}}"#,
            )
            .await,
            422,
            "validation_failed",
            "base64",
        ),
        (
            "bad depends_on",
            post_raw(
                &app,
                "application/json",
                r#"{"prompt": "x", "depends_on": ["nope"]}"#,
            )
            .await,
            400,
            "invalid_body",
            "depends_on",
        ),
        (
            "text body",
            post_raw(&app, "text/plain", "prompt=x").await,
            415,
            "unsupported_media_type",
            "application/json",
        ),
    ];
    for (name, (status, body), want_status, want_code, want_text) in cases {
        assert_eq!(status, want_status, "{name}: {body}");
        assert_eq!(body["error"], want_code, "{name}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(want_text),
            "{name}: {body}"
        );
    }

    // Several problems at once are all reported.
    let (status, body) = post_raw(
        &app,
        "application/json",
        r#"{"priority": 12, "labels": ["a b"]}"#,
    )
    .await;
    assert_eq!(status, 422);
    let fields: Vec<_> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, ["prompt", "priority", "labels"], "{body}");

    // Multipart without a file.
    let form = Form::new().text("prompt", "x");
    let (status, body) = json(
        app.as_role(Role::Operator, Method::POST, "/v1/jobs")
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"][0]["field"], "document");

    let app_ref = &app;
    let get = move |path: String| async move {
        json(
            app_ref
                .as_role(Role::Viewer, Method::GET, &path)
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    let unknown = uuid::Uuid::now_v7();
    let (status, body) = get(format!("/v1/jobs/{unknown}")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&unknown.to_string())
    );
    let (status, body) = get("/v1/jobs/not-a-uuid".into()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_id")),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains("not-a-uuid"));
    let (status, body) = get("/v1/jobs?cursor=bm9wZQ".into()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_cursor")),
        "{body}"
    );
    let (status, body) = get("/v1/jobs?status=done".into()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("waiting, queued, running, completed, failed, cancelled"),
        "{body}"
    );
    let (status, body) = get("/v1/jobs?limit=0".into()).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = get("/v1/jobs?limit=501".into()).await;
    assert!(
        status == 400 && body["message"].as_str().unwrap().contains("1 to 500"),
        "{body}"
    );
    let (status, body) = get("/v1/jobs?colour=red".into()).await;
    assert!(
        status == 400 && body["message"].as_str().unwrap().contains("colour"),
        "{body}"
    );
    let (status, body) = get(format!("/v1/jobs/{unknown}/items?status=weird")).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = get("/v1/nothing-here".into()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = json(
        app.as_role(Role::Admin, Method::PUT, "/v1/jobs")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (405, Some("method_not_allowed")),
        "{body}"
    );
    let (status, body) = json(
        app.as_role(
            Role::Operator,
            Method::DELETE,
            &format!("/v1/jobs/{unknown}"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    let (_, list) = get("/v1/jobs".into()).await;
    assert_eq!(list["jobs"], json!([]), "no bad request stored anything");
}

#[tokio::test]
async fn oversized_bodies_are_413_and_store_nothing() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.max_body_bytes = 4096).await;
    let big = "x".repeat(10_000);
    let (status, body) =
        post_raw(&app, "application/json", json!({"prompt": big}).to_string()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );

    let form = Form::new().text("prompt", "x").part(
        "document",
        reqwest::multipart::Part::bytes(vec![7u8; 10_000]).file_name("big.bin"),
    );
    let (status, body) = json(
        app.as_role(Role::Operator, Method::POST, "/v1/jobs")
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );

    let (_, list) = json(
        app.as_role(Role::Viewer, Method::GET, "/v1/jobs")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["jobs"], json!([]));
}
