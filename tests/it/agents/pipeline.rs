//! The reference Creator/Validator pipeline end to end: real hub, real SDK
//! agents, the sample specification from the SDK's fixtures.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use switchyard::auth::Role;
use switchyard_agent::reference::agents::{creator, creator_builder, validator};
use switchyard_agent::{CapabilitySpec, TaskContext, TaskError};
use switchyard_tests::app::json;
use switchyard_tests::{Backend, TestApp, backend_tests, spawn_app_with};

const SAMPLE: &str = include_str!("../../../agent-sdk/tests/fixtures/sample-spec.md");

backend_tests!(reference_pipeline_gives_exactly_the_expected_items);

async fn submit_sample(app: &TestApp) -> String {
    let form = Form::new().text("prompt", "Extract the requirements").part(
        "document",
        Part::bytes(SAMPLE.as_bytes().to_vec())
            .file_name("sample-spec.md")
            .mime_str("text/markdown")
            .unwrap(),
    );
    let (status, job) = json(
        app.as_role(Role::Operator, Method::POST, "/v1/jobs")
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    job["id"].as_str().unwrap().to_owned()
}

async fn items(app: &TestApp, job_id: &str) -> Vec<Value> {
    let (_, page) = json(
        app.as_role(
            Role::Viewer,
            Method::GET,
            &format!("/v1/jobs/{job_id}/items?limit=1000"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    page["items"].as_array().unwrap().clone()
}

fn count_by(items: &[Value], f: impl Fn(&Value) -> Vec<String>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for item in items {
        for key in f(item) {
            *counts.entry(key).or_default() += 1;
        }
    }
    counts
}

async fn reference_pipeline_gives_exactly_the_expected_items(app: TestApp) {
    let ws = app.agent_url();
    let c = creator(&ws, &app.token_for(Role::Agent, "creator-1"), "creator-1")
        .unwrap()
        .spawn();
    let v = validator(
        &ws,
        &app.token_for(Role::Agent, "validator-1"),
        "validator-1",
    )
    .unwrap()
    .spawn();
    c.wait_connected().await.unwrap();
    v.wait_connected().await.unwrap();

    let job_id = submit_sample(&app).await;
    let job = app
        .wait_for_job(&job_id, "completed", Duration::from_secs(30))
        .await;
    assert_eq!(job["items"]["total"], 15, "{job}");
    assert_eq!(job["items"]["integrated"], 12, "{job}");
    assert_eq!(job["items"]["rejected"], 3, "{job}");
    assert_eq!(job["items"]["pending"], 0);
    assert_eq!(job["items"]["validating"], 0);
    assert_eq!(job["items"]["failed"], 0);

    let all = items(&app, &job_id).await;
    assert_eq!(all.len(), 15);
    let texts: std::collections::HashSet<_> = all
        .iter()
        .map(|i| {
            (
                i["data"]["text"].clone(),
                i["data"]["source"]["line"].clone(),
            )
        })
        .collect();
    assert_eq!(texts.len(), 15, "each requirement is stored once");

    let integrated: Vec<Value> = all
        .iter()
        .filter(|i| i["status"] == "integrated")
        .cloned()
        .collect();
    let priorities = count_by(&integrated, |i| {
        vec![i["data"]["priority"].as_str().unwrap().to_owned()]
    });
    assert_eq!(
        priorities,
        HashMap::from([("high".into(), 7), ("medium".into(), 3), ("low".into(), 2)])
    );
    let tags = count_by(&integrated, |i| {
        i["data"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect()
    });
    assert_eq!(tags.get("gobd"), Some(&4));
    assert_eq!(tags.get("gdpr"), Some(&3));

    let mut reasons: Vec<String> = all
        .iter()
        .filter(|i| i["status"] == "rejected")
        .map(|i| i["rejection_reason"].as_str().unwrap().to_owned())
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3);
    assert!(
        reasons.iter().any(|r| r.contains("duplicate")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("vague")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("subject")), "{reasons:?}");

    c.kill();
    v.kill();
}

#[tokio::test]
async fn a_creator_killed_mid_task_is_replaced_and_each_item_is_stored_once() {
    let app = spawn_app_with(Backend::Postgres, |c| {
        c.heartbeat_interval = "200ms".into();
        c.reconnect_grace = "300ms".into();
        c.retry_initial = "10ms".into();
    })
    .await;
    let ws = app.agent_url();
    // A creator that emits two items and then hangs: it is killed mid-task.
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let doomed =
        switchyard_agent::Agent::builder(&ws, app.token_for(Role::Agent, "doomed"), "doomed")
            .capability(
                CapabilitySpec::new("requirements.extract"),
                move |ctx: TaskContext, _input: Value| {
                    let started_tx = started_tx.clone();
                    async move {
                        ctx.emit_item(serde_json::json!({"text": "half-done 1"}))
                            .await;
                        ctx.emit_item(serde_json::json!({"text": "half-done 2"}))
                            .await;
                        let _ = started_tx.send(());
                        std::future::pending::<()>().await;
                        Ok::<Value, TaskError>(Value::Null)
                    }
                },
            )
            .build()
            .unwrap()
            .spawn();
    doomed.wait_connected().await.unwrap();
    let job_id = submit_sample(&app).await;
    tokio::time::timeout(Duration::from_secs(10), started_rx.recv())
        .await
        .unwrap();
    doomed.kill();

    // The real creator and a validator take over after the grace period.
    let c = creator_builder(&ws, &app.token_for(Role::Agent, "creator-1"), "creator-1")
        .build()
        .unwrap()
        .spawn();
    let v = validator(
        &ws,
        &app.token_for(Role::Agent, "validator-1"),
        "validator-1",
    )
    .unwrap()
    .spawn();
    let job = app
        .wait_for_job(&job_id, "completed", Duration::from_secs(30))
        .await;
    assert_eq!(
        job["items"]["total"], 15,
        "the killed attempt's items were never stored: {job}"
    );
    let all = items(&app, &job_id).await;
    assert!(
        all.iter()
            .all(|i| !i["data"]["text"].as_str().unwrap().starts_with("half-done"))
    );
    let tasks = app
        .store()
        .list_tasks(job_id.parse().unwrap())
        .await
        .unwrap();
    let extract = tasks.iter().find(|t| t.stage == 0).unwrap();
    assert_eq!(
        extract.attempt, 2,
        "the second attempt completed the extraction"
    );
    c.kill();
    v.kill();
}
