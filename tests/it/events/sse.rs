//! `GET /v1/jobs/{id}/events`: replay then live to the job's end, resuming
//! with `Last-Event-ID` / `?after=`, request ids on events.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::sse::{SseEvent, SseStream};
use switchyard_tests::{Backend, TestApp, spawn_app_with};
use uuid::Uuid;

use super::{Worker, create_job, fast, seqs, stored_events, types};

fast_backend_tests!(
    replays_then_follows_a_job_to_its_end,
    resuming_gets_exactly_the_missed_events,
    a_cancelled_job_stream_carries_its_task_cancellations_then_ends,
);

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, fast).await
}

/// The events' data as JSON, checking `id` and `event` agree with it.
fn data(events: &[SseEvent]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            let v = e.json();
            assert_eq!(v["seq"].as_i64(), Some(e.seq()), "{e:?}");
            assert_eq!(v["type"].as_str(), Some(e.event.as_str()), "{e:?}");
            v
        })
        .collect()
}

fn path(job: Uuid) -> String {
    format!("/v1/jobs/{job}/events")
}

async fn replays_then_follows_a_job_to_its_end(app: TestApp) {
    let agent = Worker::connect(&app, "echo-1").await;
    let job = create_job(
        &app,
        json!({"prompt": "p", "labels": ["team-a"]}),
        "req-sse-1",
    )
    .await;
    let mut worker = Worker::take(agent).await;

    // What happened so far is replayed...
    let mut stream = SseStream::open(&app, &path(job), None).await;
    let mut got = stream.until_type("job.started").await;
    assert_eq!(
        types(&data(&got)),
        [
            "job.created",
            "task.created",
            "task.assigned",
            "job.started"
        ]
        .map(String::from)
        .to_vec()
    );

    // ...then the rest arrives live, and the stream ends after job.completed.
    worker.accept().await;
    worker.progress("half way").await;
    worker.item("one").await;
    worker.item("two").await;
    worker.complete().await;
    got.extend(stream.until_end().await);
    let got = data(&got);
    assert_eq!(
        types(&got),
        [
            "job.created",
            "task.created",
            "task.assigned",
            "job.started",
            "task.started",
            "task.progress",
            "task.succeeded",
            "item.created",
            "item.integrated",
            "item.created",
            "item.integrated",
            "job.completed",
        ]
        .map(String::from)
        .to_vec()
    );
    // Exactly what the log holds, byte for byte as JSON.
    assert_eq!(got, stored_events(&app, Some(job)).await);
    let strictly_increasing = seqs(&got).windows(2).all(|w| w[0] < w[1]);
    assert!(strictly_increasing, "{:?}", seqs(&got));

    // Request ids: the HTTP request that created the job; none for what the
    // dispatcher or the agent's session did.
    assert_eq!(got[0]["request_id"], "req-sse-1", "{}", got[0]);
    assert_eq!(
        got[1]["request_id"], "req-sse-1",
        "task.created is in the same transaction"
    );
    for event in &got[2..] {
        assert!(event.get("request_id").is_none(), "{event}");
    }
    assert_eq!(
        got[5]["payload"]["progress"],
        json!({"percent": 50.0, "message": "half way"})
    );

    // A finished job: replayed in full, then the stream ends at once.
    let mut again = SseStream::open(&app, &path(job), None).await;
    assert_eq!(data(&again.until_end().await), got);
}

async fn resuming_gets_exactly_the_missed_events(app: TestApp) {
    let agent = Worker::connect(&app, "echo-1").await;
    let job = create_job(&app, json!({"prompt": "p"}), "req-resume").await;
    let mut worker = Worker::take(agent).await;

    let mut first = SseStream::open(&app, &path(job), None).await;
    let mut got = data(&first.until_type("job.started").await);
    worker.accept().await;
    got.extend(data(&first.until_type("task.started").await));
    // The client goes away mid-job...
    drop(first);
    let last = got.last().and_then(|e| e["seq"].as_i64()).expect("seq");

    // ...and misses all this.
    for n in 0..3 {
        worker.progress(&format!("step {n}")).await;
    }
    for n in 0..4 {
        worker.item(&format!("item {n}")).await;
    }
    worker.complete().await;
    app.wait_for_job(&job.to_string(), "completed", Duration::from_secs(10))
        .await;

    // Resuming with Last-Event-ID gives exactly the missed events.
    let mut resumed = SseStream::open(&app, &path(job), Some(last)).await;
    let missed = data(&resumed.until_end().await);
    assert!(missed.iter().all(|e| e["seq"].as_i64() > Some(last)));
    let all = stored_events(&app, Some(job)).await;
    let mut joined = got.clone();
    joined.extend(missed.clone());
    assert_eq!(joined, all, "no gap, no duplicate");
    assert_eq!(
        types(&missed).first().map(String::as_str),
        Some("task.progress")
    );

    // `?after=` resumes the same way; the header wins over it.
    let middle = all[5]["seq"].as_i64().expect("seq");
    let mut by_query = SseStream::open(&app, &format!("{}?after={middle}", path(job)), None).await;
    assert_eq!(data(&by_query.until_end().await), all[6..].to_vec());
    let mut both = SseStream::open(&app, &format!("{}?after=0", path(job)), Some(middle)).await;
    assert_eq!(data(&both.until_end().await), all[6..].to_vec());

    // Resuming after the end: nothing, and the stream ends.
    let end = all.last().and_then(|e| e["seq"].as_i64()).expect("seq");
    let mut after_end = SseStream::open(&app, &path(job), Some(end)).await;
    assert_eq!(after_end.until_end().await, vec![]);
}

async fn a_cancelled_job_stream_carries_its_task_cancellations_then_ends(app: TestApp) {
    let agent = Worker::connect(&app, "echo-1").await;
    let job = create_job(&app, json!({"prompt": "p"}), "req-cancel-1").await;
    let mut worker = Worker::take(agent).await;
    worker.accept().await;
    let mut stream = SseStream::open(&app, &path(job), None).await;
    let mut got = data(&stream.until_type("task.started").await);

    let res = app
        .admin(reqwest::Method::DELETE, &format!("/v1/jobs/{job}"))
        .header("x-request-id", "req-cancel-2")
        .send()
        .await
        .expect("cancel");
    assert_eq!(res.status().as_u16(), 200);
    got.extend(data(&stream.until_end().await));
    let n = got.len();
    assert_eq!(
        types(&got[n - 2..]),
        ["job.cancelled", "task.cancelled"]
            .map(String::from)
            .to_vec(),
        "the task's cancellation is committed with the job's and follows it"
    );
    assert_eq!(got[n - 1]["request_id"], "req-cancel-2");
    assert_eq!(got, stored_events(&app, Some(job)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_get_keep_alive_comments() {
    let app = app(Backend::Sqlite).await;
    let mut stream = SseStream::open(&app, "/v1/events", None).await;
    // keep-alive is 100 ms in these tests: a few comments, no event.
    assert_eq!(stream.next_within(Duration::from_millis(450)).await, None);
    assert!(stream.comments >= 2, "{} comments", stream.comments);
}
