//! OpenTelemetry traces: a `serve` process with `otlp_endpoint` set exports
//! its spans over OTLP/HTTP to a small receiver run by the test, and one
//! job's spans (its REST request, the dispatch of its task, the agent's
//! frames about it and its webhook deliveries) form one linked trace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value, json};
use switchyard::auth::{JwtKeys, Role};
use switchyard_agent::{Agent, CapabilitySpec, TaskError};
use switchyard_tests::app::TEST_SECRET;
use switchyard_tests::process::ConfiguredServe;

type Spans = Arc<Mutex<Vec<Span>>>;

/// `POST /v1/traces` (OTLP/HTTP, protobuf) keeps every span; `POST /hook`
/// is a webhook receiver that answers 200.
async fn receiver(spans: Spans) -> String {
    async fn traces(State(spans): State<Spans>, body: Bytes) -> Vec<u8> {
        let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
        let mut kept = spans.lock().expect("spans");
        for resource in request.resource_spans {
            for scope in resource.scope_spans {
                kept.extend(scope.spans);
            }
        }
        ExportTraceServiceResponse::default().encode_to_vec()
    }
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .route("/hook", post(|| async { "ok" }))
        .with_state(spans);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver") });
    base
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            any_value::Value::IntValue(i) => Some(i.to_string()),
            other => Some(format!("{other:?}")),
        })
}

#[tokio::test]
async fn a_jobs_spans_arrive_over_otlp_as_one_linked_trace() {
    let spans: Spans = Arc::default();
    let collector = receiver(spans.clone()).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nlog_filter = \"warn\"\notlp_endpoint = \"{collector}\"\njwt_secret = \"{TEST_SECRET}\"\n[webhooks]\nallow_loopback = true\n"
        ),
    )
    .expect("write config");
    // Export every 100 ms rather than every 5 s.
    let hub =
        ConfiguredServe::start(&config, dir.path(), &[("OTEL_BSP_SCHEDULE_DELAY", "100")]).await;
    let (_child, mut lines, base) = (hub.child, hub.lines, hub.base);
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let keys = JwtKeys::new(TEST_SECRET.as_bytes(), None);
    let token = |role, sub: &str| {
        keys.issue(sub, role, Duration::from_secs(600))
            .expect("token")
    };
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{base}/v1/webhooks"))
        .bearer_auth(token(Role::Admin, "admin"))
        .json(&json!({"url": format!("{collector}/hook")}))
        .send()
        .await
        .expect("create webhook");
    assert_eq!(res.status(), 201);

    let agent = Agent::builder(
        base.replace("http://", "ws://") + "/v1/agents/connect",
        token(Role::Agent, "tracer"),
        "tracer",
    )
    .capability(
        CapabilitySpec::new("echo"),
        |_ctx, input: Value| async move { Ok::<_, TaskError>(json!({"echo": input["prompt"]})) },
    )
    .build()
    .expect("agent")
    .spawn();
    agent.wait_connected().await.expect("agent connects");

    let request_id = "trace-test-0001";
    let res = client
        .post(format!("{base}/v1/jobs"))
        .bearer_auth(token(Role::Operator, "op"))
        .header("x-request-id", request_id)
        .json(&json!({"prompt": "hello", "pipeline": ["echo"]}))
        .send()
        .await
        .expect("create job");
    assert_eq!(res.status(), 201);
    let job: Value = res.json().await.expect("job");
    let job_id = job["id"].as_str().expect("id").to_owned();

    // Wait for the request, the dispatch, the agent's accept and complete,
    // and the delivery of the job's completion to the webhook.
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            {
                let spans = spans.lock().expect("spans");
                let named = |name: &str| -> Vec<&Span> {
                    spans.iter().filter(|s| s.name == name).collect()
                };
                let request = named("request")
                    .into_iter()
                    .find(|s| attribute(s, "request_id").as_deref() == Some(request_id))
                    .cloned();
                let dispatch = named("dispatch")
                    .into_iter()
                    .find(|s| attribute(s, "job_id").as_deref() == Some(job_id.as_str()))
                    .cloned();
                let frames: HashMap<String, Span> = named("agent_frame")
                    .into_iter()
                    .filter(|s| {
                        dispatch
                            .as_ref()
                            .is_some_and(|d| attribute(s, "task_id") == attribute(d, "task_id"))
                    })
                    .filter_map(|s| Some((attribute(s, "kind")?, s.clone())))
                    .collect();
                let completed = named("webhook_attempt")
                    .into_iter()
                    .find(|s| {
                        attribute(s, "job_id").as_deref() == Some(job_id.as_str())
                            && attribute(s, "event_type").as_deref() == Some("job.completed")
                    })
                    .cloned();
                if let (Some(request), Some(dispatch), Some(webhook)) =
                    (request, dispatch, completed)
                    && frames.contains_key("accept")
                    && frames.contains_key("complete")
                {
                    return (request, dispatch, frames, webhook);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let Ok((request, dispatch, frames, webhook)) = found else {
        let names: Vec<String> = spans
            .lock()
            .expect("spans")
            .iter()
            .map(|s| s.name.clone())
            .collect();
        panic!("the job's spans did not all arrive; got {names:?}");
    };

    let trace = &request.trace_id;
    assert_eq!(
        &dispatch.trace_id, trace,
        "the dispatch is in the request's trace"
    );
    assert_eq!(
        dispatch.parent_span_id, request.span_id,
        "the dispatch is the request's child"
    );
    for kind in ["accept", "complete"] {
        let frame = &frames[kind];
        assert_eq!(&frame.trace_id, trace, "{kind} is in the request's trace");
        assert_eq!(
            frame.parent_span_id, dispatch.span_id,
            "{kind} is the dispatch's child"
        );
    }
    assert_eq!(
        &webhook.trace_id, trace,
        "the webhook delivery is in the request's trace"
    );
    assert_eq!(webhook.parent_span_id, request.span_id);
    assert!(attribute(&webhook, "webhook_id").is_some());
    agent.kill();
}
