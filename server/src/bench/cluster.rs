//! `cluster`: the same work on clusters of 1, 2, 3… nodes (`--nodes`), each
//! a `switchyard serve` child process on one fresh Postgres database, with
//! `--agents` agents of `--slots` slots on every node.
//!
//! Per node count it measures the drain (N no-op tasks submitted in batches
//! through all nodes in turn, jobs/s from the first submit to the last
//! completion), then submit → agent latency on the idle cluster (one job at
//! a time, submitted through each node in turn, so most samples cross
//! nodes: the job is stored by one node and pushed by another), and the CPU
//! each node and the database spent per 1,000 tasks. It checks that every
//! task ran exactly once, on the agents and in the store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use super::Common;
use super::agents::{self, Ledger, NOOP};
use super::client::Client;
use super::report::Report;
use super::target::{Target, postgres_cpu_seconds};
use crate::auth::Role;
use crate::domain::TaskStatus;
use crate::store::{Backend, provision};

/// Closed-loop latency samples per node count (after 20 warm-up jobs).
const LATENCY_SAMPLES: usize = 200;
const WARM_UP: usize = 20;

/// Runs every node count in `counts` on `admin_url`'s server.
pub async fn run(counts: &[usize], admin_url: &str, common: &Common) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "cluster",
        "postgres",
        json!({"nodes": counts, "tasks": common.tasks, "agents_per_node": common.agents,
               "slots": common.slots, "latency_samples": LATENCY_SAMPLES}),
    );
    for &k in counts {
        let name = format!("sy_bench_{}", uuid::Uuid::new_v4().simple());
        let url = provision::create_postgres_database(admin_url, &name)
            .await
            .context("creating the cluster's database")?;
        let result = one(k, &url, common, &mut report).await;
        if let Err(e) = provision::drop_postgres_database(admin_url, &name).await {
            eprintln!("warning: could not drop benchmark database {name}: {e}");
        }
        result?;
    }
    Ok(report)
}

/// One cluster of `k` nodes.
async fn one(k: usize, url: &str, common: &Common, report: &mut Report) -> anyhow::Result<()> {
    let mut nodes = Vec::with_capacity(k);
    for _ in 0..k {
        let dir = tempfile::tempdir().context("creating a data directory")?;
        nodes.push(Target::node(Backend::Postgres, url, dir, &node_env()).await?);
    }
    let result = measure(k, &nodes, url, common, report).await;
    for node in nodes {
        node.shutdown().await;
    }
    result
}

async fn measure(
    k: usize,
    nodes: &[Target],
    url: &str,
    common: &Common,
    report: &mut Report,
) -> anyhow::Result<()> {
    wait_for_cluster(nodes).await?;
    let n = common.tasks;
    let ledger = Arc::new(Ledger::default());
    let mut handles = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let prefix = format!("cluster{k}-node{i}");
        handles.extend(
            agents::spawn(
                node,
                common.agents,
                common.slots,
                Duration::ZERO,
                ledger.clone(),
                &prefix,
            )
            .await?,
        );
    }
    let clients: Vec<Client> = nodes.iter().map(Client::new).collect::<Result<_, _>>()?;

    // The drain, submitted through every node in turn.
    let cpu_before: Vec<Option<f64>> = nodes.iter().map(Target::hub_cpu_seconds).collect();
    let db_before = postgres_cpu_seconds();
    let start = Instant::now();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut submitted = 0usize;
    for (b, from) in (0..n).step_by(1000).enumerate() {
        let size = (n - from).min(1000);
        if in_flight.len() >= 2 {
            submitted += in_flight
                .join_next()
                .await
                .context("a submit task vanished")???;
        }
        let client = clients[b % k].clone();
        in_flight.spawn(async move {
            let jobs: Vec<_> = (0..size)
                .map(|_| json!({"prompt": "bench", "pipeline": [NOOP]}))
                .collect();
            client.submit_batch(jobs).await
        });
    }
    while let Some(done) = in_flight.join_next().await {
        submitted += done??;
    }
    let store = crate::store::open(url, 2).await?;
    agents::wait_drained(&ledger, n, Some(&store))
        .await
        .with_context(|| format!("{k} nodes"))?;
    let elapsed = start.elapsed();
    let hub_cpu: Option<f64> = nodes
        .iter()
        .zip(&cpu_before)
        .map(|(node, before)| node.hub_cpu_seconds().zip(*before).map(|(a, b)| a - b))
        .sum();
    let db_cpu = postgres_cpu_seconds().zip(db_before).map(|(a, b)| a - b);
    let per_1000 = |cpu: f64| cpu / n as f64 * 1000.0;
    report.metric(
        format!("nodes_{k}_tasks_per_second"),
        n as f64 / elapsed.as_secs_f64(),
        "tasks/s",
    );
    if let Some(cpu) = hub_cpu {
        report.metric(
            format!("nodes_{k}_hub_cpu_per_1000_tasks"),
            per_1000(cpu),
            "cpu-s",
        );
        report.metric(
            format!("nodes_{k}_hub_cpu_per_1000_tasks_per_node"),
            per_1000(cpu) / k as f64,
            "cpu-s",
        );
    }
    if let Some(db) = db_cpu {
        report.metric(
            format!("nodes_{k}_postgres_cpu_per_1000_tasks"),
            per_1000(db),
            "cpu-s",
        );
    }
    let counts = store.task_counts().await?;
    report.check(format!("{k} nodes: {n} jobs accepted"), submitted == n);
    report.check(
        format!("{k} nodes: every task ran exactly once"),
        ledger.completed.len() == n && ledger.duplicates() == 0,
    );
    report.check(
        format!("{k} nodes: store has exactly {n} tasks succeeded"),
        counts.get(&TaskStatus::Succeeded).copied() == Some(n as i64) && counts.len() == 1,
    );

    // Submit → agent on the idle cluster, through each node in turn.
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for i in 0..WARM_UP + LATENCY_SAMPLES {
        let sent = Instant::now();
        let id = clients[i % k]
            .submit(json!({"prompt": "latency", "pipeline": [NOOP]}))
            .await?;
        let id: uuid::Uuid = id.parse().context("a job id")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let received = loop {
            if let Some(at) = ledger.received_at.get(&id) {
                break *at;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{k} nodes: job {id} reached no agent within 10 s"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        if i >= WARM_UP {
            samples.push(received.saturating_duration_since(sent));
        }
    }
    report.latencies(&format!("nodes_{k}_submit_to_agent"), &mut samples);
    store.close().await;
    for handle in handles {
        handle.kill();
    }
    Ok(())
}

/// Waits until every node sees all of them alive (and so announces its
/// commits to the others).
async fn wait_for_cluster(nodes: &[Target]) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in nodes {
        let token = node.token(Role::Viewer, "bench")?;
        loop {
            let body: serde_json::Value = http
                .get(format!("{}/v1/nodes", node.base))
                .bearer_auth(&token)
                .send()
                .await?
                .json()
                .await?;
            let alive = body["nodes"]
                .as_array()
                .map_or(0, |l| l.iter().filter(|n| n["alive"] == true).count());
            if alive == nodes.len() {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the nodes did not see each other within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Each node learns of the others at its next heartbeat (node_timeout / 5).
    tokio::time::sleep(NODE_TIMEOUT).await;
    Ok(())
}

/// Short enough that the nodes know each other soon after they start.
const NODE_TIMEOUT: Duration = Duration::from_secs(2);

fn node_env() -> Vec<(String, String)> {
    vec![(
        "SWITCHYARD_NODE_TIMEOUT".to_owned(),
        format!("{}s", NODE_TIMEOUT.as_secs()),
    )]
}
