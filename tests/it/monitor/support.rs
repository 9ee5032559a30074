//! Agents and helpers shared by the monitor tests.

use std::time::Duration;

use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use switchyard::auth::Role;
use switchyard_agent::protocol::{Pricing, Usage};
use switchyard_agent::reference::agents::{JobMemories, VALIDATE, creator, validate};
use switchyard_agent::{Agent, AgentHandle, CapabilitySpec, TaskContext, TaskError};
use switchyard_tests::TestApp;
use switchyard_tests::app::json;

pub const SAMPLE: &str = include_str!("../../../agent-sdk/tests/fixtures/sample-spec.md");

/// What the priced validator reports per task, and its pricing.
pub const TOKENS_IN: u64 = 1000;
pub const TOKENS_OUT: u64 = 200;
pub fn pricing() -> Pricing {
    Pricing {
        currency: "EUR".into(),
        per_1k_input_tokens: 0.5,
        per_1k_output_tokens: 1.5,
        per_request: 0.25,
    }
}

/// The reference validator, but reporting known usage and priced.
pub fn priced_validator(app: &TestApp, name: &str) -> AgentHandle {
    let memories = std::sync::Arc::new(JobMemories::new(Duration::from_secs(3600)));
    Agent::builder(app.agent_url(), app.token_for(Role::Agent, name), name)
        .capability(
            CapabilitySpec::new(VALIDATE)
                .max_concurrency(8)
                .pricing(pricing()),
            move |ctx: TaskContext, input| {
                ctx.report_usage(Usage {
                    tokens_in: TOKENS_IN,
                    tokens_out: TOKENS_OUT,
                    requests: 1,
                    model: Some("test-model".into()),
                });
                validate(memories.clone(), ctx, input)
            },
        )
        .build()
        .expect("agent")
        .spawn()
}

/// The reference creator plus the priced validator, connected.
pub async fn reference_agents(app: &TestApp) -> Vec<AgentHandle> {
    let c = creator(
        &app.agent_url(),
        &app.token_for(Role::Agent, "creator-1"),
        "creator-1",
    )
    .expect("creator")
    .spawn();
    let v = priced_validator(app, "validator-priced");
    c.wait_connected().await.expect("creator connects");
    v.wait_connected().await.expect("validator connects");
    vec![c, v]
}

/// Submits the sample specification; returns the job id.
pub async fn submit_sample(app: &TestApp) -> String {
    let form = Form::new()
        .text("prompt", "Extract the requirements")
        .text("labels", "team-a")
        .part(
            "document",
            Part::bytes(SAMPLE.as_bytes().to_vec())
                .file_name("sample-spec.md")
                .mime_str("text/markdown")
                .expect("mime"),
        );
    let (status, job) = json(
        app.as_role(Role::Operator, Method::POST, "/v1/jobs")
            .multipart(form)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    job["id"].as_str().expect("id").to_owned()
}

/// An agent offering `capability` that answers every task with `handler`.
pub fn agent<F, Fut>(app: &TestApp, name: &str, capability: &str, handler: F) -> AgentHandle
where
    F: Fn(TaskContext, Value) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Value, TaskError>> + Send + 'static,
{
    Agent::builder(app.agent_url(), app.token_for(Role::Agent, name), name)
        .capability(CapabilitySpec::new(capability).max_concurrency(4), handler)
        .build()
        .expect("agent")
        .spawn()
}

/// GET as viewer; status and JSON body.
pub async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    json(
        app.as_role(Role::Viewer, Method::GET, path)
            .send()
            .await
            .expect("request"),
    )
    .await
}

/// POST (no body) as `role`; status and JSON body.
pub async fn post(app: &TestApp, role: Role, path: &str) -> (u16, Value) {
    json(
        app.as_role(role, Method::POST, path)
            .send()
            .await
            .expect("request"),
    )
    .await
}

/// Creates a JSON job with `pipeline` and returns its id.
pub async fn create(app: &TestApp, pipeline: &[&str], extra: Value) -> String {
    let mut body = json!({"prompt": "test", "pipeline": pipeline});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    app.create_job(body).await["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Polls `check` on `GET path` until it holds (panics after `timeout`).
pub async fn wait_until(
    app: &TestApp,
    path: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (_, body) = get(app, path).await;
        if check(&body) {
            return body;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("GET {path} did not reach the expected state within {timeout:?}: {body}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The job's events of `kind`.
pub async fn events_of(app: &TestApp, job_id: &str, kind: &str) -> Vec<switchyard::domain::Event> {
    app.store()
        .list_events(Some(job_id.parse().expect("uuid")), 0, 1000)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.kind == kind)
        .collect()
}

/// Runs one SQL statement with one bound id on the app's database, to
/// simulate what a crash or a bug could leave behind.
pub async fn exec_sql(app: &TestApp, sql: &'static str, id: uuid::Uuid) {
    match app.backend {
        switchyard_tests::Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.database_url).await.expect("pg");
            sqlx::query(sql).bind(id).execute(&pool).await.expect("sql");
            pool.close().await;
        }
        switchyard_tests::Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.database_url)
                .await
                .expect("sqlite");
            sqlx::query(sql).bind(id).execute(&pool).await.expect("sql");
            pool.close().await;
        }
    }
}
