//! Simulated agents for the benchmarks: real SDK agents with a no-op (or
//! slow) handler that record every task they run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use switchyard_agent::{Agent, AgentHandle, CapabilitySpec, TaskContext, TaskError};
use uuid::Uuid;

use super::target::Target;
use crate::auth::Role;

/// The capability every bench task uses.
pub const NOOP: &str = "bench.noop";

/// What the simulated agents saw.
#[derive(Default)]
pub struct Ledger {
    /// Handler starts, one per (task, attempt).
    pub started: AtomicU64,
    /// Handler successes per task id: more than one means a duplicate.
    pub completed: DashMap<Uuid, u32>,
    pub completions: AtomicU64,
    /// When each job's task reached an agent (latency scenario).
    pub received_at: DashMap<Uuid, Instant>,
}

impl Ledger {
    pub fn duplicates(&self) -> usize {
        self.completed.iter().filter(|e| *e.value() > 1).count()
    }
}

/// Waits until the agents have run `n` tasks, then until `store` (when
/// given) has recorded `n` succeeded tasks; errors after ten minutes.
pub async fn wait_drained(
    ledger: &Ledger,
    n: usize,
    store: Option<&crate::store::DynStore>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while ledger.completions.load(Ordering::Relaxed) < n as u64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {n} tasks ran within 10 minutes",
            ledger.completions.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    if let Some(store) = store {
        loop {
            let counts = store.task_counts().await?;
            let succeeded = counts.get(&crate::domain::TaskStatus::Succeeded).copied();
            if succeeded.unwrap_or(0) >= n as i64 {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the store did not record every completion"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Ok(())
}

/// Starts `agents` agents with `slots` slots each, whose handler takes `work`.
pub async fn spawn(
    target: &Target,
    agents: usize,
    slots: u32,
    work: Duration,
    ledger: Arc<Ledger>,
    prefix: &str,
) -> anyhow::Result<Vec<AgentHandle>> {
    let mut handles = Vec::with_capacity(agents);
    for i in 0..agents {
        let name = format!("{prefix}-{i}");
        let ledger = ledger.clone();
        let agent = Agent::builder(&target.ws, target.token(Role::Agent, &name)?, &name)
            .capability(
                CapabilitySpec::new(NOOP).max_concurrency(slots),
                move |ctx: TaskContext, _input: serde_json::Value| {
                    let ledger = ledger.clone();
                    async move {
                        ledger
                            .received_at
                            .entry(ctx.job_id())
                            .or_insert_with(Instant::now);
                        ledger.started.fetch_add(1, Ordering::Relaxed);
                        if !work.is_zero() {
                            tokio::time::sleep(work).await;
                        }
                        *ledger.completed.entry(ctx.task_id()).or_default() += 1;
                        ledger.completions.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, TaskError>(serde_json::Value::Null)
                    }
                },
            )
            .reconnect_backoff(Duration::from_millis(50), Duration::from_secs(1))
            .build()?;
        handles.push(agent.spawn());
    }
    for handle in &handles {
        handle.wait_connected().await?;
    }
    Ok(handles)
}
