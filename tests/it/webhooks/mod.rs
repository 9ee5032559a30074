//! Signed webhooks end to end: the real hub delivering to real HTTP
//! receivers on 127.0.0.1 (loopback targets allowed by the test config),
//! every request verified with the `standardwebhooks` crate.

/// Like `backend_tests!`, on a hub with the webhook test configuration
/// ([`test_config`]).
macro_rules! webhook_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::webhooks::app(switchyard_tests::Backend::Sqlite).await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::webhooks::app(switchyard_tests::Backend::Postgres).await).await;
                }
            )+
        }
    };
}

mod api;
mod delivery;
pub(crate) mod receiver;
mod recovery;
mod secrets;

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use switchyard::auth::Role;
use switchyard::config::RawConfig;
use switchyard::domain::Event;
use switchyard_agent::AgentHandle;
use switchyard_agent::reference::agents::{creator, validator};
use switchyard_tests::app::json;
use switchyard_tests::{Backend, TestApp, spawn_app_with};

use self::receiver::Receiver;

const SAMPLE: &str = include_str!("../../../agent-sdk/tests/fixtures/sample-spec.md");

/// The test defaults: loopback allowed, short timeout, a quick retry
/// schedule long enough to outlast a receiver being down for a few seconds,
/// a quick circuit breaker.
pub fn test_config(raw: &mut RawConfig) {
    raw.webhooks.allow_loopback = true;
    raw.webhooks.timeout = "2s".into();
    raw.webhooks.retry_schedule = std::iter::once("0s")
        .chain(std::iter::repeat_n("100ms", 40))
        .map(String::from)
        .collect();
    raw.webhooks.breaker_threshold = 3;
    raw.webhooks.breaker_cooldown = "200ms".into();
}

pub async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, test_config).await
}

pub async fn app_with(backend: Backend, configure: impl FnOnce(&mut RawConfig)) -> TestApp {
    spawn_app_with(backend, |raw| {
        test_config(raw);
        configure(raw);
    })
    .await
}

/// Creates a subscription as admin (201 expected); returns its JSON (with `secret`).
pub async fn create_webhook(app: &TestApp, body: Value) -> Value {
    let (status, webhook) = json(
        app.admin(Method::POST, "/v1/webhooks")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "create webhook: {webhook}");
    webhook
}

/// A receiver and a subscription to it; the receiver verifies with its secret.
pub async fn subscribe(app: &TestApp, mut body: Value) -> (Receiver, Value) {
    let receiver = Receiver::start().await;
    body["url"] = json!(receiver.url());
    let webhook = create_webhook(app, body).await;
    receiver.set_secrets(&[webhook["secret"].as_str().unwrap()]);
    (receiver, webhook)
}

/// The `webhook-id` of event `seq` for a subscription, as documented in
/// docs/webhooks.md: `msg_<seq>_<subscription id without dashes>`.
pub fn message_id(seq: i64, webhook: &Value) -> String {
    format!(
        "msg_{seq}_{}",
        webhook["id"].as_str().unwrap().replace('-', "")
    )
}

/// Every event in the log, in order.
pub async fn all_events(app: &TestApp) -> Vec<Event> {
    let store = app.store();
    let mut out: Vec<Event> = Vec::new();
    loop {
        let after = out.last().map_or(0, |e| e.seq);
        let page = store.list_events(None, after, 1000).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// A subscription's deliveries through the API, newest first.
pub async fn deliveries(app: &TestApp, webhook: &Value) -> Vec<Value> {
    let path = format!(
        "/v1/webhooks/{}/deliveries?limit=500",
        webhook["id"].as_str().unwrap()
    );
    let (status, page) = json(app.admin(Method::GET, &path).send().await.unwrap()).await;
    assert_eq!(status, 200, "{page}");
    page["deliveries"].as_array().unwrap().clone()
}

/// Polls a subscription's deliveries until `check` holds (or panics after 10 s):
/// the receiver sees a request before the hub has recorded its outcome.
pub async fn wait_for_deliveries(
    app: &TestApp,
    webhook: &Value,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = deliveries(app, webhook).await;
        if check(&list) {
            return list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deliveries did not reach the expected state: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// All `n` deliveries delivered.
pub fn all_delivered(n: usize) -> impl Fn(&[Value]) -> bool {
    move |list| list.len() == n && list.iter().all(|d| d["status"] == "delivered")
}

pub async fn get_webhook(app: &TestApp, webhook: &Value) -> Value {
    let path = format!("/v1/webhooks/{}", webhook["id"].as_str().unwrap());
    let (status, body) = json(app.admin(Method::GET, &path).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The reference Creator and Validator, connected.
pub async fn reference_agents(app: &TestApp) -> (AgentHandle, AgentHandle) {
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
    (c, v)
}

/// Submits the sample specification with `label`; returns the job id and
/// the `x-request-id` of the request.
pub async fn submit_sample(app: &TestApp, label: &str) -> (String, String) {
    let form = Form::new()
        .text("prompt", "Extract the requirements")
        .text("labels", label.to_owned())
        .part(
            "document",
            Part::bytes(SAMPLE.as_bytes().to_vec())
                .file_name("sample-spec.md")
                .mime_str("text/markdown")
                .unwrap(),
        );
    let res = app
        .as_role(Role::Operator, Method::POST, "/v1/jobs")
        .multipart(form)
        .send()
        .await
        .unwrap();
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let (status, job) = json(res).await;
    assert_eq!(status, 201, "{job}");
    (job["id"].as_str().unwrap().to_owned(), request_id)
}

/// Runs the sample job through the reference pipeline to completion.
pub async fn run_sample_job(app: &TestApp, label: &str) -> (String, String) {
    let agents = reference_agents(app).await;
    let (job_id, request_id) = submit_sample(app, label).await;
    app.wait_for_job(&job_id, "completed", Duration::from_secs(60))
        .await;
    agents.0.kill();
    agents.1.kill();
    (job_id, request_id)
}

/// Asserts the receiver accepted exactly `expected` (each once after
/// de-duplication), every request verified, and each body and `x-request-id`
/// is what the event log says.
pub fn assert_received_exactly(receiver: &Receiver, webhook: &Value, expected: &[Event]) {
    let log = receiver.log();
    for r in &log {
        assert!(
            r.verified.iter().all(Result::is_ok) && !r.verified.is_empty(),
            "request {} did not verify: {:?}",
            r.msg_id,
            r.verified
        );
    }
    let accepted = receiver.accepted();
    let want: BTreeSet<String> = expected
        .iter()
        .map(|e| message_id(e.seq, webhook))
        .collect();
    let got: BTreeSet<String> = accepted.keys().cloned().collect();
    assert_eq!(
        got.difference(&want).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "unexpected messages"
    );
    assert_eq!(
        want.difference(&got).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "missing messages"
    );
    for event in expected {
        let r = &accepted[&message_id(event.seq, webhook)];
        let mut data = event.payload.clone();
        data["seq"] = json!(event.seq);
        data["job_id"] = json!(event.job_id);
        assert_eq!(r.body["type"], json!(event.kind), "event {}", event.seq);
        assert_eq!(r.body["data"], data, "event {}", event.seq);
        let at = chrono::DateTime::parse_from_rfc3339(r.body["timestamp"].as_str().unwrap())
            .unwrap()
            .to_utc();
        assert_eq!(at, event.created_at, "event {}", event.seq);
        let request_id = r.headers.get("x-request-id").map(|v| v.to_str().unwrap());
        assert_eq!(
            request_id,
            event.request_id.as_deref(),
            "event {}",
            event.seq
        );
        assert_eq!(r.headers["content-type"], "application/json");
    }
}
