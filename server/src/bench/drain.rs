//! `drain`: N single-stage no-op tasks through A agents × S slots, submitted
//! in batches: tasks per second from first submit to last completion, and
//! CPU per 1,000 tasks for the hub and the local database.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use super::agents::{self, Ledger, NOOP};
use super::client::Client;
use super::report::Report;
use super::target::{Target, postgres_cpu_seconds};
use super::{Common, local_store};
use crate::domain::TaskStatus;

pub async fn run(target: &Target, common: &Common) -> anyhow::Result<Report> {
    let n = common.tasks;
    let mut report = Report::new(
        "drain",
        &target.backend,
        json!({"tasks": n, "agents": common.agents, "slots": common.slots, "payload_bytes": common.payload_bytes}),
    );
    let ledger = Arc::new(Ledger::default());
    let handles = agents::spawn(
        target,
        common.agents,
        common.slots,
        Duration::ZERO,
        ledger.clone(),
        "drain",
    )
    .await?;
    let client = Client::new(target)?;
    let pad = "x".repeat(common.payload_bytes);

    let cpu_before = target.hub_cpu_seconds();
    let db_before = if target.backend == "postgres" {
        postgres_cpu_seconds()
    } else {
        None
    };
    let start = Instant::now();
    // Two batches in flight keep the hub busy without queueing in the client.
    let batches: Vec<usize> = (0..n)
        .step_by(1000)
        .map(|from| (n - from).min(1000))
        .collect();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut submitted = 0usize;
    for size in batches {
        if in_flight.len() >= 2 {
            submitted += in_flight
                .join_next()
                .await
                .context("a submit task vanished")???;
        }
        let client = client.clone();
        let pad = pad.clone();
        in_flight.spawn(async move {
            let jobs: Vec<_> = (0..size)
                .map(|_| json!({"prompt": "bench", "pipeline": [NOOP], "context": {"pad": pad}}))
                .collect();
            client.submit_batch(jobs).await
        });
    }
    while let Some(done) = in_flight.join_next().await {
        submitted += done??;
    }
    let submit_done = start.elapsed();

    // Wait for the agents to have run everything, then for the store to agree.
    let store = local_store(target).await?;
    agents::wait_drained(&ledger, n, store.as_ref()).await?;
    let elapsed = start.elapsed();
    let cpu = target.hub_cpu_seconds().zip(cpu_before).map(|(a, b)| a - b);
    let db = if target.backend == "postgres" {
        postgres_cpu_seconds().zip(db_before).map(|(a, b)| a - b)
    } else {
        None
    };

    // The peer harness's columns (`../shared/peer-bench`): jobs/s including
    // the submit, jobs/s after the submit returned, both durations, and the
    // broker's CPU per 1,000 jobs (hub, database, their sum).
    let drain = elapsed.saturating_sub(submit_done);
    report.metric(
        "tasks_per_second",
        n as f64 / elapsed.as_secs_f64(),
        "tasks/s",
    );
    report.metric(
        "tasks_per_second_after_submit",
        n as f64 / drain.as_secs_f64().max(f64::EPSILON),
        "tasks/s",
    );
    report.metric("elapsed", elapsed.as_secs_f64(), "s");
    report.metric("submit_elapsed", submit_done.as_secs_f64(), "s");
    report.metric("drain_elapsed", drain.as_secs_f64(), "s");
    let per_1000 = |cpu: f64| cpu / n as f64 * 1000.0;
    if let Some(cpu) = cpu {
        report.metric("hub_cpu_per_1000_tasks", per_1000(cpu), "cpu-s");
    }
    if let Some(db) = db {
        report.metric("postgres_cpu_per_1000_tasks", per_1000(db), "cpu-s");
    }
    if let Some(store) = cpu.map(|c| c + db.unwrap_or(0.0)) {
        report.metric("store_cpu_per_1000_tasks", per_1000(store), "cpu-s");
    }
    report.check(format!("{n} jobs accepted"), submitted == n);
    report.check(format!("{n} tasks ran"), ledger.completed.len() == n);
    report.check(
        "no task ran twice",
        ledger.duplicates() == 0 && ledger.started.load(Ordering::Relaxed) == n as u64,
    );
    if let Some(store) = &store {
        let counts = store.task_counts().await?;
        report.check(
            format!("store: exactly {n} tasks succeeded, none pending or failed"),
            counts.get(&TaskStatus::Succeeded).copied() == Some(n as i64) && counts.len() == 1,
        );
        store.close().await;
    }
    for handle in handles {
        handle.kill();
    }
    Ok(report)
}
