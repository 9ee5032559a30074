//! `failover`: agents holding running tasks are killed; how long until every
//! one of their tasks runs on another agent, and proof none completed twice.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;

use super::agents::{self, Ledger, NOOP};
use super::client::Client;
use super::report::Report;
use super::target::Target;
use super::{Common, local_store};
use crate::domain::TaskStatus;

/// The hub's grace period in this scenario (set by the bench on local hubs).
pub const GRACE: Duration = Duration::from_secs(2);

pub async fn run(target: &Target, common: &Common) -> anyhow::Result<Report> {
    let (a, s) = (common.agents.max(2), common.slots);
    let mut report = Report::new(
        "failover",
        &target.backend,
        json!({"agents": a, "slots": s, "grace_s": GRACE.as_secs_f64()}),
    );
    let work = Duration::from_millis(1500);
    let doomed_ledger = Arc::new(Ledger::default());
    let doomed = agents::spawn(
        target,
        a / 2,
        s,
        Duration::from_secs(3600),
        doomed_ledger.clone(),
        "doomed",
    )
    .await?;
    let total = (a / 2) * s as usize;
    let client = Client::new(target)?;
    let jobs: Vec<_> = (0..total)
        .map(|_| json!({"prompt": "failover", "pipeline": [NOOP]}))
        .collect();
    client.submit_batch(jobs).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while doomed_ledger.started.load(Ordering::Relaxed) < total as u64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the doomed agents never got their tasks"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The survivors connect, then the doomed agents die holding every task.
    let survivor_ledger = Arc::new(Ledger::default());
    let survivors = agents::spawn(
        target,
        a - a / 2,
        s,
        work,
        survivor_ledger.clone(),
        "survivor",
    )
    .await?;
    let killed_at = Instant::now();
    for h in &doomed {
        h.kill();
    }
    while survivor_ledger.received_at.len() < total {
        anyhow::ensure!(
            Instant::now() < deadline + Duration::from_secs(60),
            "tasks were not taken over"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let taken_over = killed_at.elapsed();
    while survivor_ledger.completions.load(Ordering::Relaxed) < total as u64 {
        anyhow::ensure!(
            Instant::now() < deadline + Duration::from_secs(120),
            "taken-over tasks did not complete"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    report.metric("all_running_elsewhere_after", taken_over.as_secs_f64(), "s");
    report.metric("grace_period", GRACE.as_secs_f64(), "s");
    report.check(
        "every task taken over within grace + 1 s",
        taken_over <= GRACE + Duration::from_secs(1),
    );
    report.check(
        "no task completed twice",
        survivor_ledger.duplicates() == 0 && doomed_ledger.completed.is_empty(),
    );
    if let Some(store) = local_store(target).await? {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let counts = store.task_counts().await?;
            if counts.get(&TaskStatus::Succeeded).copied() == Some(total as i64)
                || Instant::now() > deadline
            {
                report.check(
                    format!("store: exactly {total} tasks succeeded"),
                    counts.get(&TaskStatus::Succeeded).copied() == Some(total as i64),
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        store.close().await;
    }
    for h in survivors {
        h.kill();
    }
    Ok(report)
}
