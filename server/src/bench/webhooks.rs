//! `webhooks`: N tasks each produce a `task.succeeded` event, fanned out to a
//! local receiver through a webhook subscription: deliveries per second and
//! event → delivery latency (the event's commit time to its arrival).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use dashmap::DashMap;
use serde_json::{Value, json};

use super::Common;
use super::agents::{self, Ledger, NOOP};
use super::client::Client;
use super::report::Report;
use super::target::Target;
use crate::auth::Role;

/// What the receiver saw: arrivals by `webhook-id`, with the event-to-arrival latency.
#[derive(Default)]
struct Received {
    first: DashMap<String, Duration>,
    duplicates: std::sync::atomic::AtomicU64,
    first_at: std::sync::Mutex<Option<Instant>>,
    last_at: std::sync::Mutex<Option<Instant>>,
}

async fn receive(State(seen): State<Arc<Received>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let wall = chrono::Utc::now();
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let event_time = serde_json::from_slice::<Value>(&body).ok().and_then(|b| {
        b["timestamp"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    });
    let latency = event_time.map_or(Duration::ZERO, |t| {
        (wall - t.with_timezone(&chrono::Utc))
            .to_std()
            .unwrap_or_default()
    });
    if seen.first.insert(id, latency).is_some() {
        seen.duplicates.fetch_add(1, Ordering::Relaxed);
    }
    if let Ok(mut first) = seen.first_at.lock() {
        first.get_or_insert(now);
    }
    if let Ok(mut last) = seen.last_at.lock() {
        *last = Some(now);
    }
    StatusCode::NO_CONTENT
}

pub async fn run(target: &Target, common: &Common) -> anyhow::Result<Report> {
    let n = common.tasks;
    let mut report = Report::new(
        "webhooks",
        &target.backend,
        json!({"tasks": n, "agents": common.agents, "slots": common.slots}),
    );
    let seen = Arc::new(Received::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the webhook receiver")?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(seen.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let admin = target.token(Role::Admin, "bench")?;
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{}/v1/webhooks", target.base))
        .bearer_auth(&admin)
        .json(&json!({"url": format!("http://{addr}/hook"), "event_types": ["task.succeeded"], "description": "switchyard bench"}))
        .send()
        .await?;
    if !res.status().is_success() {
        let status = res.status();
        bail!(
            "creating the webhook failed with {status}: {}",
            res.text().await.unwrap_or_default()
        );
    }

    let ledger = Arc::new(Ledger::default());
    let handles = agents::spawn(
        target,
        common.agents,
        common.slots,
        Duration::ZERO,
        ledger.clone(),
        "hooked",
    )
    .await?;
    let client = Client::new(target)?;
    let start = Instant::now();
    for from in (0..n).step_by(1000) {
        let jobs: Vec<Value> = (from..(from + 1000).min(n))
            .map(|_| json!({"prompt": "bench", "pipeline": [NOOP]}))
            .collect();
        client.submit_batch(jobs).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen.first.len() < n {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} deliveries arrived within 10 minutes",
                seen.first.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    let window = match (
        seen.first_at.lock().ok().and_then(|g| *g),
        seen.last_at.lock().ok().and_then(|g| *g),
    ) {
        (Some(a), Some(b)) => b.saturating_duration_since(a).max(Duration::from_millis(1)),
        _ => elapsed,
    };
    report.metric(
        "deliveries_per_second",
        n as f64 / window.as_secs_f64(),
        "deliveries/s",
    );
    report.metric(
        "elapsed_submit_to_last_delivery",
        elapsed.as_secs_f64(),
        "s",
    );
    let mut latencies: Vec<Duration> = seen.first.iter().map(|e| *e.value()).collect();
    report.latencies("event_to_delivery", &mut latencies);
    report.check(format!("{n} distinct deliveries"), seen.first.len() == n);
    report.check(
        "no delivery received twice",
        seen.duplicates.load(Ordering::Relaxed) == 0,
    );
    report.check(
        format!("{n} tasks ran once each"),
        ledger.completed.len() == n && ledger.duplicates() == 0,
    );
    for h in handles {
        h.kill();
    }
    server.abort();
    Ok(report)
}
