//! `latency`: submit → agent receives the task.
//!
//! Closed loop: one slot, one task at a time (100 warm-up, then `samples`).
//! Open loop: fixed arrival rates; each latency is measured from the moment
//! the task was *scheduled* to be sent, so a slow hub cannot hide its delay by
//! slowing the sender down (no coordinated omission).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde_json::json;
use switchyard_agent::{Agent, AgentHandle, CapabilitySpec, TaskContext, TaskError};
use tokio::sync::mpsc;

use super::Common;
use super::agents::NOOP;
use super::client::Client;
use super::report::{Report, percentile};
use super::target::Target;
use crate::auth::Role;

/// Receipt times by the bench's own sequence number (carried in the job context).
pub(super) type Receipts = Arc<DashMap<u64, Instant>>;

pub(super) async fn receivers(
    target: &Target,
    agents: usize,
    slots: u32,
    receipts: Receipts,
    notify: Option<mpsc::UnboundedSender<u64>>,
) -> anyhow::Result<Vec<AgentHandle>> {
    let mut handles = Vec::new();
    for i in 0..agents {
        let name = format!("latency-{i}");
        let (receipts, notify) = (receipts.clone(), notify.clone());
        let agent = Agent::builder(&target.ws, target.token(Role::Agent, &name)?, &name)
            .capability(
                CapabilitySpec::new(NOOP).max_concurrency(slots),
                move |_ctx: TaskContext, input: serde_json::Value| {
                    let now = Instant::now();
                    let seq = input["context"]["seq"].as_u64().unwrap_or(u64::MAX);
                    receipts.insert(seq, now);
                    if let Some(notify) = &notify {
                        let _ = notify.send(seq);
                    }
                    async move { Ok::<_, TaskError>(serde_json::Value::Null) }
                },
            )
            .build()?;
        handles.push(agent.spawn());
    }
    for h in &handles {
        h.wait_connected().await?;
    }
    Ok(handles)
}

pub async fn run(target: &Target, common: &Common) -> anyhow::Result<Report> {
    let samples = common.tasks.min(100_000);
    let mut report = Report::new(
        "latency",
        &target.backend,
        json!({"samples": samples, "rates": common.rates, "duration_s": common.duration.as_secs_f64()}),
    );
    let client = Client::new(target)?;

    // Closed loop: one slot.
    let receipts: Receipts = Arc::new(DashMap::new());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handles = receivers(target, 1, 1, receipts.clone(), Some(tx)).await?;
    let mut closed = Vec::with_capacity(samples);
    for seq in 0..(100 + samples as u64) {
        let sent = Instant::now();
        client
            .submit(json!({"prompt": "latency", "pipeline": [NOOP], "context": {"seq": seq}}))
            .await?;
        loop {
            let got = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await?;
            if got == Some(seq) {
                break;
            }
        }
        if seq >= 100
            && let Some(at) = receipts.get(&seq)
        {
            closed.push(at.saturating_duration_since(sent));
        }
    }
    report.check(
        format!("closed loop: {samples} samples"),
        closed.len() == samples,
    );
    report.latencies("submit_to_agent", &mut closed);
    for h in handles {
        h.kill();
    }

    // Open loop at fixed rates.
    let receipts: Receipts = Arc::new(DashMap::new());
    let handles = receivers(target, common.agents, common.slots, receipts.clone(), None).await?;
    let mut best_rate = None;
    let mut next_seq = 1_000_000_000u64;
    for &rate in &common.rates {
        let count = ((rate as f64) * common.duration.as_secs_f64())
            .round()
            .max(1.0) as u64;
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let start = Instant::now() + Duration::from_millis(50);
        let mut scheduled = Vec::with_capacity(count as usize);
        let mut sends = tokio::task::JoinSet::new();
        for i in 0..count {
            let at = start + interval * i as u32;
            tokio::time::sleep_until(at.into()).await;
            let seq = next_seq + i;
            scheduled.push((seq, at));
            let client = client.clone();
            sends.spawn(async move {
                client
                    .submit(
                        json!({"prompt": "latency", "pipeline": [NOOP], "context": {"seq": seq}}),
                    )
                    .await
            });
        }
        let mut errors = 0;
        while let Some(done) = sends.join_next().await {
            if !matches!(done, Ok(Ok(_))) {
                errors += 1;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while scheduled.iter().any(|(seq, _)| !receipts.contains_key(seq))
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut latencies: Vec<Duration> = scheduled
            .iter()
            .filter_map(|(seq, at)| receipts.get(seq).map(|r| r.saturating_duration_since(*at)))
            .collect();
        let received = latencies.len();
        report.check(
            format!("{rate}/s: all {count} tasks reached an agent"),
            received as u64 == count && errors == 0,
        );
        let achieved = count as f64
            / (scheduled.last().map_or(start, |(_, at)| *at) - start)
                .as_secs_f64()
                .max(1e-9);
        report.metric(
            format!("open_{rate}_achieved_rate"),
            achieved.min(rate as f64),
            "tasks/s",
        );
        report.latencies(&format!("open_{rate}"), &mut latencies);
        if !latencies.is_empty()
            && percentile(&latencies, 0.99) < Duration::from_millis(100)
            && received as u64 == count
        {
            best_rate = Some(rate);
        }
        next_seq += count;
    }
    match best_rate {
        Some(rate) => report.metric("highest_rate_with_p99_under_100ms", rate as f64, "tasks/s"),
        None => report
            .notes
            .push("no tested rate kept p99 under 100 ms".into()),
    }
    for h in handles {
        h.kill();
    }
    Ok(report)
}
