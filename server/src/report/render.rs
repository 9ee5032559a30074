//! A [`JobReport`] as plain text (for terminals and e-mail) or Markdown (for
//! tickets and wikis). Both show the same sections as the JSON, in the same order.

use std::fmt::Write;

use super::builder::{Breakdown, Cost, JobReport, ListedItems, UsageLine};
use super::human_duration;

/// The formats `GET /v1/jobs/{id}/report?format=` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Text,
    Markdown,
}

impl Format {
    pub const ALLOWED: &'static str = "json, text or markdown";

    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "text" | "txt" => Some(Format::Text),
            "markdown" | "md" => Some(Format::Markdown),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Text => "text/plain; charset=utf-8",
            Format::Markdown => "text/markdown; charset=utf-8",
        }
    }
}

fn costs(cost: &[Cost]) -> String {
    if cost.is_empty() {
        return "-".into();
    }
    cost.iter()
        .map(|c| format!("{:.6} {}", c.amount, c.currency))
        .collect::<Vec<_>>()
        .join(" + ")
}

fn opt_time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(
        || "-".into(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

fn opt_secs(s: Option<f64>) -> String {
    s.map_or_else(|| "-".into(), human_duration)
}

/// The report as plain text.
pub fn text(r: &JobReport) -> String {
    let mut o = String::new();
    let s = &r.summary;
    let _ = writeln!(o, "Job {}", s.job_id);
    let _ = writeln!(o, "{}", "=".repeat(40));
    let _ = writeln!(o, "Status:      {}", s.status);
    if let Some(reason) = &s.status_reason {
        let _ = writeln!(o, "Reason:      {reason}");
    }
    let _ = writeln!(o, "Pipeline:    {}", s.pipeline.join(" -> "));
    let _ = writeln!(o, "Prompt:      {}", s.prompt);
    let _ = writeln!(o, "Priority:    {}", s.priority);
    if !s.labels.is_empty() {
        let _ = writeln!(o, "Labels:      {}", s.labels.join(", "));
    }
    let _ = writeln!(o, "Submitted by {}", s.created_by);
    if let Some(orig) = s.rerun_of {
        let _ = writeln!(o, "Re-run of:   {orig}");
    }
    if let Some(d) = &s.document {
        let _ = writeln!(
            o,
            "Document:    {} ({} bytes, {})",
            d.file_name, d.size, d.content_type
        );
    }
    let _ = writeln!(o, "Created:     {}", opt_time(Some(s.created_at)));
    let _ = writeln!(o, "Started:     {}", opt_time(s.started_at));
    let _ = writeln!(o, "Finished:    {}", opt_time(s.finished_at));
    let _ = writeln!(o, "Queued for:  {}", opt_secs(s.queued_seconds));
    let _ = writeln!(o, "Ran for:     {}", opt_secs(s.duration_seconds));

    let _ = writeln!(o, "\nStages");
    for st in &r.stages {
        let t = &st.tasks;
        let _ = writeln!(
            o,
            "  {}. {:<28} {:>5} tasks: {} succeeded, {} failed, {} cancelled, {} open; took {}",
            st.stage + 1,
            st.capability,
            t.total,
            t.succeeded,
            t.failed,
            t.cancelled,
            t.unfinished(),
            opt_secs(st.duration_seconds)
        );
    }

    let i = &r.items;
    let _ = writeln!(o, "\nItems");
    let _ = writeln!(
        o,
        "  total {}: {} integrated, {} rejected, {} failed, {} pending, {} validating",
        i.total, i.integrated, i.rejected, i.failed, i.pending, i.validating
    );
    breakdown_text(&mut o, "Tags", &r.tags);
    breakdown_text(&mut o, "Priorities", &r.priorities);

    let _ = writeln!(o, "\nLLM usage");
    usage_text(&mut o, &r.usage.total);
    if !r.usage.by_agent.is_empty() {
        let _ = writeln!(o, "  by agent:");
        r.usage.by_agent.iter().for_each(|l| usage_text(&mut o, l));
        let _ = writeln!(o, "  by capability:");
        r.usage
            .by_capability
            .iter()
            .for_each(|l| usage_text(&mut o, l));
    }

    let c = &r.citations;
    let _ = writeln!(
        o,
        "\nCitations: {} sources, {} mentions",
        c.distinct, c.mentions
    );
    for src in &c.sources {
        let _ = writeln!(
            o,
            "  {:>4}x {} ({} integrated)",
            src.items, src.citation, src.integrated
        );
    }
    listed_text(&mut o, "Rejected items", &r.rejected);
    listed_text(&mut o, "Failed items", &r.failed);
    o
}

fn breakdown_text(o: &mut String, title: &str, rows: &[Breakdown]) {
    let _ = writeln!(o, "\n{title}");
    if rows.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    for b in rows {
        let _ = writeln!(
            o,
            "  {:<16} {:>5} ({} integrated, {} rejected, {} failed)",
            b.key, b.counts.total, b.counts.integrated, b.counts.rejected, b.counts.failed
        );
    }
}

fn usage_text(o: &mut String, l: &UsageLine) {
    let _ = writeln!(
        o,
        "  {:<28} {} requests, {} tokens in, {} tokens out, cost {}",
        l.key,
        l.requests,
        l.tokens_in,
        l.tokens_out,
        costs(&l.cost)
    );
}

fn listed_text(o: &mut String, title: &str, l: &ListedItems) {
    let _ = writeln!(o, "\n{title}: {}", l.total);
    for item in &l.items {
        let what = item.text.as_deref().or(item.name.as_deref()).unwrap_or("-");
        let _ = writeln!(o, "  - {what}");
        let _ = writeln!(
            o,
            "    {} ({})",
            item.reason.as_deref().unwrap_or("no reason given"),
            item.item_id
        );
    }
    if l.truncated {
        let _ = writeln!(o, "  ... {} more", l.total - l.items.len() as i64);
    }
}

/// Escapes `|` and line breaks so a value fits in a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The report as Markdown.
pub fn markdown(r: &JobReport) -> String {
    let mut o = String::new();
    let s = &r.summary;
    let _ = writeln!(o, "# Job report `{}`\n", s.job_id);
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(o, "| Status | **{}** |", s.status);
    if let Some(reason) = &s.status_reason {
        let _ = writeln!(o, "| Reason | {} |", cell(reason));
    }
    let _ = writeln!(o, "| Pipeline | {} |", cell(&s.pipeline.join(" → ")));
    let _ = writeln!(o, "| Prompt | {} |", cell(&s.prompt));
    let _ = writeln!(o, "| Priority | {} |", s.priority);
    let _ = writeln!(o, "| Submitted by | {} |", cell(&s.created_by));
    if let Some(orig) = s.rerun_of {
        let _ = writeln!(o, "| Re-run of | `{orig}` |");
    }
    if let Some(d) = &s.document {
        let _ = writeln!(
            o,
            "| Document | {} ({} bytes) |",
            cell(&d.file_name),
            d.size
        );
    }
    let _ = writeln!(o, "| Created | {} |", opt_time(Some(s.created_at)));
    let _ = writeln!(o, "| Started | {} |", opt_time(s.started_at));
    let _ = writeln!(o, "| Finished | {} |", opt_time(s.finished_at));
    let _ = writeln!(o, "| Ran for | {} |", opt_secs(s.duration_seconds));

    let _ = writeln!(o, "\n## Stages\n");
    let _ = writeln!(
        o,
        "| # | Capability | Tasks | Succeeded | Failed | Cancelled | Open | Duration |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---|");
    for st in &r.stages {
        let t = &st.tasks;
        let _ = writeln!(
            o,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} |",
            st.stage + 1,
            cell(&st.capability),
            t.total,
            t.succeeded,
            t.failed,
            t.cancelled,
            t.unfinished(),
            opt_secs(st.duration_seconds)
        );
    }

    let i = &r.items;
    let _ = writeln!(o, "\n## Items\n");
    let _ = writeln!(
        o,
        "| Total | Integrated | Rejected | Failed | Pending | Validating |"
    );
    let _ = writeln!(o, "|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        o,
        "| {} | {} | {} | {} | {} | {} |",
        i.total, i.integrated, i.rejected, i.failed, i.pending, i.validating
    );
    breakdown_md(&mut o, "Tags", "Tag", &r.tags);
    breakdown_md(&mut o, "Priorities", "Priority", &r.priorities);

    let _ = writeln!(o, "\n## LLM usage\n");
    let _ = writeln!(o, "| | Tasks | Requests | Tokens in | Tokens out | Cost |");
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---|");
    let mut line = |prefix: &str, l: &UsageLine| {
        let _ = writeln!(
            o,
            "| {prefix}{} | {} | {} | {} | {} | {} |",
            cell(&l.key),
            l.tasks,
            l.requests,
            l.tokens_in,
            l.tokens_out,
            costs(&l.cost)
        );
    };
    r.usage.by_agent.iter().for_each(|l| line("agent ", l));
    r.usage
        .by_capability
        .iter()
        .for_each(|l| line("capability ", l));
    line(
        "**",
        &UsageLine {
            key: format!("{}**", r.usage.total.key),
            ..r.usage.total.clone()
        },
    );

    let c = &r.citations;
    let _ = writeln!(o, "\n## Citations\n");
    let _ = writeln!(o, "{} sources, {} mentions.\n", c.distinct, c.mentions);
    if !c.sources.is_empty() {
        let _ = writeln!(o, "| Source | Items | Integrated |\n|---|---:|---:|");
        for src in &c.sources {
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                cell(&src.citation),
                src.items,
                src.integrated
            );
        }
    }
    listed_md(&mut o, "Rejected items", "Reason", &r.rejected);
    listed_md(&mut o, "Failed items", "Last error", &r.failed);
    o
}

fn breakdown_md(o: &mut String, title: &str, head: &str, rows: &[Breakdown]) {
    let _ = writeln!(o, "\n## {title}\n");
    if rows.is_empty() {
        let _ = writeln!(o, "None.");
        return;
    }
    let _ = writeln!(
        o,
        "| {head} | Total | Integrated | Rejected | Failed |\n|---|---:|---:|---:|---:|"
    );
    for b in rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} |",
            cell(&b.key),
            b.counts.total,
            b.counts.integrated,
            b.counts.rejected,
            b.counts.failed
        );
    }
}

fn listed_md(o: &mut String, title: &str, head: &str, l: &ListedItems) {
    let _ = writeln!(o, "\n## {title} ({})\n", l.total);
    if l.items.is_empty() {
        let _ = writeln!(o, "None.");
        return;
    }
    let _ = writeln!(o, "| Item | {head} |\n|---|---|");
    for item in &l.items {
        let what = item.text.as_deref().or(item.name.as_deref()).unwrap_or("-");
        let _ = writeln!(
            o,
            "| {} | {} |",
            cell(what),
            cell(item.reason.as_deref().unwrap_or("-"))
        );
    }
    if l.truncated {
        let _ = writeln!(o, "\n… and {} more.", l.total - l.items.len() as i64);
    }
}
