//! Monitoring and reports: progress, stuck work and its recovery, reports,
//! daily statistics, agent health, re-runs and comparisons, on both
//! backends, with exact numbers from real pipelines.

mod browse;
mod eta;
mod recovery;
mod reports;
mod rerun;
pub mod support;
