//! The job report (`GET /v1/jobs/{id}/report`) as data: summary, stages,
//! item statistics, tags, priorities, LLM usage and cost, citations, and the
//! rejected and failed items. [`super::render`] turns it into text or Markdown.
//!
//! Every section comes from one aggregate query; only the listed rejected
//! and failed items are read as rows (at most [`LISTED_ITEMS`] each; the
//! totals are always exact).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchyard_agent::protocol::Pricing;
use uuid::Uuid;

use super::progress::TaskCounts;
use super::seconds;
use crate::domain::{DocumentMeta, Item, ItemCounts, ItemStatus, Job, JobStatus};
use crate::store::reports::{KeyCount, UsageGroup};
use crate::store::{DynStore, StoreError};

/// The most rejected (and failed) items a report lists.
pub const LISTED_ITEMS: u32 = 1000;

/// The most citations a report lists.
pub const LISTED_CITATIONS: usize = 100;

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobReport {
    pub generated_at: DateTime<Utc>,
    pub summary: Summary,
    pub stages: Vec<StageReport>,
    pub items: ItemCounts,
    /// Per tag (`data.tags`), most frequent first.
    pub tags: Vec<Breakdown>,
    /// Per priority (`data.priority`): high, medium, low, then others, then `none`.
    pub priorities: Vec<Breakdown>,
    pub usage: UsageReport,
    pub citations: CitationsReport,
    pub rejected: ListedItems,
    pub failed: ListedItems,
}

/// Who, what, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Summary {
    pub job_id: Uuid,
    pub status: JobStatus,
    pub status_reason: Option<String>,
    pub pipeline: Vec<String>,
    pub prompt: String,
    pub priority: i16,
    pub labels: Vec<String>,
    pub created_by: String,
    /// The job this one re-runs, if any.
    pub rerun_of: Option<Uuid>,
    pub document: Option<DocumentMeta>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// From creation to start.
    pub queued_seconds: Option<f64>,
    /// From start to end (to now while it runs).
    pub duration_seconds: Option<f64>,
}

/// One stage: its tasks and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StageReport {
    pub stage: i32,
    pub capability: String,
    pub tasks: TaskCounts,
    /// When its first task was created.
    pub started_at: Option<DateTime<Utc>>,
    /// When its last task finished, once all have.
    pub finished_at: Option<DateTime<Utc>>,
    /// `finished_at - started_at` (to now while it runs).
    pub duration_seconds: Option<f64>,
}

/// Items counted under one key (a tag, a priority), by status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Breakdown {
    pub key: String,
    #[serde(flatten)]
    pub counts: ItemCounts,
}

/// A cost in one currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cost {
    pub currency: String,
    pub amount: f64,
}

/// Usage sums of some tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageLine {
    /// An agent name (per agent), a capability (per capability), or `total`.
    pub key: String,
    pub agent_id: Option<Uuid>,
    /// Tasks that reported usage.
    pub tasks: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub requests: i64,
    /// Per currency; empty when no pricing applies.
    pub cost: Vec<Cost>,
}

/// LLM usage of the job's tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageReport {
    pub total: UsageLine,
    pub by_agent: Vec<UsageLine>,
    pub by_capability: Vec<UsageLine>,
}

/// One cited source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Citation {
    pub citation: String,
    /// Items citing it.
    pub items: i64,
    /// Integrated items citing it.
    pub integrated: i64,
}

/// Sources cited by the items (`data.citations`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CitationsReport {
    /// Distinct sources.
    pub distinct: i64,
    /// Citations over all items (an item citing two sources counts two).
    pub mentions: i64,
    /// Most cited first (at most 100).
    pub sources: Vec<Citation>,
}

/// Items of one outcome, listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ListedItems {
    pub total: i64,
    pub items: Vec<ListedItem>,
    /// True when more exist than are listed (see `GET /v1/jobs/{id}/items?status=`).
    pub truncated: bool,
}

/// One rejected or failed item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ListedItem {
    pub item_id: Uuid,
    pub name: Option<String>,
    pub text: Option<String>,
    /// The rejection reason, or the last error of a failed item.
    pub reason: Option<String>,
    pub retry_count: i32,
}

/// Builds the report of `job`.
pub async fn build(
    store: &DynStore,
    job: &Job,
    now: DateTime<Utc>,
) -> Result<JobReport, StoreError> {
    let tasks = store.task_groups(job.id, now).await?;
    let items = store.item_counts(job.id).await?;
    let tags = store.tag_counts(job.id).await?;
    let priorities = store.priority_counts(job.id).await?;
    let citations = store.citation_counts(job.id).await?;
    let usage = store.usage_groups(job.id).await?;
    let rerun_of = store.rerun_of(job.id).await?;
    let rejected = store
        .list_items(job.id, Some(ItemStatus::Rejected), None, None, LISTED_ITEMS)
        .await?;
    let failed = store
        .list_items(job.id, Some(ItemStatus::Failed), None, None, LISTED_ITEMS)
        .await?;

    let end = job.finished_at.unwrap_or(now);
    let summary = Summary {
        job_id: job.id,
        status: job.status,
        status_reason: job.status_reason.clone(),
        pipeline: job.pipeline.clone(),
        prompt: job.prompt.clone(),
        priority: job.priority,
        labels: job.labels.clone(),
        created_by: job.created_by.clone(),
        rerun_of,
        document: job.document.clone(),
        created_at: job.created_at,
        started_at: job.started_at,
        finished_at: job.finished_at,
        queued_seconds: job.started_at.map(|s| seconds(s - job.created_at)),
        duration_seconds: job.started_at.map(|s| seconds(end - s)),
    };
    Ok(JobReport {
        generated_at: now,
        summary,
        stages: stages(job, &tasks, now),
        items,
        tags: breakdown(&tags, false),
        priorities: breakdown(&priorities, true),
        usage: usage_report(&usage),
        citations: citations_report(&citations),
        rejected: listed(rejected, items.rejected, |i| i.rejection_reason.clone()),
        failed: listed(failed, items.failed, |i| i.last_error.clone()),
    })
}

fn stages(
    job: &Job,
    groups: &[crate::store::reports::TaskGroup],
    now: DateTime<Utc>,
) -> Vec<StageReport> {
    let mut out: Vec<StageReport> = job
        .pipeline
        .iter()
        .enumerate()
        .map(|(i, capability)| StageReport {
            stage: i32::try_from(i).unwrap_or(i32::MAX),
            capability: capability.clone(),
            tasks: TaskCounts::default(),
            started_at: None,
            finished_at: None,
            duration_seconds: None,
        })
        .collect();
    for g in groups {
        let Some(status) = g.task_status() else {
            continue;
        };
        let Some(stage) = out.iter_mut().find(|s| s.stage == g.stage) else {
            continue;
        };
        stage.tasks.add(status, g.count);
        stage.started_at = Some(
            stage
                .started_at
                .map_or(g.first_created_at, |s| s.min(g.first_created_at)),
        );
        if status.is_terminal() {
            stage.finished_at = Some(
                stage
                    .finished_at
                    .map_or(g.last_updated_at, |f| f.max(g.last_updated_at)),
            );
        }
    }
    for stage in &mut out {
        if stage.tasks.unfinished() > 0 {
            stage.finished_at = None;
        }
        stage.duration_seconds = stage
            .started_at
            .map(|s| seconds(stage.finished_at.unwrap_or(now) - s));
    }
    out
}

/// Priorities people expect first, in this order.
const PRIORITY_ORDER: [&str; 3] = ["high", "medium", "low"];

/// The key under which items without a priority are counted.
pub const NO_PRIORITY: &str = "none";

fn breakdown(rows: &[KeyCount], priorities: bool) -> Vec<Breakdown> {
    let mut map: BTreeMap<String, ItemCounts> = BTreeMap::new();
    for row in rows {
        let Ok(status) = row.status.parse::<ItemStatus>() else {
            continue;
        };
        let key = row.key.clone().unwrap_or_else(|| NO_PRIORITY.to_owned());
        map.entry(key).or_default().add(status, row.count);
    }
    let mut out: Vec<Breakdown> = map
        .into_iter()
        .map(|(key, counts)| Breakdown { key, counts })
        .collect();
    if priorities {
        let rank = |k: &str| match PRIORITY_ORDER.iter().position(|p| *p == k) {
            Some(i) => i,
            None if k == NO_PRIORITY => PRIORITY_ORDER.len() + 1,
            None => PRIORITY_ORDER.len(),
        };
        out.sort_by(|a, b| rank(&a.key).cmp(&rank(&b.key)).then(a.key.cmp(&b.key)));
    } else {
        out.sort_by(|a, b| b.counts.total.cmp(&a.counts.total).then(a.key.cmp(&b.key)));
    }
    out
}

/// The cost of some usage under one pricing, rounded to 1e-6.
pub fn cost(pricing: &Pricing, tokens_in: i64, tokens_out: i64, requests: i64) -> Option<Cost> {
    let amount = tokens_in as f64 / 1000.0 * pricing.per_1k_input_tokens
        + tokens_out as f64 / 1000.0 * pricing.per_1k_output_tokens
        + requests as f64 * pricing.per_request;
    let priced = pricing.per_1k_input_tokens != 0.0
        || pricing.per_1k_output_tokens != 0.0
        || pricing.per_request != 0.0;
    priced.then(|| Cost {
        currency: if pricing.currency.trim().is_empty() {
            "unspecified".to_owned()
        } else {
            pricing.currency.trim().to_owned()
        },
        amount: round6(amount),
    })
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn add_line(line: &mut UsageLine, g: &UsageGroup, cost: Option<&Cost>) {
    line.tasks += g.tasks;
    line.tokens_in += g.tokens_in;
    line.tokens_out += g.tokens_out;
    line.requests += g.requests;
    if let Some(cost) = cost {
        match line.cost.iter_mut().find(|c| c.currency == cost.currency) {
            Some(c) => c.amount = round6(c.amount + cost.amount),
            None => line.cost.push(cost.clone()),
        }
        line.cost.sort_by(|a, b| a.currency.cmp(&b.currency));
    }
}

fn usage_report(groups: &[UsageGroup]) -> UsageReport {
    let mut total = UsageLine {
        key: "total".into(),
        ..UsageLine::default()
    };
    let mut by_agent: BTreeMap<(String, Option<Uuid>), UsageLine> = BTreeMap::new();
    let mut by_capability: BTreeMap<String, UsageLine> = BTreeMap::new();
    for g in groups {
        let pricing: Option<Pricing> = g
            .pricing
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok());
        let cost = pricing
            .as_ref()
            .and_then(|p| cost(p, g.tokens_in, g.tokens_out, g.requests));
        let name = g
            .agent_name
            .clone()
            .or_else(|| g.agent_id.map(|id| id.to_string()))
            .unwrap_or_else(|| "unknown".into());
        add_line(&mut total, g, cost.as_ref());
        let agent = by_agent
            .entry((name.clone(), g.agent_id))
            .or_insert_with(|| UsageLine {
                key: name,
                agent_id: g.agent_id,
                ..UsageLine::default()
            });
        add_line(agent, g, cost.as_ref());
        let capability = by_capability
            .entry(g.capability.clone())
            .or_insert_with(|| UsageLine {
                key: g.capability.clone(),
                ..UsageLine::default()
            });
        add_line(capability, g, cost.as_ref());
    }
    UsageReport {
        total,
        by_agent: by_agent.into_values().collect(),
        by_capability: by_capability.into_values().collect(),
    }
}

fn citations_report(rows: &[KeyCount]) -> CitationsReport {
    let mut map: BTreeMap<String, Citation> = BTreeMap::new();
    for row in rows {
        let Some(key) = &row.key else { continue };
        let entry = map.entry(key.clone()).or_insert_with(|| Citation {
            citation: key.clone(),
            items: 0,
            integrated: 0,
        });
        entry.items += row.count;
        if row.status == ItemStatus::Integrated.as_str() {
            entry.integrated += row.count;
        }
    }
    let mentions = map.values().map(|c| c.items).sum();
    let distinct = map.len() as i64;
    let mut sources: Vec<Citation> = map.into_values().collect();
    sources.sort_by(|a, b| b.items.cmp(&a.items).then(a.citation.cmp(&b.citation)));
    sources.truncate(LISTED_CITATIONS);
    CitationsReport {
        distinct,
        mentions,
        sources,
    }
}

fn text_field(item: &Item, key: &str) -> Option<String> {
    item.data
        .get(key)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

fn listed(items: Vec<Item>, total: i64, reason: impl Fn(&Item) -> Option<String>) -> ListedItems {
    let listed: Vec<ListedItem> = items
        .iter()
        .map(|i| ListedItem {
            item_id: i.id,
            name: text_field(i, "name"),
            text: text_field(i, "text"),
            reason: reason(i),
            retry_count: i.retry_count,
        })
        .collect();
    ListedItems {
        truncated: total > listed.len() as i64,
        total,
        items: listed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_follows_the_pricing() {
        let pricing = Pricing {
            currency: "USD".into(),
            per_1k_input_tokens: 0.5,
            per_1k_output_tokens: 1.5,
            per_request: 0.25,
        };
        assert_eq!(
            cost(&pricing, 2000, 1000, 4),
            Some(Cost {
                currency: "USD".into(),
                amount: 3.5
            })
        );
        assert_eq!(cost(&Pricing::default(), 10, 10, 1), None);
    }

    #[test]
    fn priorities_sort_high_to_low_then_none() {
        let row = |k: Option<&str>| KeyCount {
            key: k.map(str::to_owned),
            status: "integrated".into(),
            count: 1,
        };
        let out = breakdown(
            &[
                row(None),
                row(Some("low")),
                row(Some("urgent")),
                row(Some("high")),
            ],
            true,
        );
        let keys: Vec<&str> = out.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(keys, ["high", "low", "urgent", "none"]);
    }
}
