//! `POST /v1/jobs/batch`: one transaction, all or nothing, idempotent per job.

use reqwest::Method;
use serde_json::{Value, json};
use switchyard::auth::Role;
use switchyard_tests::app::json as body;
use switchyard_tests::raw_agent::RawAgent;
use switchyard_tests::{TestApp, backend_tests};

backend_tests!(
    batches_are_all_or_nothing_and_idempotent_per_job,
    batch_jobs_are_dispatched
);

async fn post(app: &TestApp, payload: Value) -> (u16, Value) {
    body(
        app.as_role(Role::Operator, Method::POST, "/v1/jobs/batch")
            .json(&payload)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn count_jobs(app: &TestApp) -> usize {
    let (_, list) = body(
        app.as_role(Role::Viewer, Method::GET, "/v1/jobs?limit=500")
            .send()
            .await
            .unwrap(),
    )
    .await;
    list["jobs"].as_array().unwrap().len()
}

async fn batches_are_all_or_nothing_and_idempotent_per_job(app: TestApp) {
    let batch = json!({"jobs": [
        {"prompt": "a", "idempotency_key": "k-a"},
        {"prompt": "b", "priority": 9, "labels": ["x"]},
        {"prompt": "c", "idempotency_key": "k-c"},
    ]});
    let (status, first) = post(&app, batch.clone()).await;
    assert_eq!(status, 201, "{first}");
    let jobs = first["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3);
    assert!(
        jobs.iter()
            .all(|j| j["created"] == true && j["status"] == "queued")
    );
    assert_eq!(count_jobs(&app).await, 3);

    // The same batch again: keyed jobs are found, the unkeyed one is new.
    let (status, again) = post(&app, batch).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["jobs"][0]["id"], first["jobs"][0]["id"]);
    assert_eq!(again["jobs"][0]["created"], false);
    assert_eq!(again["jobs"][1]["created"], true);
    assert_eq!(again["jobs"][2]["id"], first["jobs"][2]["id"]);
    assert_eq!(count_jobs(&app).await, 4);

    // One invalid job: 422 naming it by index, nothing stored.
    let (status, invalid) = post(
        &app,
        json!({"jobs": [{"prompt": "fine"}, {"priority": 3}, {"prompt": "x", "priority": 12}]}),
    )
    .await;
    assert_eq!(status, 422, "{invalid}");
    let fields: Vec<&str> = invalid["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["jobs[1].prompt", "jobs[2].priority"]);
    // A key reused with a different job: 409, and the batch's other jobs are not stored.
    let (status, conflict) = post(
        &app,
        json!({"jobs": [{"prompt": "new one"}, {"prompt": "not a", "idempotency_key": "k-a"}]}),
    )
    .await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(count_jobs(&app).await, 4, "all or nothing");

    // Size limits.
    let (status, empty) = post(&app, json!({"jobs": []})).await;
    assert_eq!(status, 422, "{empty}");
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"prompt": format!("p{i}")}))
        .collect();
    let (status, too_many) = post(&app, json!({"jobs": many})).await;
    assert_eq!(status, 422, "{too_many}");
    assert!(
        too_many["message"].as_str().unwrap().contains("1001"),
        "{too_many}"
    );
    let (status, _) = body(
        app.as_role(Role::Viewer, Method::POST, "/v1/jobs/batch")
            .json(&json!({"jobs": [{"prompt": "x"}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    // The role is checked before the body: a bad body from a viewer is 403 too.
    for bad in ["{not json", r#"{"jobs": 7}"#] {
        let (status, error) = body(
            app.as_role(Role::Viewer, Method::POST, "/v1/jobs/batch")
                .header("content-type", "application/json")
                .body(bad)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 403, "{bad}: {error}");
    }
    assert_eq!(count_jobs(&app).await, 4);
}

async fn batch_jobs_are_dispatched(app: TestApp) {
    let (mut agent, _) =
        RawAgent::hello(&app, "batch-worker", "requirements.extract", 8, json!([])).await;
    let jobs: Vec<Value> = (0..8)
        .map(|i| json!({"prompt": format!("p{i}"), "pipeline": ["requirements.extract"]}))
        .collect();
    let (status, created) = post(&app, json!({"jobs": jobs})).await;
    assert_eq!(status, 201, "{created}");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..8 {
        let task = agent.expect_type("task").await;
        seen.insert(task["job_id"].as_str().unwrap().to_owned());
    }
    let expected: std::collections::HashSet<String> = created["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, expected);
}
