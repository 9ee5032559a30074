//! Nothing is lost: a receiver that is down during a job gets everything
//! once it is back (the circuit breaker keeps the hub from hammering it
//! meanwhile), a hub restarted with deliveries pending delivers them
//! afterwards, replays re-send, and secret rotation signs with both secrets
//! during the overlap.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use switchyard_tests::app::json;
use switchyard_tests::{Backend, TestApp};

use super::{
    all_delivered, all_events, app_with, assert_received_exactly, deliveries, get_webhook,
    message_id, run_sample_job, subscribe, wait_for_deliveries,
};

webhook_tests!(
    a_receiver_down_during_the_job_gets_everything_after_recovery,
    a_restarted_hub_delivers_what_was_pending,
    events_appended_while_the_hub_was_down_are_delivered_after_restart,
    replay_sends_matching_events_again,
);

fn job_events(
    events: &[switchyard::domain::Event],
    job_id: &str,
) -> Vec<switchyard::domain::Event> {
    events
        .iter()
        .filter(|e| e.job_id.map(|j| j.to_string()).as_deref() == Some(job_id))
        .cloned()
        .collect()
}

fn attempts(list: &[Value]) -> i64 {
    list.iter().map(|d| d["attempts"].as_i64().unwrap()).sum()
}

async fn a_receiver_down_during_the_job_gets_everything_after_recovery(app: TestApp) {
    let (mut receiver, hook) =
        subscribe(&app, json!({"event_types": ["*"], "label": "down"})).await;
    receiver.stop().await;
    let (job_id, _) = run_sample_job(&app, "down").await;
    let expected = job_events(&all_events(&app).await, &job_id);

    // Everything is queued, nothing delivered; the breaker kept the hub from
    // trying each delivery while the target was refusing connections.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let list = wait_for_deliveries(&app, &hook, |l| l.len() == expected.len()).await;
    assert!(list.iter().all(|d| d["status"] == "pending"));
    let tried = attempts(&list);
    assert!(tried >= 1, "no attempt while down");
    assert!(
        tried < expected.len() as i64 / 2,
        "{tried} attempts for {} deliveries: the circuit breaker did not hold them back",
        expected.len()
    );
    let error = list
        .iter()
        .flat_map(|d| d["attempt_log"].as_array().unwrap())
        .map(|a| a["error"].as_str().unwrap().to_owned())
        .next()
        .unwrap();
    assert!(error.starts_with("could not connect"), "{error}");

    receiver.resume().await;
    receiver
        .wait_for_accepted(expected.len(), Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_received_exactly(&receiver, &hook, &expected);
    wait_for_deliveries(&app, &hook, all_delivered(expected.len())).await;
}

async fn a_restarted_hub_delivers_what_was_pending(mut app: TestApp) {
    let (mut receiver, hook) =
        subscribe(&app, json!({"event_types": ["*"], "label": "restart"})).await;
    receiver.stop().await;
    let (job_id, _) = run_sample_job(&app, "restart").await;
    let expected = job_events(&all_events(&app).await, &job_id);
    let list = deliveries(&app, &hook).await;
    assert!(list.iter().all(|d| d["status"] == "pending"));

    app.restart().await;
    // The queue survived the restart: the receiver comes back and gets it all.
    receiver.resume().await;
    receiver
        .wait_for_accepted(expected.len(), Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_received_exactly(&receiver, &hook, &expected);
    // No event was queued twice.
    wait_for_deliveries(&app, &hook, all_delivered(expected.len())).await;
}

async fn events_appended_while_the_hub_was_down_are_delivered_after_restart(mut app: TestApp) {
    let (receiver, hook) = subscribe(&app, json!({"event_types": ["job.created"]})).await;
    app.hub.take().unwrap().stop().await;
    // Another writer (think: another hub node) appends while this hub is down.
    let store = switchyard::store::open(&app.database_url, 1).await.unwrap();
    for _ in 0..3 {
        store
            .create_job(crate::store_contract::new_job("elsewhere"))
            .await
            .unwrap();
    }
    store.close().await;

    app.restart().await;
    receiver.wait_for_accepted(3, Duration::from_secs(10)).await;
    let expected: Vec<_> = all_events(&app)
        .await
        .into_iter()
        .filter(|e| e.kind == "job.created")
        .collect();
    assert_eq!(expected.len(), 3);
    assert_received_exactly(&receiver, &hook, &expected);
    wait_for_deliveries(&app, &hook, all_delivered(3)).await;
}

async fn replay_sends_matching_events_again(app: TestApp) {
    let (receiver, hook) = subscribe(
        &app,
        json!({"event_types": ["job.created", "job.cancelled"]}),
    )
    .await;
    let first = app.create_job(json!({"prompt": "one"})).await;
    let id = first["id"].as_str().unwrap();
    let res = app
        .admin(Method::DELETE, &format!("/v1/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    receiver.wait_for_accepted(2, Duration::from_secs(10)).await;
    let events: Vec<_> = all_events(&app)
        .await
        .into_iter()
        .filter(|e| e.kind == "job.created" || e.kind == "job.cancelled")
        .collect();
    assert_eq!(events.len(), 2);

    let path = format!("/v1/webhooks/{}/replay", hook["id"].as_str().unwrap());
    let (status, outcome) = json(
        app.admin(Method::POST, &path)
            .json(&json!({"since_seq": events[0].seq - 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202, "{outcome}");
    assert_eq!(outcome["generation"], 1);
    assert_eq!(outcome["queued"], 2);
    assert_eq!(outcome["complete"], true);
    receiver
        .wait_until(Duration::from_secs(10), |log| log.len() == 4)
        .await;
    let log = receiver.log();
    let ids: Vec<&str> = log.iter().map(|r| r.msg_id.as_str()).collect();
    let first_id = message_id(events[0].seq, &hook);
    let second_id = message_id(events[1].seq, &hook);
    assert_eq!(
        ids.iter().filter(|i| **i == first_id).count(),
        2,
        "same webhook-id when replayed: {ids:?}"
    );
    assert_eq!(ids.iter().filter(|i| **i == second_id).count(), 2);
    assert_received_exactly(&receiver, &hook, &events);

    // Since a time: both events again, as generation 2.
    let since = (events[0].created_at - chrono::Duration::seconds(1)).to_rfc3339();
    let (status, outcome) = json(
        app.admin(Method::POST, &path)
            .json(&json!({"since_time": since}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202, "{outcome}");
    assert_eq!(
        (outcome["generation"].clone(), outcome["queued"].clone()),
        (json!(2), json!(2))
    );
    receiver
        .wait_until(Duration::from_secs(10), |log| log.len() == 6)
        .await;
    let list = wait_for_deliveries(&app, &hook, all_delivered(6)).await;
    let mut generations: Vec<i64> = list
        .iter()
        .map(|d| d["generation"].as_i64().unwrap())
        .collect();
    generations.sort_unstable();
    assert_eq!(generations, vec![0, 0, 1, 1, 2, 2]);

    // Since now: nothing to send.
    let (status, outcome) = json(
        app.admin(Method::POST, &path)
            .json(&json!({"since_seq": all_events(&app).await.last().unwrap().seq}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(outcome["queued"], 0);
}

/// Rotation with a one-second overlap: both secrets verify until it ends,
/// then only the new one.
mod rotation {
    use super::*;

    async fn run(backend: Backend) {
        let app = app_with(backend, |raw| {
            raw.webhooks.rotation_overlap = "1500ms".into()
        })
        .await;
        let (receiver, hook) = subscribe(&app, json!({"event_types": ["job.created"]})).await;
        let old = hook["secret"].as_str().unwrap().to_owned();
        assert!(old.starts_with("whsec_"));
        let path = format!(
            "/v1/webhooks/{}/rotate-secret",
            hook["id"].as_str().unwrap()
        );
        let (status, rotated) = json(app.admin(Method::POST, &path).send().await.unwrap()).await;
        assert_eq!(status, 200, "{rotated}");
        let new = rotated["secret"].as_str().unwrap().to_owned();
        assert!(new.starts_with("whsec_") && new != old);
        assert!(rotated["previous_secret_expires_at"].is_string());
        // The secret is shown at creation and rotation only.
        let shown = get_webhook(&app, &hook).await;
        assert!(shown.get("secret").is_none(), "{shown}");

        receiver.set_secrets(&[&old, &new]);
        app.create_job(json!({"prompt": "during the overlap"}))
            .await;
        receiver.wait_for_accepted(1, Duration::from_secs(10)).await;
        let during = &receiver.log()[0];
        assert_eq!(during.verified.len(), 2);
        assert!(
            during.verified.iter().all(Result::is_ok),
            "{:?}",
            during.verified
        );
        let signatures = during.headers["webhook-signature"].to_str().unwrap();
        assert_eq!(signatures.split(' ').count(), 2, "{signatures}");

        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert_eq!(
            get_webhook(&app, &hook).await["previous_secret_expires_at"],
            Value::Null
        );
        app.create_job(json!({"prompt": "after the overlap"})).await;
        receiver
            .wait_until(Duration::from_secs(10), |log| log.len() == 2)
            .await;
        let after = &receiver.log()[1];
        assert!(after.verified[0].is_err(), "the old secret still signs");
        assert!(after.verified[1].is_ok(), "{:?}", after.verified);
        let signatures = after.headers["webhook-signature"].to_str().unwrap();
        assert_eq!(signatures.split(' ').count(), 1, "{signatures}");
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
