//! Deliveries: exactly the expected events after a full pipeline job,
//! retries, `410 Gone`, disabling after a failing run, `Retry-After`,
//! redirects, timeouts, and a slow target that delays only itself.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use switchyard_tests::{Backend, TestApp};

use super::receiver::{Receiver, Reply};
use super::{
    all_delivered, all_events, app, app_with, assert_received_exactly, deliveries, get_webhook,
    message_id, run_sample_job, subscribe, wait_for_deliveries,
};

webhook_tests!(
    a_pipeline_job_arrives_exactly_once_and_verified,
    failing_twice_then_ok_is_delivered_on_the_third_attempt,
    gone_disables_the_subscription_and_says_so,
);

async fn create_job(app: &TestApp, labels: &[&str]) -> String {
    let job = app
        .create_job(json!({"prompt": "webhook test", "labels": labels}))
        .await;
    job["id"].as_str().unwrap().to_owned()
}

async fn a_pipeline_job_arrives_exactly_once_and_verified(app: TestApp) {
    // Everything about jobs labelled `wh`, and two event types of any job.
    let (all, all_hook) = subscribe(
        &app,
        json!({"event_types": ["*"], "label": "wh", "description": "all of wh"}),
    )
    .await;
    let (some, some_hook) = subscribe(
        &app,
        json!({"event_types": ["job.completed", "item.rejected"]}),
    )
    .await;
    let (job_id, request_id) = run_sample_job(&app, "wh").await;

    let events = all_events(&app).await;
    let job_events: Vec<_> = events
        .iter()
        .filter(|e| e.job_id.map(|j| j.to_string()) == Some(job_id.clone()))
        .cloned()
        .collect();
    let picked: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "job.completed" || e.kind == "item.rejected")
        .cloned()
        .collect();
    assert_eq!(
        picked.iter().filter(|e| e.kind == "item.rejected").count(),
        3
    );
    assert!(job_events.len() > 50, "{} events", job_events.len());

    all.wait_for_accepted(job_events.len(), Duration::from_secs(30))
        .await;
    some.wait_for_accepted(picked.len(), Duration::from_secs(30))
        .await;
    // Nothing more arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_received_exactly(&all, &all_hook, &job_events);
    assert_received_exactly(&some, &some_hook, &picked);
    // Every 2xx answer ended the delivery: nothing was sent twice.
    assert_eq!(all.log().len(), job_events.len());
    assert_eq!(some.log().len(), picked.len());

    // The request that created the job is named on its events.
    let created = &all.accepted()[&message_id(job_events[0].seq, &all_hook)];
    assert_eq!(created.body["type"], "job.created");
    assert_eq!(created.headers["x-request-id"], request_id.as_str());

    // The delivery log says the same: one attempt each, 200.
    let log = wait_for_deliveries(&app, &some_hook, all_delivered(picked.len())).await;
    assert_eq!(log.len(), picked.len());
    for d in &log {
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["attempts"], 1, "{d}");
        assert_eq!(d["generation"], 0, "{d}");
        assert_eq!(d["attempt_log"][0]["status_code"], 200, "{d}");
        assert_eq!(d["attempt_log"][0]["error"], Value::Null, "{d}");
        assert!(d["attempt_log"][0]["latency_ms"].as_i64().unwrap() >= 0);
    }
    let seqs: Vec<i64> = log
        .iter()
        .map(|d| d["event_seq"].as_i64().unwrap())
        .collect();
    let mut newest_first = seqs.clone();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(seqs, newest_first, "newest first");
}

async fn failing_twice_then_ok_is_delivered_on_the_third_attempt(app: TestApp) {
    let (receiver, hook) = subscribe(&app, json!({"event_types": ["job.created"]})).await;
    receiver.set_script(|n| Reply::status(if n < 2 { 500 } else { 200 }));
    create_job(&app, &[]).await;
    receiver.wait_for_accepted(1, Duration::from_secs(10)).await;

    let log = receiver.log();
    assert_eq!(log.len(), 3);
    assert!(
        log.iter().all(|r| r.msg_id == log[0].msg_id),
        "same webhook-id on every attempt"
    );
    assert!(log.iter().all(|r| r.verified.iter().all(Result::is_ok)));

    let list = wait_for_deliveries(&app, &hook, all_delivered(1)).await;
    let d = &list[0];
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["message_id"], log[0].msg_id.as_str());
    assert_eq!(d["next_attempt_at"], Value::Null);
    assert!(d["delivered_at"].is_string());
    let attempts = d["attempt_log"].as_array().unwrap();
    let summary: Vec<(i64, i64, Value)> = attempts
        .iter()
        .map(|a| {
            (
                a["attempt"].as_i64().unwrap(),
                a["status_code"].as_i64().unwrap(),
                a["error"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, 500, json!("HTTP 500 Internal Server Error")),
            (2, 500, json!("HTTP 500 Internal Server Error")),
            (3, 200, Value::Null),
        ]
    );
    // The success ended the failing run.
    assert_eq!(get_webhook(&app, &hook).await["failing_since"], Value::Null);
}

async fn gone_disables_the_subscription_and_says_so(app: TestApp) {
    let (watcher, watcher_hook) =
        subscribe(&app, json!({"event_types": ["webhook.disabled"]})).await;
    let (gone, gone_hook) = subscribe(&app, json!({"event_types": ["job.created"]})).await;
    gone.set_script(|_| Reply::status(410));
    create_job(&app, &[]).await;

    // The disabling is an event like any other, delivered to who asked for it.
    watcher.wait_for_accepted(1, Duration::from_secs(10)).await;
    let event = watcher.accepted().into_values().next().unwrap();
    assert_eq!(event.body["type"], "webhook.disabled");
    assert_eq!(event.body["data"]["webhook_id"], gone_hook["id"]);
    assert_eq!(event.body["data"]["url"], gone_hook["url"]);
    assert_eq!(event.body["data"]["reason"], "the target answered 410 Gone");
    assert_eq!(event.body["data"]["job_id"], Value::Null);
    assert!(
        all_events(&app)
            .await
            .iter()
            .any(|e| e.kind == "webhook.disabled"
                && message_id(e.seq, &watcher_hook) == event.msg_id)
    );

    let hook = get_webhook(&app, &gone_hook).await;
    assert_eq!(hook["enabled"], false);
    assert_eq!(hook["disabled_reason"], "the target answered 410 Gone");
    let list = wait_for_deliveries(&app, &gone_hook, |l| {
        l.len() == 1 && l[0]["status"] == "failed"
    })
    .await;
    assert_eq!(list[0]["attempts"], 1);
    assert_eq!(list[0]["attempt_log"][0]["status_code"], 410);

    // Nothing more goes to it.
    create_job(&app, &[]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gone.log().len(), 1);
    assert_eq!(deliveries(&app, &gone_hook).await.len(), 1);
}

/// `disable_after` needs its own configuration; both backends.
mod disable_after {
    use super::*;

    async fn run(backend: Backend) {
        let app = app_with(backend, |raw| {
            raw.webhooks.disable_after = "400ms".into();
            raw.webhooks.retry_schedule = std::iter::once("0s")
                .chain(std::iter::repeat_n("50ms", 40))
                .map(String::from)
                .collect();
            raw.webhooks.breaker_threshold = 1000;
        })
        .await;
        let (receiver, hook) = subscribe(&app, json!({"event_types": ["job.created"]})).await;
        receiver.set_script(|_| Reply::status(500));
        create_job(&app, &[]).await;

        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let hook = loop {
            let h = get_webhook(&app, &hook).await;
            if h["enabled"] == false {
                break h;
            }
            assert!(tokio::time::Instant::now() < deadline, "not disabled: {h}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let reason = hook["disabled_reason"].as_str().unwrap();
        assert!(
            reason.starts_with("every delivery attempt failed for ")
                && reason.ends_with("(webhooks.disable_after)"),
            "{reason}"
        );
        assert!(hook["failing_since"].is_string());
        let events = all_events(&app).await;
        let disabled: Vec<_> = events
            .iter()
            .filter(|e| e.kind == "webhook.disabled")
            .collect();
        assert_eq!(disabled.len(), 1);
        assert_eq!(disabled[0].payload["reason"], reason);

        // Attempts stop; the delivery stays pending for a re-enable.
        let attempts = receiver.log().len();
        assert!(attempts >= 2, "{attempts}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.log().len(), attempts);
        let list = deliveries(&app, &hook).await;
        assert_eq!(list[0]["status"], "pending");
        assert_eq!(list[0]["attempts"], attempts as i64);

        // Re-enabled, the queued delivery goes out.
        receiver.set_script(|_| Reply::status(204));
        let path = format!("/v1/webhooks/{}", hook["id"].as_str().unwrap());
        let res = app
            .admin(Method::PATCH, &path)
            .json(&json!({"enabled": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        receiver.wait_for_accepted(1, Duration::from_secs(10)).await;
        let h = get_webhook(&app, &hook).await;
        assert_eq!(
            (h["enabled"].clone(), h["disabled_reason"].clone()),
            (json!(true), Value::Null)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        run(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        run(Backend::Postgres).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let app = app(Backend::Sqlite).await;
    let (receiver, _) = subscribe(&app, json!({"event_types": ["job.created"]})).await;
    receiver.set_script(|n| {
        if n == 0 {
            Reply::status(503).header("retry-after", "1")
        } else {
            Reply::status(200)
        }
    });
    create_job(&app, &[]).await;
    receiver.wait_for_accepted(1, Duration::from_secs(10)).await;
    let log = receiver.log();
    assert_eq!(log.len(), 2);
    let gap = log[1].at - log[0].at;
    // The schedule alone would retry after 100 ms.
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed_and_timeouts_fail() {
    let app = app_with(Backend::Sqlite, |raw| {
        raw.webhooks.timeout = "300ms".into();
        raw.webhooks.retry_schedule = vec!["0s".into()];
    })
    .await;
    let elsewhere = Receiver::start().await;
    let target = elsewhere.url();
    let (redirecting, redirect_hook) =
        subscribe(&app, json!({"event_types": ["job.created"]})).await;
    redirecting.set_script(move |_| Reply::status(302).header("location", target.clone()));
    let (slow, slow_hook) = subscribe(&app, json!({"event_types": ["job.created"]})).await;
    slow.set_script(|_| Reply::status(200).after(Duration::from_secs(2)));
    create_job(&app, &[]).await;

    for hook in [&redirect_hook, &slow_hook] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let list = deliveries(&app, hook).await;
            if list.first().is_some_and(|d| d["status"] == "failed") {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{list:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let d = &deliveries(&app, &redirect_hook).await[0];
    assert_eq!(d["attempt_log"][0]["status_code"], 302);
    let error = d["attempt_log"][0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("HTTP 302 Found: redirects are not followed"),
        "{error}"
    );
    assert!(elsewhere.log().is_empty(), "the redirect was followed");

    let d = &deliveries(&app, &slow_hook).await[0];
    assert_eq!(d["attempt_log"][0]["status_code"], Value::Null);
    assert_eq!(
        d["attempt_log"][0]["error"],
        "timed out after 300ms (webhooks.timeout)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_target_delays_only_itself() {
    let app = app_with(Backend::Sqlite, |raw| raw.webhooks.timeout = "5s".into()).await;
    let (slow, _) = subscribe(&app, json!({"event_types": ["job.created"]})).await;
    slow.set_script(|_| Reply::status(200).after(Duration::from_secs(3)));
    let (fast, _) = subscribe(&app, json!({"event_types": ["job.created"]})).await;
    let mut jobs = BTreeSet::new();
    for _ in 0..5 {
        jobs.insert(create_job(&app, &[]).await);
    }
    let started = tokio::time::Instant::now();
    fast.wait_for_accepted(5, Duration::from_secs(10)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the fast target waited {:?} for the slow one",
        started.elapsed()
    );
    let got: BTreeSet<String> = fast
        .accepted()
        .values()
        .map(|r| r.body["data"]["job_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, jobs);
}
