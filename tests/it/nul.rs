//! U+0000 (NUL): Postgres cannot store it in `text` or `jsonb`, SQLite can.
//! The hub refuses it at its edges, naming the field, on both stores alike:
//! a 422 on REST, `invalid_message` on an agent frame. An attempt whose item
//! or result holds one fails at once instead of holding its agent's slot.
//! Any other write the store refuses for good is `unstorable`, never "send
//! it again".

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use switchyard::auth::Role;
use switchyard_tests::app::json as body;
use switchyard_tests::raw_agent::RawAgent;
use switchyard_tests::{Backend, TestApp, spawn_app_with};

use crate::monitor::support::reference_agents;

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |c| {
        crate::webhooks::test_config(c);
        c.max_attempts = 2;
        c.retry_initial = "10ms".into();
        c.retry_max = "20ms".into();
    })
    .await
}

/// Sends `request` and checks it is a 422 naming `field`.
async fn refused(request: reqwest::RequestBuilder, field: &str) {
    let (status, error) = body(request.send().await.unwrap()).await;
    assert_eq!(status, 422, "{field}: {error}");
    assert_eq!(error["error"], "validation_failed", "{error}");
    assert!(
        error["details"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["field"] == field)),
        "{field}: {error}"
    );
    assert!(error.to_string().contains("U+0000"), "{error}");
}

async fn rest_input_with_nul_is_422_naming_the_field(app: TestApp) {
    let post = |path: &str, body: Value| app.as_role(Role::Admin, Method::POST, path).json(&body);
    refused(
        app.as_role(Role::Viewer, Method::GET, "/v1/jobs?label=%00"),
        "label",
    )
    .await;
    refused(post("/v1/jobs", json!({"prompt": "a\u{0}b"})), "prompt").await;
    refused(
        post(
            "/v1/jobs",
            json!({"prompt": "p", "context": {"k": "v\u{0}"}}),
        ),
        "context.k",
    )
    .await;
    refused(
        post(
            "/v1/jobs",
            json!({"prompt": "p", "context": {"k\u{0}": "v"}}),
        ),
        "context",
    )
    .await;
    let form = reqwest::multipart::Form::new()
        .text("prompt", "multi\u{0}part")
        .part(
            "document",
            reqwest::multipart::Part::bytes(b"text".to_vec()).file_name("d.md"),
        );
    refused(
        app.as_role(Role::Admin, Method::POST, "/v1/jobs")
            .multipart(form),
        "prompt",
    )
    .await;
    refused(
        post("/v1/jobs/batch", json!({"jobs": [{"prompt": "\u{0}"}]})),
        "jobs[0].prompt",
    )
    .await;
    refused(
        post(
            "/v1/jobs/batch",
            json!({"jobs": [{"prompt": "p", "idempotency_key": "k\u{0}"}]}),
        ),
        "jobs[0].idempotency_key",
    )
    .await;
    let target = "http://127.0.0.1:9/hook";
    refused(
        post(
            "/v1/webhooks",
            json!({"url": target, "event_types": ["job.created"], "description": "d\u{0}"}),
        ),
        "description",
    )
    .await;
    let (status, hook) = body(
        post(
            "/v1/webhooks",
            json!({"url": target, "event_types": ["job.created"]}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let path = format!("/v1/webhooks/{}", hook["id"].as_str().unwrap());
    refused(
        app.as_role(Role::Admin, Method::PATCH, &path)
            .json(&json!({"description": "\u{0}"})),
        "description",
    )
    .await;

    let (_, list) = body(
        app.as_role(Role::Viewer, Method::GET, "/v1/jobs")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["jobs"], json!([]), "nothing was created");
}

async fn frames_with_nul_are_refused_and_fail_their_attempt(app: TestApp) {
    let (mut agent, _) = RawAgent::hello(&app, "raw-nul", "test.nul", 1, json!([])).await;
    let job = app
        .create_job(json!({"prompt": "p", "pipeline": ["test.nul"]}))
        .await;
    let job_id = job["id"].as_str().unwrap().to_owned();

    // Attempt 1: an item holding a NUL fails the attempt.
    let task = agent.expect_type("task").await;
    let (task_id, attempt) = (task["task_id"].clone(), task["attempt"].clone());
    agent
        .send(json!({"type": "accept", "task_id": task_id, "attempt": attempt}))
        .await;
    agent
        .send(
            json!({"type": "item", "task_id": task_id, "attempt": attempt,
            "item_id": uuid::Uuid::now_v7(), "data": {"text": "a\u{0}b"}}),
        )
        .await;
    let error = agent.expect_type("error").await;
    assert_eq!(error["code"], "invalid_message", "{error}");
    assert_eq!(error["task_id"], task_id, "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("`data.text`"),
        "{error}"
    );

    // Attempt 2: a result holding a NUL fails it too, and the job with it.
    let task = agent.expect_type("task").await;
    assert_eq!(task["attempt"], 2, "{task}");
    let (task_id, attempt) = (task["task_id"].clone(), task["attempt"].clone());
    agent
        .send(json!({"type": "accept", "task_id": task_id, "attempt": attempt}))
        .await;
    agent
        .send(
            json!({"type": "complete", "task_id": task_id, "attempt": attempt,
            "output": {"x": ["ok", "\u{0}"]}}),
        )
        .await;
    let error = agent.expect_type("error").await;
    assert!(
        error["message"].as_str().unwrap().contains("`output.x[1]`"),
        "{error}"
    );
    let failed = app
        .wait_for_job(&job_id, "failed", Duration::from_secs(10))
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");

    // A heartbeat with a NUL is refused; the session carries on.
    agent
        .send(
            json!({"type": "heartbeat", "timestamp": "2026-01-01T00:00:00Z",
            "metrics": {"m": "\u{0}"}}),
        )
        .await;
    let error = agent.expect_type("error").await;
    assert!(
        error["message"].as_str().unwrap().contains("`metrics.m`"),
        "{error}"
    );

    // A failure's reason keeps its text, with the NUL replaced.
    let job = app
        .create_job(json!({"prompt": "p2", "pipeline": ["test.nul"], "max_attempts": 1}))
        .await;
    let task = agent.expect_type("task").await;
    let (task_id, attempt) = (task["task_id"].clone(), task["attempt"].clone());
    agent
        .send(json!({"type": "accept", "task_id": task_id, "attempt": attempt}))
        .await;
    agent
        .send(
            json!({"type": "fail", "task_id": task_id, "attempt": attempt,
            "error": "broke\u{0}here", "retryable": false}),
        )
        .await;
    assert_eq!(agent.expect_type("ack").await["of"], "fail");
    app.wait_for_job(
        job["id"].as_str().unwrap(),
        "failed",
        Duration::from_secs(10),
    )
    .await;
}

/// The reproduction from the report: the reference creator extracts a
/// requirement holding a NUL from a document. The job ends (failed) within
/// its attempts, and the creator's slots are free for the next job.
async fn a_document_with_nul_cannot_stall_the_creator(app: TestApp) {
    let agents = reference_agents(&app).await;
    let poisoned = app
        .create_job(json!({"prompt": "x", "document": {
            "content_base64": "SW52b2ljZXMgbXVzdABiZSBhcmNoaXZlZCBmb3IgdGVuIHllYXJzLgo=",
            "file_name": "nul.md"}}))
        .await;
    let done = app
        .wait_for_job(
            poisoned["id"].as_str().unwrap(),
            "failed",
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    let healthy = app
        .create_job(json!({"prompt": "x", "document": {
            "content_base64": "SW52b2ljZXMgbXVzdCBiZSBhcmNoaXZlZCBmb3IgdGVuIHllYXJzLgo=",
            "file_name": "ok.md"}}))
        .await;
    app.wait_for_job(
        healthy["id"].as_str().unwrap(),
        "completed",
        Duration::from_secs(20),
    )
    .await;
    for a in agents {
        a.kill();
    }
}

switchyard_tests::backend_tests!(
    app = super::app;
    rest_input_with_nul_is_422_naming_the_field,
    frames_with_nul_are_refused_and_fail_their_attempt,
    a_document_with_nul_cannot_stall_the_creator,
    a_result_the_store_refuses_for_good_fails_its_attempt
);

/// A `complete` the store refuses for good (here a trigger, standing in for
/// any permanent database error) is `unstorable`, not "send it again", and
/// its attempt fails at once: the next attempt comes back to the agent.
async fn a_result_the_store_refuses_for_good_fails_its_attempt(app: TestApp) {
    exec(
        &app,
        match app.backend {
            Backend::Sqlite => vec![
                "CREATE TRIGGER refuse_done BEFORE UPDATE ON tasks WHEN NEW.status = 'succeeded' \
             BEGIN SELECT RAISE(ABORT, 'refused for good'); END",
            ],
            Backend::Postgres => vec![
                "CREATE FUNCTION refuse_done() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.status = 'succeeded' THEN RAISE EXCEPTION 'refused for good'; END IF; \
             RETURN NEW; END $$",
                "CREATE TRIGGER refuse_done BEFORE UPDATE ON tasks \
             FOR EACH ROW EXECUTE FUNCTION refuse_done()",
            ],
        },
    )
    .await;
    let (mut agent, _) = RawAgent::hello(&app, "raw-refused", "test.refused", 1, json!([])).await;
    app.create_job(json!({"prompt": "p", "pipeline": ["test.refused"]}))
        .await;
    let task = agent.expect_type("task").await;
    let (task_id, attempt) = (task["task_id"].clone(), task["attempt"].clone());
    agent
        .send(json!({"type": "accept", "task_id": task_id, "attempt": attempt}))
        .await;
    agent
        .send(json!({"type": "complete", "task_id": task_id, "attempt": attempt, "output": {}}))
        .await;
    let error = agent.expect_type("error").await;
    assert_eq!(error["code"], "unstorable", "{error}");
    assert_eq!(error["task_id"], task_id, "{error}");
    let again = agent.expect_type("task").await;
    assert_eq!(
        (again["task_id"].clone(), again["attempt"].as_u64()),
        (task_id, Some(2))
    );
}

async fn exec(app: &TestApp, statements: Vec<&str>) {
    for sql in statements {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match app.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
                sqlx::query(sql).execute(&pool).await.unwrap();
                pool.close().await;
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
                sqlx::query(sql).execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }
}
