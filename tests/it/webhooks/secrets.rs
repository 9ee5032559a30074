//! Signing secrets at rest: sealed under `webhooks.secret_keys`, re-sealed
//! when the key is rotated, and still signing deliveries that verify with
//! the secret the API showed once. Finished deliveries and their attempts
//! are deleted after `webhooks.delivery_retention`; pending ones never.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, SqliteConnection};
use switchyard_tests::{Backend, TestApp};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::receiver::Receiver;
use super::{all_delivered, app_with, deliveries, subscribe, wait_for_deliveries};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_at_rest_and_survive_a_key_rotation_sqlite() {
    secrets_are_sealed_at_rest_and_survive_a_key_rotation(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_at_rest_and_survive_a_key_rotation_postgres() {
    secrets_are_sealed_at_rest_and_survive_a_key_rotation(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_deliveries_and_their_attempts_are_deleted_after_retention_sqlite() {
    finished_deliveries_are_deleted_after_retention(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_deliveries_and_their_attempts_are_deleted_after_retention_postgres() {
    finished_deliveries_are_deleted_after_retention(Backend::Postgres).await;
}

/// The stored (sealed or plain) current secret of `webhook`.
async fn stored_secret(app: &TestApp, webhook: &Value) -> String {
    let id: Uuid = webhook["id"].as_str().expect("id").parse().expect("uuid");
    app.store()
        .get_webhook(id)
        .await
        .expect("read webhook")
        .expect("webhook")
        .keys
        .current
}

/// The key id a stored secret is sealed under (`None`: plain).
fn sealed_under(stored: &str) -> Option<String> {
    let rest = stored.strip_prefix("sealed:v1:")?;
    Some(rest.split(':').next()?.to_owned())
}

/// Submits a job and waits until `receiver` has a request about it that
/// verifies with the subscription's secret.
async fn a_verified_delivery(app: &TestApp, receiver: &Receiver) {
    let job = app
        .create_job(json!({"prompt": "sealed", "pipeline": ["test.sealed"]}))
        .await;
    let id = job["id"].as_str().expect("id").to_owned();
    receiver
        .wait_until(Duration::from_secs(10), |log| {
            log.iter().any(|r| {
                r.body["data"]["job_id"] == id.as_str()
                    && r.verified.first().is_some_and(Result::is_ok)
            })
        })
        .await;
}

async fn restart_with_keys(app: &mut TestApp, keys: &[&str]) {
    app.raw.webhooks.secret_keys = keys.iter().map(|k| (*k).to_owned()).collect();
    app.restart().await;
}

/// Waits until the stored secret is sealed under a key other than `from`.
async fn resealed(app: &TestApp, webhook: &Value, from: Option<String>) -> Option<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = sealed_under(&stored_secret(app, webhook).await);
        if now.is_some() && now != from {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the secret was not re-sealed (still {now:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn secrets_are_sealed_at_rest_and_survive_a_key_rotation(backend: Backend) {
    let (old, new) = ("o".repeat(32), "n".repeat(32));
    // Written before any key was configured: stored plain.
    let mut app = app_with(backend, |_| {}).await;
    let (receiver, webhook) = subscribe(&app, json!({})).await;
    let secret = webhook["secret"]
        .as_str()
        .expect("secret shown once")
        .to_owned();
    assert_eq!(stored_secret(&app, &webhook).await, secret);

    // A key: the plain secret is sealed at start.
    restart_with_keys(&mut app, &[&old]).await;
    let first = resealed(&app, &webhook, None).await;
    let stored = stored_secret(&app, &webhook).await;
    assert!(!stored.contains(&secret), "the plain secret is not stored");
    a_verified_delivery(&app, &receiver).await;

    // Rotation: the new key first, the old one kept; re-sealed under the new one.
    restart_with_keys(&mut app, &[&new, &old]).await;
    let second = resealed(&app, &webhook, first.clone()).await;
    assert_ne!(first, second);
    // The old key dropped: everything opens with the new one alone.
    restart_with_keys(&mut app, &[&new]).await;
    a_verified_delivery(&app, &receiver).await;

    // A secret rotated through the API is sealed too, and shown plain once.
    let path = format!(
        "/v1/webhooks/{}/rotate-secret",
        webhook["id"].as_str().expect("id")
    );
    let (status, rotated) = switchyard_tests::app::json(
        app.admin(reqwest::Method::POST, &path)
            .send()
            .await
            .expect("rotate"),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let fresh = rotated["secret"].as_str().expect("new secret");
    let stored = stored_secret(&app, &webhook).await;
    assert_eq!(sealed_under(&stored), second);
    assert!(!stored.contains(fresh));
    let listed = app
        .admin(reqwest::Method::GET, "/v1/webhooks")
        .send()
        .await
        .expect("list");
    let text = listed.text().await.expect("body");
    assert!(
        !text.contains(fresh) && !text.contains("sealed:v1:"),
        "listings show no secret"
    );
}

/// Rows in `webhook_attempts`, read outside the hub.
async fn attempts(app: &TestApp) -> i64 {
    let sql = "SELECT COUNT(*) FROM webhook_attempts";
    match app.backend {
        Backend::Postgres => {
            let mut c = PgConnection::connect(&app.database_url)
                .await
                .expect("connect");
            sqlx::query_scalar(sql)
                .fetch_one(&mut c)
                .await
                .expect("count")
        }
        Backend::Sqlite => {
            let mut c = SqliteConnection::connect(&app.database_url)
                .await
                .expect("connect");
            sqlx::query_scalar(sql)
                .fetch_one(&mut c)
                .await
                .expect("count")
        }
    }
}

async fn finished_deliveries_are_deleted_after_retention(backend: Backend) {
    let app = app_with(backend, |_| {}).await;
    let (_delivered, done) = subscribe(&app, json!({"event_types": ["job.created"]})).await;
    let (mut down, waiting) = subscribe(&app, json!({"event_types": ["job.created"]})).await;
    down.stop().await;
    app.create_job(json!({"prompt": "kept", "pipeline": ["test.retention"]}))
        .await;
    wait_for_deliveries(&app, &done, all_delivered(1)).await;
    wait_for_deliveries(&app, &waiting, |list| {
        list.len() == 1
            && list[0]["attempt_log"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
    })
    .await;
    assert!(attempts(&app).await >= 2);

    let deleted = switchyard::events::retention::purge_deliveries(
        &app.store(),
        Duration::ZERO,
        &CancellationToken::new(),
    )
    .await
    .expect("purge");
    assert_eq!(deleted, 1, "only the delivered one");
    assert!(deliveries(&app, &done).await.is_empty());
    let pending = deliveries(&app, &waiting).await;
    assert_eq!(pending.len(), 1, "a pending delivery is never deleted");
    let left: usize = pending[0]["attempt_log"].as_array().map_or(0, Vec::len);
    assert_eq!(
        attempts(&app).await,
        left as i64,
        "the delivered one's attempts went with it"
    );
}
