//! `switchyard jobs list`: jobs newest first, filtered by status, label,
//! context, prompt text and creation time, with `--stats` the counts of all
//! jobs by status (counted in the store) and the daily statistics.

use clap::Args;
use serde_json::json;

use crate::cli::client::output::{print_table, short, text, when};
use crate::cli::client::{CliError, Client, query_value};

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only jobs in this status (waiting, queued, running, completed, failed, cancelled).
    #[arg(long)]
    pub status: Option<String>,
    /// Only jobs carrying this label.
    #[arg(long)]
    pub label: Option<String>,
    /// Only jobs whose context has this value at this key, e.g.
    /// `--context customer=acme` or `--context order.id=42` (nested keys
    /// joined by dots; repeatable, all must match).
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_context)]
    pub context: Vec<(String, String)>,
    /// Only jobs whose prompt contains this text (ASCII letters in any case).
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// Only jobs created at or after this RFC 3339 instant, e.g. 2026-12-05T09:00:00Z.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only jobs created before this RFC 3339 instant.
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// How many jobs (1 to 500).
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Also show all jobs by status and the daily statistics.
    #[arg(long)]
    pub stats: bool,
    /// Days of statistics with --stats (1 to 365).
    #[arg(long, default_value_t = 7, requires = "stats")]
    pub days: u32,
}

/// `KEY=VALUE` of `--context`.
fn parse_context(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!(
            "`{raw}` is not KEY=VALUE; write e.g. `--context customer=acme` or `--context order.id=42`"
        )),
    }
}

pub async fn list(client: &Client, args: ListArgs) -> Result<(), CliError> {
    let mut path = format!("/v1/jobs?limit={}", args.limit.clamp(1, 500));
    if let Some(s) = &args.status {
        path.push_str(&format!("&status={}", query_value(s)));
    }
    if let Some(l) = &args.label {
        path.push_str(&format!("&label={}", query_value(l)));
    }
    for (name, value) in [
        ("q", &args.search),
        ("created_after", &args.since),
        ("created_before", &args.until),
    ] {
        if let Some(v) = value {
            path.push_str(&format!("&{name}={}", query_value(v)));
        }
    }
    for (key, value) in &args.context {
        path.push_str(&format!(
            "&context.{}={}",
            query_value(key),
            query_value(value)
        ));
    }
    let page = client.get(&path).await?;
    let stats = if args.stats {
        let mut stats = client
            .get(&format!("/v1/stats/daily?days={}", args.days))
            .await?;
        stats["jobs_by_status"] = client.get("/v1/jobs/counts").await?["by_status"].take();
        Some(stats)
    } else {
        None
    };
    if client.json {
        match stats {
            Some(stats) => Client::print_json(
                &json!({"jobs": page["jobs"], "next_cursor": page["next_cursor"], "stats": stats}),
            ),
            None => Client::print_json(&page),
        }
        return Ok(());
    }
    let jobs = page["jobs"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                text(&j["id"]),
                text(&j["status"]),
                j["priority"].to_string(),
                when(&j["created_at"]),
                short(&text(&j["prompt"]), 40),
            ]
        })
        .collect();
    print_table(&["ID", "STATUS", "PRI", "CREATED", "PROMPT"], &rows);
    if let Some(stats) = stats {
        // Counted in the store, over every job (not just this page).
        let counts: Vec<String> = crate::domain::JobStatus::ALL
            .iter()
            .map(|s| format!("{} {s}", text(&stats["jobs_by_status"][s.as_str()])))
            .collect();
        println!("\nall jobs: {}", counts.join(", "));
        println!("\nlast {} days (UTC):", args.days);
        let rows: Vec<Vec<String>> = stats["daily"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(std::iter::once(&stats["totals"]))
            .map(|d| {
                [
                    "date",
                    "jobs_created",
                    "jobs_completed",
                    "jobs_failed",
                    "jobs_cancelled",
                    "items_integrated",
                    "items_rejected",
                    "items_failed",
                    "tokens_in",
                    "tokens_out",
                ]
                .iter()
                .map(|k| text(&d[*k]))
                .collect()
            })
            .collect();
        print_table(
            &[
                "DAY",
                "CREATED",
                "DONE",
                "FAILED",
                "CANCELLED",
                "INTEGRATED",
                "REJECTED",
                "ITEMS FAILED",
                "TOKENS IN",
                "TOKENS OUT",
            ],
            &rows,
        );
    }
    Ok(())
}
