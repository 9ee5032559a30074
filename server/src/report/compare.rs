//! `GET /v1/jobs/{id}/compare/{other_id}`: which items were added, removed
//! or changed between two versions of a job (typically a job and its re-run).
//!
//! **Matching rule.** Items are matched by stage and by their normalised
//! `data.text` (lower-cased, whitespace collapsed, trimmed); an item without
//! a text is matched by its normalised `data.name`; an item with neither
//! matches nothing (it is always added or removed). Items sharing a key are
//! paired in creation order. A matched pair is *changed* when its status,
//! rejection reason or any other field of `data` differs; `changes` names
//! each differing field with both values.
//!
//! The base job's items are held in memory once; the other job's are
//! streamed page by page against them.

use std::collections::{BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{Item, ItemStatus};
use crate::store::{DynStore, StoreError};

/// Page size when reading items.
const PAGE: u32 = 1000;

/// The most entries each list shows (the summary counts are exact).
pub const LISTED: usize = 1000;

/// The matching rule, as documented and returned with every comparison.
pub const MATCH_RULE: &str = "items are matched by stage and normalised data.text (lower-case, whitespace collapsed), or data.name when there is no text; equal keys pair in creation order";

/// An item on one side only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SideItem {
    pub item_id: Uuid,
    pub stage: i32,
    pub status: ItemStatus,
    pub text: Option<String>,
    pub name: Option<String>,
}

/// One differing field of a matched pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldChange {
    /// `status`, `rejection_reason`, or `data.<key>`.
    pub field: String,
    /// Any JSON value: a status, a reason, null, or the item's data value.
    pub before: Value,
    pub after: Value,
}

/// A matched pair that differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangedItem {
    pub item_id: Uuid,
    pub other_item_id: Uuid,
    pub stage: i32,
    pub text: Option<String>,
    pub changes: Vec<FieldChange>,
}

/// Counts of the comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CompareSummary {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub unchanged: usize,
}

/// The comparison of `job_id` (before) with `other_id` (after).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Comparison {
    pub job_id: Uuid,
    pub other_id: Uuid,
    pub match_rule: String,
    pub summary: CompareSummary,
    /// In `other_id` only.
    pub added: Vec<SideItem>,
    /// In `job_id` only.
    pub removed: Vec<SideItem>,
    pub changed: Vec<ChangedItem>,
    /// True when a list holds fewer entries than its count.
    pub truncated: bool,
}

/// Lower-cased, whitespace collapsed, trimmed.
pub fn normalise(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn field(item: &Item, key: &str) -> Option<String> {
    item.data
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The matching key of an item, or `None` when it has neither text nor name.
pub fn key(item: &Item) -> Option<(i32, String)> {
    let text = field(item, "text")
        .map(|t| normalise(&t))
        .filter(|t| !t.is_empty());
    let name = || field(item, "name").map(|n| format!("name:{}", normalise(&n)));
    text.map(|t| format!("text:{t}"))
        .or_else(name)
        .map(|k| (item.stage, k))
}

fn side(item: &Item) -> SideItem {
    SideItem {
        item_id: item.id,
        stage: item.stage,
        status: item.status,
        text: field(item, "text"),
        name: field(item, "name"),
    }
}

/// The differing fields of a matched pair (none when equal).
pub fn changes(before: &Item, after: &Item) -> Vec<FieldChange> {
    let mut out = Vec::new();
    if before.status != after.status {
        out.push(FieldChange {
            field: "status".into(),
            before: Value::from(before.status.as_str()),
            after: Value::from(after.status.as_str()),
        });
    }
    if before.rejection_reason != after.rejection_reason {
        out.push(FieldChange {
            field: "rejection_reason".into(),
            before: before.rejection_reason.clone().into(),
            after: after.rejection_reason.clone().into(),
        });
    }
    let empty = serde_json::Map::new();
    let a = before.data.as_object().unwrap_or(&empty);
    let b = after.data.as_object().unwrap_or(&empty);
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for k in keys {
        let (x, y) = (a.get(k), b.get(k));
        if x != y {
            out.push(FieldChange {
                field: format!("data.{k}"),
                before: x.cloned().unwrap_or(Value::Null),
                after: y.cloned().unwrap_or(Value::Null),
            });
        }
    }
    out
}

async fn for_each_item(
    store: &DynStore,
    job_id: Uuid,
    mut f: impl FnMut(Item),
) -> Result<(), StoreError> {
    let mut after = None;
    loop {
        let page = store.list_items(job_id, None, None, after, PAGE).await?;
        let full = page.len() == PAGE as usize;
        after = page.last().map(|i| i.id);
        page.into_iter().for_each(&mut f);
        if !full {
            return Ok(());
        }
    }
}

/// Compares the items of two jobs (see the module docs for the rule).
pub async fn compare(
    store: &DynStore,
    job_id: Uuid,
    other_id: Uuid,
) -> Result<Comparison, StoreError> {
    let mut base: HashMap<(i32, String), VecDeque<Item>> = HashMap::new();
    let mut out = Comparison {
        job_id,
        other_id,
        match_rule: MATCH_RULE.into(),
        summary: CompareSummary::default(),
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
        truncated: false,
    };
    let mut unkeyed_base = Vec::new();
    for_each_item(store, job_id, |item| match key(&item) {
        Some(k) => base.entry(k).or_default().push_back(item),
        None => unkeyed_base.push(item),
    })
    .await?;
    for_each_item(store, other_id, |item| {
        let matched = key(&item).and_then(|k| base.get_mut(&k).and_then(VecDeque::pop_front));
        match matched {
            None => {
                out.summary.added += 1;
                if out.added.len() < LISTED {
                    out.added.push(side(&item));
                }
            }
            Some(before) => {
                let diff = changes(&before, &item);
                if diff.is_empty() {
                    out.summary.unchanged += 1;
                } else {
                    out.summary.changed += 1;
                    if out.changed.len() < LISTED {
                        out.changed.push(ChangedItem {
                            item_id: before.id,
                            other_item_id: item.id,
                            stage: item.stage,
                            text: field(&item, "text"),
                            changes: diff,
                        });
                    }
                }
            }
        }
    })
    .await?;
    let mut removed: Vec<Item> = base.into_values().flatten().chain(unkeyed_base).collect();
    removed.sort_by_key(|i| i.id);
    out.summary.removed = removed.len();
    out.removed = removed.iter().take(LISTED).map(side).collect();
    out.truncated = out.summary.added > out.added.len()
        || out.summary.removed > out.removed.len()
        || out.summary.changed > out.changed.len();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn item(text: &str, status: ItemStatus) -> Item {
        Item {
            id: Uuid::now_v7(),
            job_id: Uuid::nil(),
            source_task_id: None,
            stage: 0,
            status,
            data: serde_json::json!({"text": text, "tags": ["a"]}),
            rejection_reason: None,
            last_error: None,
            retry_count: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn keys_normalise_text_and_fall_back_to_name() {
        let a = item("  The System  MUST log.", ItemStatus::Integrated);
        let b = item("the system must log.", ItemStatus::Integrated);
        assert_eq!(key(&a), key(&b));
        let mut named = item("", ItemStatus::Pending);
        named.data = serde_json::json!({"name": "Foo"});
        assert_eq!(key(&named), Some((0, "name:foo".into())));
        named.data = serde_json::json!({});
        assert_eq!(key(&named), None);
    }

    #[test]
    fn changes_name_each_field() {
        let a = item("x", ItemStatus::Integrated);
        let mut b = item("x", ItemStatus::Rejected);
        b.data["tags"] = serde_json::json!(["b"]);
        let fields: Vec<String> = changes(&a, &b).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, ["status", "data.tags"]);
        assert!(changes(&a, &item("x", ItemStatus::Integrated)).is_empty());
    }
}
