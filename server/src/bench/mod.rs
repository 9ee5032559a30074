//! `switchyard bench`: a load generator in the style of `pgbench` or
//! `nats bench`. It starts a hub of its own (a child process on a fresh
//! SQLite or Postgres database) or drives an existing one (`--url`), with
//! simulated agents built on the real SDK, and prints what it measured.
//!
//! Every scenario checks its own result (exact counts, no losses, no
//! duplicates); a run that lost or duplicated work prints FAILED and exits
//! non-zero. Nothing here asserts a timing: numbers are reported, not judged,
//! except the failover target which is part of the scenario's definition.

mod agents;
mod client;
mod cluster;
mod drain;
mod failover;
mod latency;
mod pipeline;
mod report;
mod sessions;
mod soak;
pub mod target;
mod webhooks;

use std::time::Duration;

use anyhow::bail;
use clap::{Args, ValueEnum};

use crate::store::Backend;
use report::Report;
use target::{LocalOptions, Target};

use crate::store::DynStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Drain,
    Latency,
    Sessions,
    Failover,
    Pipeline,
    Webhooks,
    Soak,
    /// Clusters of `--nodes` nodes on one Postgres database.
    Cluster,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Store of the hub the bench starts.
    #[arg(long, value_enum, default_value = "sqlite")]
    pub backend: Backend,
    /// Postgres server to create the benchmark database on (default: DATABASE_URL or 127.0.0.1:5432).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Drive an existing hub instead of starting one.
    #[arg(long, value_name = "URL", requires_all = ["token", "jwt_secret"])]
    pub url: Option<String>,
    /// Admin token for `--url`.
    #[arg(long, requires = "url")]
    pub token: Option<String>,
    /// The `--url` hub's JWT secret: the simulated agents sign their own
    /// tokens with it, each with the agent's name as subject, as the hub
    /// requires.
    #[arg(long, env = "SWITCHYARD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Tasks (drain) or closed-loop samples (latency).
    #[arg(long, default_value_t = 10_000)]
    pub tasks: usize,
    /// Simulated agents [default: 1 for drain, the peer harness's shape; 4 otherwise].
    #[arg(long)]
    pub agents: Option<usize>,
    /// Slots per agent.
    #[arg(long, default_value_t = 4)]
    pub slots: u32,
    /// Padding added to each job's context, in bytes.
    #[arg(long, default_value_t = 0)]
    pub payload_bytes: usize,
    /// Idle agents (sessions).
    #[arg(long, default_value_t = 1000)]
    pub sessions: usize,
    /// Requirements in the generated document (pipeline).
    #[arg(long, default_value_t = 1000)]
    pub requirements: usize,
    /// Open-loop arrival rates, tasks per second (latency).
    #[arg(long, value_delimiter = ',', default_value = "200,1000,5000")]
    pub rates: Vec<u64>,
    /// Length of each open-loop rate, and of the idle window (sessions), e.g. 30s.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// How often the soak samples memory, descriptors, latency and store size.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub sample_every: Duration,
    /// Repeat the scenario and report the median of each number.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Node counts to measure (cluster), e.g. 1,2,3.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub nodes: Vec<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Parameters the scenarios share.
#[derive(Clone)]
pub struct Common {
    pub tasks: usize,
    pub agents: usize,
    pub slots: u32,
    pub payload_bytes: usize,
    pub sessions: usize,
    pub requirements: usize,
    pub rates: Vec<u64>,
    pub duration: Duration,
    pub sample_every: Duration,
}

/// Runs the benchmark; `Ok(false)` when a run's own checks failed.
pub async fn run(args: BenchArgs) -> anyhow::Result<bool> {
    let agents = args.agents.unwrap_or(if args.scenario == Scenario::Drain {
        1
    } else {
        4
    });
    if args.tasks == 0 || agents == 0 || args.slots == 0 || args.runs == 0 {
        bail!("--tasks, --agents, --slots and --runs must be at least 1");
    }
    if args.rates.contains(&0) {
        bail!("--rates must be positive numbers of tasks per second, e.g. 200,1000,5000");
    }
    raise_open_file_limit();
    let common = Common {
        tasks: args.tasks,
        agents,
        slots: args.slots,
        payload_bytes: args.payload_bytes,
        sessions: args.sessions,
        requirements: args.requirements,
        rates: args.rates.clone(),
        duration: args.duration,
        sample_every: args.sample_every,
    };
    if args.sample_every.is_zero() {
        bail!("--sample-every must be longer than zero, e.g. 60s");
    }
    if args.scenario == Scenario::Cluster {
        if args.url.is_some() {
            bail!("bench cluster starts its own nodes; it cannot drive --url");
        }
        if args.nodes.is_empty() || args.nodes.contains(&0) || args.nodes.iter().any(|&k| k > 16) {
            bail!("--nodes takes node counts from 1 to 16, e.g. --nodes 1,2,3");
        }
        let admin = args
            .database_url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut reports = Vec::new();
        for _ in 0..args.runs {
            reports.push(cluster::run(&args.nodes, &admin, &common).await?);
        }
        let report = median(reports);
        report.print(args.json);
        return Ok(report.passed());
    }
    let mut reports = Vec::new();
    for _ in 0..args.runs {
        let target = match &args.url {
            Some(url) => Target::remote(
                url,
                args.token.clone().unwrap_or_default(),
                args.jwt_secret.clone().unwrap_or_default(),
            ),
            None => {
                let mut env = Vec::new();
                if args.scenario == Scenario::Webhooks {
                    env.push((
                        "SWITCHYARD_WEBHOOKS_ALLOW_LOOPBACK".to_owned(),
                        "true".to_owned(),
                    ));
                }
                if args.scenario == Scenario::Failover {
                    env.push((
                        "SWITCHYARD_RECONNECT_GRACE".to_owned(),
                        format!("{}ms", failover::GRACE.as_millis()),
                    ));
                    env.push((
                        "SWITCHYARD_HEARTBEAT_INTERVAL".to_owned(),
                        "500ms".to_owned(),
                    ));
                }
                Target::local(LocalOptions {
                    backend: args.backend,
                    database_url: args.database_url.clone(),
                    env,
                })
                .await?
            }
        };
        let result = match args.scenario {
            Scenario::Drain => drain::run(&target, &common).await,
            Scenario::Latency => latency::run(&target, &common).await,
            Scenario::Sessions => sessions::run(&target, &common).await,
            Scenario::Failover => failover::run(&target, &common).await,
            Scenario::Pipeline => pipeline::run(&target, &common).await,
            Scenario::Webhooks => webhooks::run(&target, &common).await,
            Scenario::Soak => soak::run(&target, &common).await,
            Scenario::Cluster => Err(anyhow::anyhow!("bench cluster runs its own nodes")),
        };
        target.shutdown().await;
        reports.push(result?);
    }
    let report = median(reports);
    report.print(args.json);
    Ok(report.passed())
}

/// The median of each metric over several runs (a metric some runs lack is
/// the median of the runs that have it); checks must hold in every run;
/// notes say in how many runs they appeared.
fn median(reports: Vec<Report>) -> Report {
    let runs = reports.len();
    let Some(first) = reports.first() else {
        return Report::new("none", "none", serde_json::Value::Null);
    };
    if runs == 1 {
        return first.clone();
    }
    let mut out = Report::new(first.scenario, &first.backend, first.parameters.clone());
    for report in &reports {
        for metric in &report.metrics {
            if out.metrics.iter().any(|m| m.name == metric.name) {
                continue;
            }
            let mut values: Vec<f64> = reports
                .iter()
                .filter_map(|r| {
                    r.metrics
                        .iter()
                        .find(|m| m.name == metric.name)
                        .map(|m| m.value)
                })
                .collect();
            values.sort_by(f64::total_cmp);
            out.metric(metric.name.clone(), values[values.len() / 2], metric.unit);
        }
        for (what, _) in &report.checks {
            if !out.checks.iter().any(|(w, _)| w == what) {
                let held = reports
                    .iter()
                    .all(|r| r.checks.iter().any(|(w, ok)| w == what && *ok));
                out.check(what.clone(), held);
            }
        }
    }
    let mut notes: Vec<(String, usize)> = Vec::new();
    for note in reports.iter().flat_map(|r| &r.notes) {
        match notes.iter_mut().find(|(n, _)| n == note) {
            Some((_, count)) => *count += 1,
            None => notes.push((note.clone(), 1)),
        }
    }
    out.notes = notes
        .into_iter()
        .map(|(note, count)| format!("{note} (in {count} of {runs} runs)"))
        .collect();
    out.notes.push(format!("median of {runs} runs"));
    out
}

/// A store handle on the local hub's database, for exact-count checks.
async fn local_store(target: &Target) -> anyhow::Result<Option<DynStore>> {
    match &target.database_url {
        Some(url) => Ok(Some(crate::store::open(url, 2).await?)),
        None => Ok(None),
    }
}

/// Thousands of sessions need thousands of file descriptors, here and in the
/// hub child (which inherits the limit).
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_union_metrics_checks_and_notes_across_runs() {
        let run = |value: f64, extra: Option<f64>, ok: bool, note: Option<&str>| {
            let mut r = Report::new("drain", "sqlite", serde_json::Value::Null);
            r.metric("rate", value, "tasks/s");
            if let Some(extra) = extra {
                r.metric("best", extra, "tasks/s");
            }
            r.check("counts", ok);
            if let Some(note) = note {
                r.notes.push(note.into());
            }
            r
        };
        let out = median(vec![
            run(10.0, None, true, Some("slow")),
            run(30.0, Some(5.0), true, None),
            run(20.0, Some(7.0), false, None),
        ]);
        let value = |name: &str| out.metrics.iter().find(|m| m.name == name).map(|m| m.value);
        assert_eq!(value("rate"), Some(20.0));
        assert_eq!(
            value("best"),
            Some(7.0),
            "a metric missing from run 1 is kept"
        );
        assert!(!out.passed(), "a check must hold in every run");
        assert_eq!(
            out.notes,
            vec![
                "slow (in 1 of 3 runs)".to_owned(),
                "median of 3 runs".to_owned()
            ]
        );
    }
}
