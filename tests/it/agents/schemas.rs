//! Input and output schemas with real SDK agents: bad input is refused at
//! submit, bad output at `complete`, whichever capability the task is for.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use switchyard::auth::Role;
use switchyard_agent::{CapabilitySpec, TaskContext, TaskError};
use switchyard_tests::app::json as body;
use switchyard_tests::{Backend, spawn_app_with};

use super::dispatch::{CAP, builder, fast};

#[tokio::test]
async fn schemas_refuse_bad_input_at_submit_and_bad_output_at_complete() {
    let app = spawn_app_with(Backend::Sqlite, fast).await;
    let input_schema = json!({"type": "object", "required": ["document"], "properties": {"document": {"type": "object"}}});
    let output_schema = json!({"type": "object", "required": ["count"], "properties": {"count": {"type": "integer"}}});
    let agent = builder(&app, "strict")
        .capability(
            CapabilitySpec::new(CAP)
                .input_schema(input_schema)
                .output_schema(output_schema),
            |_ctx: TaskContext, input: Value| async move {
                // Outputs a string where the schema wants an integer when asked to.
                if input["prompt"] == "bad output" {
                    Ok::<_, TaskError>(json!({"count": "many"}))
                } else {
                    Ok(json!({"count": 3}))
                }
            },
        )
        .build()
        .unwrap()
        .spawn();
    agent.wait_connected().await.unwrap();

    let (status, b) = body(
        app.as_role(Role::Operator, Method::POST, "/v1/jobs")
            .json(&json!({"prompt": "no document"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("input schema"),
        "{b}"
    );

    use base64::Engine;
    let doc = json!({"content_base64": base64::engine::general_purpose::STANDARD.encode("text"), "file_name": "a.txt"});
    let good = app
        .create_job(json!({"prompt": "fine", "document": doc}))
        .await;
    app.wait_for_job(
        good["id"].as_str().unwrap(),
        "completed",
        Duration::from_secs(10),
    )
    .await;

    let bad = app
        .create_job(json!({"prompt": "bad output", "document": doc, "max_attempts": 2}))
        .await;
    let failed = app
        .wait_for_job(
            bad["id"].as_str().unwrap(),
            "failed",
            Duration::from_secs(10),
        )
        .await;
    let reason = failed["status_reason"].as_str().unwrap();
    assert!(
        reason.contains("output schema") && reason.contains("count"),
        "{reason}"
    );
    agent.kill();
}

#[tokio::test]
async fn output_is_checked_against_the_schema_of_the_tasks_own_capability() {
    // The agent sends `accept` and `complete` back to back; with two
    // capabilities the hub learns which one a task is for from the accept,
    // and must check the output against that capability's schema only.
    const LOOSE: &str = "test.loose";
    let app = spawn_app_with(Backend::Sqlite, fast).await;
    let strict = json!({"type": "object", "required": ["count"], "properties": {"count": {"type": "integer"}}});
    let agent = builder(&app, "two-caps")
        .capability(
            CapabilitySpec::new(CAP).output_schema(strict),
            |_ctx: TaskContext, _input: Value| async move {
                Ok::<_, TaskError>(json!({"count": "many"}))
            },
        )
        .capability(
            CapabilitySpec::new(LOOSE),
            |_ctx: TaskContext, _input: Value| async move {
                Ok::<_, TaskError>(json!({"count": "many"}))
            },
        )
        .build()
        .unwrap()
        .spawn();
    agent.wait_connected().await.unwrap();

    let loose = app
        .create_job(json!({"prompt": "any output", "pipeline": [LOOSE]}))
        .await;
    app.wait_for_job(
        loose["id"].as_str().unwrap(),
        "completed",
        Duration::from_secs(10),
    )
    .await;
    let strict = app
        .create_job(json!({"prompt": "bad output", "pipeline": [CAP], "max_attempts": 1}))
        .await;
    let failed = app
        .wait_for_job(
            strict["id"].as_str().unwrap(),
            "failed",
            Duration::from_secs(10),
        )
        .await;
    let reason = failed["status_reason"].as_str().unwrap();
    assert!(
        reason.contains("output schema") && reason.contains(CAP),
        "{reason}"
    );
    agent.kill();
}
