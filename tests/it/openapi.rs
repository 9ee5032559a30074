//! The API description against the router that serves it.
//!
//! Routes under `/v1` and the operations routes are declared with
//! `utoipa_axum::routes!`, so a route cannot be served without being in the
//! document; the validator (`openapi-spec-validator`, in
//! `tests/schemathesis/run`) checks the document is valid OpenAPI 3.1. This
//! checks the other direction: every operation the document describes is
//! served, none falls through to the router's "no route" or "method not
//! allowed" answers. And the `curl` examples in the README and docs/webhooks.md
//! send bodies the document accepts.

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

/// The request bodies of the `curl` examples in the README and the docs:
/// `-X POST|PATCH localhost:8000<path> ... -d '<json>'`, each with the
/// method, the path and the body.
fn curl_examples(markdown: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for chunk in markdown.split("curl ").skip(1) {
        let Some(x) = chunk.find("-X ") else { continue };
        let rest = &chunk[x + 3..];
        let mut words = rest.split_whitespace();
        let (Some(method), Some(url)) = (words.next(), words.next()) else {
            continue;
        };
        let Some(path) = url.strip_prefix("localhost:8000") else {
            continue;
        };
        let Some(d) = chunk.find("-d '") else {
            continue;
        };
        let body = &chunk[d + 4..];
        let Some(end) = body.find('\'') else { continue };
        out.push((method.to_owned(), path.to_owned(), body[..end].to_owned()));
    }
    out
}

/// Does an example path (`/v1/webhooks/$ID/replay`) fit a template
/// (`/v1/webhooks/{id}/replay`)?
fn fits(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && p.starts_with('$')))
}

#[test]
fn documented_request_bodies_match_the_openapi_schemas() {
    let doc = serde_json::to_value(switchyard::http::openapi::document()).unwrap();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut checked = 0;
    for file in ["README.md", "docs/webhooks.md"] {
        let markdown = std::fs::read_to_string(root.join(file)).unwrap();
        for (method, path, body) in curl_examples(&markdown) {
            let (template, item) = doc["paths"]
                .as_object()
                .unwrap()
                .iter()
                .find(|(t, _)| fits(t, &path))
                .unwrap_or_else(|| panic!("{file}: {method} {path} is not in the API"));
            let op = &item[method.to_lowercase()];
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            assert!(
                schema.is_object(),
                "{file}: {method} {template} takes no JSON body"
            );
            let wrapped = serde_json::json!({
                "$ref": schema["$ref"],
                "components": doc["components"],
            });
            let validator = jsonschema::validator_for(&wrapped).expect("a valid schema");
            let value: Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{file}: the body of {method} {path} is not JSON: {e}"));
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "{file}: {method} {path} {body}: {errors:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} examples found");

    // The check has teeth: a mistyped field of a job body fails.
    let schema =
        &doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    let wrapped = serde_json::json!({"$ref": schema["$ref"], "components": doc["components"]});
    let validator = jsonschema::validator_for(&wrapped).unwrap();
    assert!(validator.is_valid(&serde_json::json!({"prompt": "p", "priority": 3})));
    assert!(!validator.is_valid(&serde_json::json!({"prompt": "p", "priority": "high"})));
}
