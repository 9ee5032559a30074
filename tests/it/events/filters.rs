//! `GET /v1/events`: type and label filters, replay with `after`, and every
//! bad input refused with a clear 4xx.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard::auth::Role;
use switchyard_tests::app::json as body;
use switchyard_tests::sse::{SseStream, request};
use switchyard_tests::{Backend, TestApp, spawn_app, spawn_app_with};
use uuid::Uuid;

use super::{cancel, create_job, fast, stored_events, types};

fast_backend_tests!(type_and_label_filters_replay_and_follow);

async fn type_and_label_filters_replay_and_follow(app: TestApp) {
    // No agent: jobs stay queued until cancelled.
    let a1 = create_job(&app, json!({"prompt": "a1", "labels": ["team-a"]}), "r1").await;
    let b1 = create_job(&app, json!({"prompt": "b1", "labels": ["team-b"]}), "r2").await;
    let a2 = create_job(
        &app,
        json!({"prompt": "a2", "labels": ["team-a", "x"]}),
        "r3",
    )
    .await;
    cancel(&app, a1).await;
    cancel(&app, b1).await;

    let path = "/v1/events?type=job.created,job.cancelled&label=team-a&after=0";
    let mut stream = SseStream::open(&app, path, None).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(stream.next().await.expect("event").json());
    }
    let summary = |events: &[Value]| -> Vec<(String, String)> {
        events
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or_default().to_owned(),
                    e["job_id"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        summary(&got),
        [
            ("job.created", a1),
            ("job.created", a2),
            ("job.cancelled", a1)
        ]
        .map(|(t, j)| (t.to_owned(), j.to_string()))
        .to_vec()
    );
    // Exactly the stored events, filtered.
    let all = stored_events(&app, None).await;
    let expected: Vec<Value> = all
        .iter()
        .filter(|e| {
            (e["type"] == "job.created" || e["type"] == "job.cancelled")
                && [a1.to_string(), a2.to_string()]
                    .contains(&e["job_id"].as_str().unwrap_or_default().to_owned())
        })
        .cloned()
        .collect();
    assert_eq!(got, expected);

    // Live: a new team-a job and a team-b one; only the first comes through.
    create_job(&app, json!({"prompt": "b2", "labels": ["team-b"]}), "r4").await;
    let a3 = create_job(&app, json!({"prompt": "a3", "labels": ["team-a"]}), "r5").await;
    let live = stream.next().await.expect("event").json();
    assert_eq!(
        (live["type"].as_str(), live["job_id"].as_str()),
        (Some("job.created"), Some(a3.to_string().as_str()))
    );
    assert_eq!(live["request_id"], "r5");

    // Without `after` a stream starts live: nothing old is replayed.
    let mut fresh = SseStream::open(&app, "/v1/events?type=job.cancelled", None).await;
    cancel(&app, a2).await;
    let next = fresh.next().await.expect("event").json();
    assert_eq!(
        (next["type"].as_str(), next["job_id"].as_str()),
        (Some("job.cancelled"), Some(a2.to_string().as_str()))
    );

    // Events without a job (agent.*) pass type filters but never a label filter.
    let mut agents = SseStream::open(&app, "/v1/events?type=agent.connected&after=0", None).await;
    let (_agent, _) =
        switchyard_tests::raw_agent::RawAgent::hello(&app, "echo-9", "test.echo", 1, json!([]))
            .await;
    let connected = agents.next().await.expect("event").json();
    assert_eq!(connected["type"], "agent.connected");
    assert_eq!(connected["payload"]["name"], "echo-9");
    assert!(connected["job_id"].is_null());
    assert!(
        connected.get("request_id").is_none(),
        "agent sessions carry no request id"
    );
    assert_eq!(types(&[connected]), ["agent.connected"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_refused_with_clear_errors() {
    let app = spawn_app_with(Backend::Sqlite, fast).await;
    let job = create_job(&app, json!({"prompt": "p"}), "r1").await;
    let cases: Vec<(String, Option<&str>, u16, &str, &str)> = vec![
        (
            "/v1/events?type=job.created,job.done".into(),
            None,
            400,
            "unknown_event_type",
            "`job.done`",
        ),
        (
            "/v1/events?type=nope".into(),
            None,
            400,
            "unknown_event_type",
            "webhook.disabled",
        ),
        (
            "/v1/events?after=-1".into(),
            None,
            400,
            "invalid_after",
            "non-negative integer",
        ),
        (
            "/v1/events?after=abc".into(),
            None,
            400,
            "invalid_after",
            "`abc`",
        ),
        (
            "/v1/events".into(),
            Some("abc"),
            400,
            "invalid_after",
            "Last-Event-ID",
        ),
        (
            "/v1/events?label=".into(),
            None,
            400,
            "invalid_query",
            "label",
        ),
        (
            "/v1/events?colour=red".into(),
            None,
            400,
            "invalid_query",
            "colour",
        ),
        (
            format!("/v1/jobs/{job}/events?after=-1"),
            None,
            400,
            "invalid_after",
            "after",
        ),
        (
            format!("/v1/jobs/{job}/events"),
            Some("-5"),
            400,
            "invalid_after",
            "Last-Event-ID",
        ),
        (
            format!("/v1/jobs/{}/events", Uuid::now_v7()),
            None,
            404,
            "not_found",
            "not found",
        ),
        ("/v1/jobs/42/events".into(), None, 400, "invalid_id", "`42`"),
    ];
    for (path, last_event_id, status, code, text) in cases {
        let res = request(&app, Role::Viewer, &path, last_event_id).await;
        let (got, b) = body(res).await;
        assert_eq!(got, status, "{path}: {b}");
        assert_eq!(b["error"], code, "{path}: {b}");
        assert!(
            b["message"].as_str().unwrap_or_default().contains(text),
            "{path}: {b}"
        );
    }
    let known = request(&app, Role::Viewer, "/v1/events?type=nope", None).await;
    let (_, b) = body(known).await;
    let message = b["message"].as_str().unwrap_or_default().to_owned();
    for t in [
        "job.created",
        "task.progress",
        "item.rejected",
        "agent.offline",
        "webhook.disabled",
    ] {
        assert!(message.contains(t), "the known types are listed: {message}");
    }

    // Who may read: viewers yes; agents no; nobody without a token.
    assert_eq!(
        request(&app, Role::Agent, "/v1/events", None)
            .await
            .status()
            .as_u16(),
        403
    );
    let anonymous = reqwest::get(app.url("/v1/events")).await.expect("request");
    assert_eq!(anonymous.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_when_the_hub_shuts_down() {
    let mut app = spawn_app(Backend::Sqlite).await;
    let mut stream = SseStream::open(&app, "/v1/events", None).await;
    let hub = app.hub.take().expect("hub");
    let stopped = tokio::time::timeout(Duration::from_secs(1), hub.stop()).await;
    assert!(
        stopped.is_ok(),
        "open streams do not hold the shutdown up to its grace"
    );
    assert_eq!(stream.next().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_description_has_the_event_endpoints() {
    let app = spawn_app(Backend::Sqlite).await;
    let (status, spec) = body(
        app.client
            .get(app.url("/v1/openapi.json"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, 200);
    for (path, method) in [
        ("/v1/jobs/{id}/events", "get"),
        ("/v1/events", "get"),
        ("/v1/stream/tickets", "post"),
        ("/v1/stream", "get"),
    ] {
        assert!(
            spec["paths"][path][method].is_object(),
            "openapi lacks {method} {path}"
        );
    }
    let params: Vec<&str> = spec["paths"]["/v1/events"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in ["type", "label", "after", "Last-Event-ID"] {
        assert!(params.contains(&name), "{name} in {params:?}");
    }
    assert!(spec["components"]["schemas"]["StreamTicket"].is_object());
}
