//! `sessions`: K idle agents connected and heartbeating: hub memory per
//! session and hub CPU while idle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::Common;
use super::agents::{self, Ledger};
use super::report::Report;
use super::target::Target;

pub async fn run(target: &Target, common: &Common) -> anyhow::Result<Report> {
    let k = common.sessions;
    let mut report = Report::new(
        "sessions",
        &target.backend,
        json!({"sessions": k, "idle_s": common.duration.as_secs_f64()}),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = target.hub_rss_bytes();
    let ledger = Arc::new(Ledger::default());
    let started = Instant::now();
    let mut handles = Vec::with_capacity(k);
    // Connect in waves so the accept queue is not flooded.
    for wave in 0..k.div_ceil(250) {
        let n = (k - wave * 250).min(250);
        handles.extend(
            agents::spawn(
                target,
                n,
                1,
                Duration::ZERO,
                ledger.clone(),
                &format!("idle-{wave}"),
            )
            .await?,
        );
    }
    report.metric("connect_all", started.elapsed().as_secs_f64(), "s");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = target.hub_rss_bytes();
    let cpu_before = target.hub_cpu_seconds();
    tokio::time::sleep(common.duration).await;
    let cpu_after = target.hub_cpu_seconds();
    let connected = handles.iter().filter(|h| h.is_connected()).count();
    report.check(format!("{k} agents connected"), connected == k);
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        report.metric("hub_rss_before", before as f64 / 1e6, "MB");
        report.metric("hub_rss_after", after as f64 / 1e6, "MB");
        report.metric(
            "hub_rss_per_session",
            after.saturating_sub(before) as f64 / k.max(1) as f64 / 1024.0,
            "KiB",
        );
    }
    if let (Some(a), Some(b)) = (cpu_after, cpu_before) {
        report.metric(
            "hub_cpu_idle",
            (a - b) / common.duration.as_secs_f64() * 100.0,
            "% of a core",
        );
    }
    for h in handles {
        h.kill();
    }
    Ok(report)
}
