//! `soak`: a long steady load, watched for growth.
//!
//! A short drain measures what the hub sustains; then jobs arrive at half
//! that rate (in batches every 100 ms, open loop) for `--duration`. Every
//! `--sample-every` it records the hub's resident memory and open file
//! descriptors, the p99 dispatch latency (submit to agent) of the window, and
//! the store's size per job (Postgres: every table with its indexes and
//! TOAST; SQLite: the database file and its WAL). The run fails when one of
//! them keeps growing: when the last third of the samples sits clearly above
//! the middle third. Store size *per job* is judged, as jobs are history the
//! hub keeps by design; bloat (dead rows, unvacuumed pages) shows as growth
//! per job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde_json::json;

use super::agents::NOOP;
use super::client::Client;
use super::latency::{Receipts, receivers};
use super::report::{Report, percentile};
use super::target::Target;
use super::{Common, drain};
use crate::store::Backend;

/// Fewer samples than this say too little about a trend to judge one.
const MIN_SAMPLES: usize = 9;

/// One window's readings.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rss_mib: f64,
    fds: f64,
    p99_ms: f64,
    store_kib_per_job: f64,
}

pub async fn run(target: &Target, common: &Common) -> anyhow::Result<Report> {
    // Calibrate on a short drain of the same hub.
    let calibration = Common {
        tasks: common.tasks.min(5000),
        ..common.clone()
    };
    let drained = drain::run(target, &calibration).await?;
    let measured = drained
        .metrics
        .iter()
        .find(|m| m.name == "tasks_per_second")
        .map_or(100.0, |m| m.value);
    let rate = (measured / 2.0).max(1.0);
    let every = common.sample_every.min(common.duration);
    let mut report = Report::new(
        "soak",
        &target.backend,
        json!({"duration_s": common.duration.as_secs_f64(), "rate": rate,
               "sample_every_s": every.as_secs_f64(), "agents": common.agents, "slots": common.slots}),
    );
    report.metric("calibration_drain_rate", measured, "tasks/s");
    report.metric("soak_rate", rate, "tasks/s");
    for (what, ok) in &drained.checks {
        report.check(format!("calibration: {what}"), *ok);
    }

    let receipts: Receipts = Arc::new(DashMap::new());
    let handles = receivers(target, common.agents, common.slots, receipts.clone(), None).await?;
    let client = Client::new(target)?;
    let sizes = StoreSizes::open(target).await?;
    let tick = Duration::from_millis(100);
    let per_tick = rate * tick.as_secs_f64();
    let start = Instant::now();
    let (mut owed, mut seq, mut errors) = (0.0f64, 0u64, 0usize);
    let mut window: Vec<(u64, Instant)> = Vec::new();
    let mut samples = Vec::new();
    let mut next_sample = start + every;
    let mut sends = tokio::task::JoinSet::new();
    while start.elapsed() < common.duration {
        let at = Instant::now();
        owed += per_tick;
        let count = owed.floor() as u64;
        owed -= count as f64;
        if count > 0 {
            let jobs: Vec<_> = (seq..seq + count)
                .map(|s| json!({"prompt": "soak", "pipeline": [NOOP], "context": {"seq": s}}))
                .collect();
            window.extend((seq..seq + count).map(|s| (s, at)));
            seq += count;
            let client = client.clone();
            sends.spawn(async move { client.submit_batch(jobs).await });
        }
        while let Some(done) = sends.try_join_next() {
            if !matches!(done, Ok(Ok(_))) {
                errors += 1;
            }
        }
        if Instant::now() >= next_sample {
            next_sample += every;
            let stored = calibration.tasks as u64 + seq;
            let sample = take_sample(target, &sizes, &receipts, &mut window, stored).await;
            eprintln!(
                "soak: {:>5.0} s  rss {:.1} MiB  fds {}  p99 {:.1} ms  store {:.2} KiB/job",
                start.elapsed().as_secs_f64(),
                sample.rss_mib,
                sample.fds,
                sample.p99_ms,
                sample.store_kib_per_job
            );
            report.notes.push(format!(
                "at {:.0} s: rss {:.1} MiB, {} fds, p99 {:.1} ms, {:.2} KiB/job; {}",
                start.elapsed().as_secs_f64(),
                sample.rss_mib,
                sample.fds,
                sample.p99_ms,
                sample.store_kib_per_job,
                sizes.describe().await
            ));
            samples.push(sample);
        }
        tokio::time::sleep_until((at + tick).into()).await;
    }
    while let Some(done) = sends.join_next().await {
        if !matches!(done, Ok(Ok(_))) {
            errors += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while receipts.len() < seq as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    report.check(
        format!("all {seq} soak jobs accepted and dispatched"),
        errors == 0 && receipts.len() as u64 == seq,
    );
    report.metric("soak_jobs", seq as f64, "jobs");
    type Series = (
        &'static str,
        &'static str,
        &'static str,
        fn(&Sample) -> f64,
        f64,
    );
    let series: [Series; 4] = [
        ("hub RSS", "last_rss", "MiB", |s| s.rss_mib, 16.0),
        ("open fds", "last_fds", "fds", |s| s.fds, 16.0),
        ("p99 dispatch latency", "last_p99", "ms", |s| s.p99_ms, 25.0),
        (
            "store size per job",
            "last_store_per_job",
            "KiB",
            |s| s.store_kib_per_job,
            0.25,
        ),
    ];
    if samples.len() < MIN_SAMPLES {
        report.notes.push(format!(
            "growth not judged: {} samples, at least {MIN_SAMPLES} needed (raise --duration or lower --sample-every)",
            samples.len()
        ));
    }
    for (name, metric, unit, value, slack) in series {
        let values: Vec<f64> = samples.iter().map(value).collect();
        if let Some(last) = values.last() {
            report.metric(metric, *last, unit);
        }
        if values.len() < MIN_SAMPLES {
            continue;
        }
        match grows(&values, slack) {
            Some(growth) => report.check(format!("{name} does not keep growing: {growth}"), false),
            None => report.check(format!("{name} does not keep growing"), true),
        }
    }
    for h in handles {
        h.kill();
    }
    sizes.close().await;
    Ok(report)
}

async fn take_sample(
    target: &Target,
    sizes: &StoreSizes,
    receipts: &Receipts,
    window: &mut Vec<(u64, Instant)>,
    jobs: u64,
) -> Sample {
    // Latencies of the window's jobs that have reached an agent; the rest
    // are carried into the next window.
    let mut latencies = Vec::new();
    window.retain(|(seq, sent)| match receipts.get(seq) {
        Some(at) => {
            latencies.push(at.saturating_duration_since(*sent));
            false
        }
        None => true,
    });
    latencies.sort();
    let p99 = if latencies.is_empty() {
        Duration::ZERO
    } else {
        percentile(&latencies, 0.99)
    };
    let fds = target
        .pid
        .and_then(|pid| std::fs::read_dir(format!("/proc/{pid}/fd")).ok())
        .map_or(0, |d| d.count());
    Sample {
        rss_mib: target.hub_rss_bytes().unwrap_or(0) as f64 / 1048576.0,
        fds: fds as f64,
        p99_ms: p99.as_secs_f64() * 1000.0,
        store_kib_per_job: sizes.total_bytes().await as f64 / 1024.0 / jobs.max(1) as f64,
    }
}

/// `Some(description)` when the last third of `values` sits above the
/// middle third by more than 20 % and more than `slack`. The first third is
/// warm-up (caches, pools and buffers filling).
fn grows(values: &[f64], slack: f64) -> Option<String> {
    if values.len() < 3 {
        return None;
    }
    let third = values.len() / 3;
    let median = |part: &[f64]| {
        let mut part = part.to_vec();
        part.sort_by(f64::total_cmp);
        part[part.len() / 2]
    };
    let middle = median(&values[third..2 * third]);
    let last = median(&values[2 * third..]);
    (last > middle * 1.2 && last - middle > slack)
        .then(|| format!("median {middle:.2} in the middle third, {last:.2} in the last"))
}

/// The size of the hub's database, read directly.
enum StoreSizes {
    Postgres(sqlx::PgPool),
    Sqlite(std::path::PathBuf),
    Unknown,
}

impl StoreSizes {
    async fn open(target: &Target) -> anyhow::Result<StoreSizes> {
        Ok(match &target.database_url {
            Some(url) if Backend::of_url(url) == Some(Backend::Postgres) => {
                StoreSizes::Postgres(sqlx::PgPool::connect(url).await?)
            }
            Some(url) => StoreSizes::Sqlite(
                url.trim_start_matches("sqlite://")
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .into(),
            ),
            None => StoreSizes::Unknown,
        })
    }

    async fn total_bytes(&self) -> u64 {
        match self {
            StoreSizes::Postgres(pool) => sqlx::query_scalar::<_, i64>(
                "SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint FROM pg_stat_user_tables",
            )
            .fetch_one(pool)
            .await
            .unwrap_or(0) as u64,
            StoreSizes::Sqlite(path) => ["", "-wal"]
                .iter()
                .filter_map(|suffix| {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    std::fs::metadata(file).ok()
                })
                .map(|m| m.len())
                .sum(),
            StoreSizes::Unknown => 0,
        }
    }

    /// Each table's size and dead rows (Postgres), or the file size.
    async fn describe(&self) -> String {
        match self {
            StoreSizes::Postgres(pool) => {
                let rows: Vec<(String, i64, i64)> = sqlx::query_as(
                    "SELECT relname::text, pg_total_relation_size(relid), n_dead_tup \
                     FROM pg_stat_user_tables WHERE relname IN ('jobs', 'tasks', 'items', 'events') \
                     ORDER BY relname",
                )
                .fetch_all(pool)
                .await
                .unwrap_or_default();
                rows.iter()
                    .map(|(name, bytes, dead)| {
                        format!("{name} {:.1} MiB ({dead} dead)", *bytes as f64 / 1048576.0)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            }
            _ => format!(
                "store {:.1} MiB",
                self.total_bytes().await as f64 / 1048576.0
            ),
        }
    }

    async fn close(self) {
        if let StoreSizes::Postgres(pool) = self {
            pool.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::grows;

    #[test]
    fn growth_is_the_last_third_clearly_above_the_middle() {
        assert_eq!(grows(&[5.0, 5.0], 1.0), None, "too few samples");
        let flat = [90.0, 50.0, 51.0, 49.0, 50.0, 52.0, 50.0, 51.0, 50.0];
        assert_eq!(grows(&flat, 1.0), None, "a warm-up spike is not growth");
        let climbing: Vec<f64> = (0..9).map(|i| 50.0 + 10.0 * i as f64).collect();
        assert!(grows(&climbing, 1.0).is_some());
        let noisy_small = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0];
        assert_eq!(grows(&noisy_small, 5.0), None, "within the slack");
    }
}
