//! Results: a table for people, JSON for scripts, and percentiles.

use std::time::Duration;

use serde::Serialize;

/// One measured number.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
}

/// What a scenario measured and whether its own checks passed.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub backend: String,
    pub parameters: serde_json::Value,
    pub metrics: Vec<Metric>,
    /// Exact-count checks (no losses, no duplicates): all must hold.
    pub checks: Vec<(String, bool)>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(scenario: &'static str, backend: &str, parameters: serde_json::Value) -> Self {
        Report {
            scenario,
            backend: backend.to_owned(),
            parameters,
            metrics: Vec::new(),
            checks: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn metric(&mut self, name: impl Into<String>, value: f64, unit: &'static str) {
        self.metrics.push(Metric {
            name: name.into(),
            value,
            unit,
        });
    }

    pub fn check(&mut self, what: impl Into<String>, ok: bool) {
        self.checks.push((what.into(), ok));
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|(_, ok)| *ok)
    }

    /// Adds p50/p90/p99/max of `samples` as `<name>_p50_ms` and so on.
    pub fn latencies(&mut self, name: &str, samples: &mut [Duration]) {
        if samples.is_empty() {
            self.notes.push(format!("{name}: no samples"));
            return;
        }
        samples.sort_unstable();
        for (label, q) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99)] {
            self.metric(format!("{name}_{label}"), ms(percentile(samples, q)), "ms");
        }
        self.metric(format!("{name}_max"), ms(samples[samples.len() - 1]), "ms");
    }

    pub fn print(&self, json: bool) {
        if json {
            match serde_json::to_string_pretty(self) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("error: cannot encode the report: {e}"),
            }
            return;
        }
        println!(
            "scenario {} on {} {}",
            self.scenario, self.backend, self.parameters
        );
        let width = self
            .metrics
            .iter()
            .map(|m| m.name.len())
            .max()
            .unwrap_or(10)
            .max(10);
        for m in &self.metrics {
            println!(
                "  {:<width$}  {:>14}  {}",
                m.name,
                format_value(m.value),
                m.unit
            );
        }
        for note in &self.notes {
            println!("  note: {note}");
        }
        for (what, ok) in &self.checks {
            println!("  check: {what}: {}", if *ok { "ok" } else { "FAILED" });
        }
        println!(
            "result: {}",
            if self.passed() { "PASSED" } else { "FAILED" }
        );
    }
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `q` quantile of sorted samples (nearest rank).
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&samples, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&samples, 1.0), Duration::from_millis(100));
        assert_eq!(
            percentile(&[Duration::from_millis(7)], 0.99),
            Duration::from_millis(7)
        );
    }
}
