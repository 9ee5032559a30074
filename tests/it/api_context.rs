//! Jobs listed by their context: `GET /v1/jobs?context.<key>=<value>` and
//! `switchyard jobs list --context key=value`, on both backends. What
//! matches is the store contract's (`store_contract/context.rs`); this
//! checks the query's two spellings, its errors and the CLI.

use reqwest::Method;
use serde_json::{Value, json};
use switchyard::auth::Role;
use switchyard_tests::app::json;
use switchyard_tests::cli::run;
use switchyard_tests::{TestApp, backend_tests};

backend_tests!(context_filters_over_rest_and_cli);

async fn ids(app: &TestApp, query: &str) -> (u16, Value) {
    let (status, body) = json(
        app.as_role(Role::Viewer, Method::GET, &format!("/v1/jobs?{query}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    if status != 200 {
        return (status, body);
    }
    let ids = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].clone())
        .collect();
    (status, Value::Array(ids))
}

async fn context_filters_over_rest_and_cli(app: TestApp) {
    let a = app
        .create_job(json!({"prompt": "p", "context": {"customer": "acme", "order": {"id": 42}}}))
        .await["id"]
        .clone();
    let b = app
        .create_job(
            json!({"prompt": "p", "context": {"customer": "acme corp", "order": {"id": "7"}}}),
        )
        .await["id"]
        .clone();

    assert_eq!(ids(&app, "context.customer=acme").await, (200, json!([a])));
    assert_eq!(
        ids(&app, "context.customer=acme%20corp").await,
        (200, json!([b]))
    );
    assert_eq!(ids(&app, "context.order.id=42").await, (200, json!([a])));
    // OpenAPI's deepObject spelling means the same.
    assert_eq!(
        ids(&app, "context%5Border.id%5D=7").await,
        (200, json!([b]))
    );
    assert_eq!(
        ids(&app, "context.customer=acme&context.order.id=7").await,
        (200, json!([]))
    );
    assert_eq!(
        ids(&app, "status=queued&limit=10&context.customer=acme").await,
        (200, json!([a]))
    );

    let (status, body) = ids(&app, "context.order..id=7").await;
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("`context.order..id`: ") && message.contains("empty part"),
        "{body}"
    );
    let many: Vec<String> = (0..9).map(|i| format!("context.k{i}=v")).collect();
    let (status, body) = ids(&app, &many.join("&")).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("at most 8"),
        "{body}"
    );
    // Other unknown parameters are still refused.
    let (status, body) = ids(&app, "contexts=1").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_query"))
    );

    let viewer = app.token_for(Role::Viewer, "cli-user");
    let out = run(
        &app,
        &viewer,
        &["jobs", "list", "--context", "customer=acme corp", "--json"],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let listed: Vec<Value> = out.json()["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].clone())
        .collect();
    assert_eq!(listed, vec![b]);
    let out = run(&app, &viewer, &["jobs", "list", "--context", "customer"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("is not KEY=VALUE"), "{out:?}");
}
