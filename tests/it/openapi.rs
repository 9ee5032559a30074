//! The API description against the router that serves it.
//!
//! Routes under `/v1` and the operations routes are declared with
//! `utoipa_axum::routes!`, so a route cannot be served without being in the
//! document; the validator (`openapi-spec-validator`, in
//! `tests/schemathesis/run`) checks the document is valid OpenAPI 3.1. This
//! checks the other direction: every operation the document describes is
//! served, none falls through to the router's "no route" or "method not
//! allowed" answers.

use reqwest::Method;
use serde_json::Value;
use switchyard::auth::Role;
use switchyard_tests::app::json;
use switchyard_tests::{Backend, spawn_app};

#[tokio::test]
async fn every_described_operation_is_served() {
    let app = spawn_app(Backend::Sqlite).await;
    let (status, spec) = json(
        app.client
            .get(app.url("/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let paths = spec["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (template, item) in paths {
        // Path parameters are ids: a well-formed one that names nothing.
        let path = template
            .split('/')
            .map(|part| {
                if part.starts_with('{') {
                    "0190b8e2-7c4d-7a3e-9f00-1234567890ab"
                } else {
                    part
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for (method, op) in item.as_object().expect("path item") {
            if !op.is_object() || method == "parameters" {
                continue;
            }
            operations += 1;
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = app
                .as_role(Role::Admin, method.clone(), &path)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let streams = res
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            if streams {
                continue; // an SSE stream answered: served (and never ends)
            }
            let text = res.text().await.unwrap_or_default();
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let message = body["message"].as_str().unwrap_or_default();
            assert!(
                status != 405 && !message.starts_with("no route for"),
                "{method} {template} ({}) is described but not served: {status} {text}",
                op["operationId"]
            );
        }
    }
    assert!(operations >= 36, "only {operations} operations described");
}
