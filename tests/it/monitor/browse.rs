//! What viewers page through on a real reference job: job counts, a job's
//! history newest first, a task's attempts, the throughput history, text
//! filters on jobs and items, and each bad input refused with a clear 400.

use std::time::Duration;

use serde_json::Value;
use switchyard_tests::{TestApp, backend_tests};

use super::support::{get, reference_agents, submit_sample, wait_until};

backend_tests!(browse_a_finished_reference_job, browse_inputs_are_checked);

async fn browse_a_finished_reference_job(app: TestApp) {
    let agents = reference_agents(&app).await;
    let job_id = submit_sample(&app).await;
    app.wait_for_job(&job_id, "completed", Duration::from_secs(30))
        .await;

    // Job counts come from the store, every status present.
    let (status, counts) = get(&app, "/v1/jobs/counts").await;
    assert_eq!(status, 200, "{counts}");
    assert_eq!(counts["total"], 1);
    assert_eq!(counts["by_status"]["completed"], 1);
    assert_eq!(counts["by_status"]["running"], 0);
    assert_eq!(counts["by_status"].as_object().map(|o| o.len()), Some(6));

    // The history, newest first, page by page, without gaps or repeats.
    let mut seqs = Vec::new();
    let mut events = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/v1/jobs/{job_id}/history?limit=7&before={b}"),
            None => format!("/v1/jobs/{job_id}/history?limit=7"),
        };
        let (status, page) = get(&app, &path).await;
        assert_eq!(status, 200, "{page}");
        for e in page["events"].as_array().expect("events") {
            assert_eq!(e["job_id"], Value::String(job_id.clone()));
            seqs.push(e["seq"].as_i64().expect("seq"));
            events.push(e.clone());
        }
        match page["next_before"].as_i64() {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    let stored = app
        .store()
        .list_events(Some(job_id.parse().expect("uuid")), 0, 1000)
        .await
        .expect("events");
    assert_eq!(seqs.len(), stored.len(), "every stored event is paged once");
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "job.completed")
            .count(),
        1
    );

    // A validation task: one attempt, succeeded, by the validator, with usage.
    let succeeded = events
        .iter()
        .find(|e| e["type"] == "task.succeeded" && e["payload"]["stage"] == 1)
        .expect("a validation task");
    let task_id = succeeded["payload"]["task_id"].as_str().expect("task id");
    let (status, view) = get(&app, &format!("/v1/tasks/{task_id}")).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["task"]["id"], task_id);
    assert_eq!(view["task"]["status"], "succeeded");
    let attempts = view["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "{view}");
    let a = &attempts[0];
    assert_eq!(a["attempt"], 1);
    assert_eq!(a["outcome"], "succeeded");
    assert_eq!(a["agent_id"], succeeded["payload"]["agent_id"]);
    for time in ["assigned_at", "started_at", "finished_at"] {
        assert!(a[time].is_string(), "{time}: {a}");
    }
    assert!(
        a["verdict"] == "accepted" || a["verdict"] == "rejected",
        "{a}"
    );
    assert!(
        a["usage"].is_object(),
        "the priced validator reports usage: {a}"
    );

    // The throughput this node saw: 16 tasks succeeded, 16 dispatched.
    for resolution in ["second", "minute"] {
        let path = format!("/v1/throughput?resolution={resolution}");
        let sum = |body: &Value, key: &str| -> i64 {
            body["buckets"]
                .as_array()
                .map(|b| b.iter().map(|x| x[key].as_i64().unwrap_or(0)).sum())
                .unwrap_or(0)
        };
        let body = wait_until(&app, &path, Duration::from_secs(5), |b| {
            sum(b, "tasks_succeeded") == 16
        })
        .await;
        assert!(sum(&body, "dispatched") >= 16, "{body}");
        assert_eq!(
            body["resolution_seconds"],
            if resolution == "second" { 1 } else { 60 }
        );
    }

    // Text search in items and in job prompts, ignoring case.
    let (_, items) = get(&app, &format!("/v1/jobs/{job_id}/items?limit=1000")).await;
    let items = items["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 15);
    let text = items[3]["data"]["text"].as_str().expect("text").to_owned();
    let needle: String = text
        .chars()
        .take(24)
        .collect::<String>()
        .to_ascii_uppercase();
    let (status, found) = get(
        &app,
        &format!("/v1/jobs/{job_id}/items?q={}", urlencoding(&needle)),
    )
    .await;
    assert_eq!(status, 200, "{found}");
    let found = found["items"].as_array().expect("items");
    assert!(found.iter().any(|i| i["id"] == items[3]["id"]), "{needle}");
    assert!(found.len() < items.len(), "the search narrows: {needle}");
    let (_, jobs) = get(&app, "/v1/jobs?q=EXTRACT%20THE").await;
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(1));
    let (_, jobs) = get(&app, "/v1/jobs?q=no%20such%20prompt").await;
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(0));
    let (_, jobs) = get(
        &app,
        "/v1/jobs?created_after=2000-01-01T00:00:00Z&created_before=2100-01-01T00:00:00%2B02:00",
    )
    .await;
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(1));
    let (_, jobs) = get(&app, "/v1/jobs?created_after=2100-01-01T00:00:00Z").await;
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(0));
    for a in agents {
        a.kill();
    }
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

async fn browse_inputs_are_checked(app: TestApp) {
    let job = app
        .create_job(serde_json::json!({"prompt": "p", "pipeline": ["nobody.home"]}))
        .await;
    let job_id = job["id"].as_str().expect("id");
    let long = "x".repeat(201);
    let cases: Vec<(String, u16, &str)> = vec![
        (
            format!("/v1/jobs/{job_id}/history?before=abc"),
            400,
            "`before` must be a positive event seq",
        ),
        (
            format!("/v1/jobs/{job_id}/history?before=0"),
            400,
            "`before` must be a positive event seq",
        ),
        (
            format!("/v1/jobs/{job_id}/history?limit=0"),
            400,
            "out of range",
        ),
        (format!("/v1/jobs/{job_id}/history?page=2"), 400, "page"),
        (
            "/v1/jobs/0190b8e2-7c4d-7a3e-9f00-1234567890ab/history".into(),
            404,
            "not found",
        ),
        ("/v1/jobs/nope/history".into(), 400, "job"),
        ("/v1/tasks/nope".into(), 400, "task"),
        (
            "/v1/tasks/0190b8e2-7c4d-7a3e-9f00-1234567890ab".into(),
            404,
            "task 0190b8e2-7c4d-7a3e-9f00-1234567890ab not found",
        ),
        (
            "/v1/throughput?resolution=hour".into(),
            400,
            "`resolution` is `minute`",
        ),
        (
            format!("/v1/jobs/{job_id}/items?q={long}"),
            400,
            "at most 200",
        ),
        ("/v1/jobs?created_after=yesterday".into(), 400, "RFC 3339"),
        (
            "/v1/jobs?created_before=2026-13-01T00:00:00Z".into(),
            400,
            "RFC 3339",
        ),
    ];
    for (path, want, message) in cases {
        let (status, body) = get(&app, &path).await;
        assert_eq!(status, want, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains(message),
            "{path}: {body}"
        );
    }
    // A blank search is no search; counts see the queued job.
    let (status, _) = get(&app, &format!("/v1/jobs/{job_id}/items?q=%20")).await;
    assert_eq!(status, 200);
    let (_, counts) = get(&app, "/v1/jobs/counts").await;
    assert_eq!(counts["by_status"]["queued"], 1);
}
