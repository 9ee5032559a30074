//! Items: what a stage emits (a requirement in the reference pipeline).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::status::ItemStatus;

/// An item as stored and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Item {
    pub id: Uuid,
    pub job_id: Uuid,
    /// The task that emitted it.
    pub source_task_id: Option<Uuid>,
    /// The pipeline stage (0-based) that emitted it.
    pub stage: i32,
    pub status: ItemStatus,
    /// The item's content as emitted (text, name, kind, tags, citations,
    /// ...): any JSON value, usually an object.
    pub data: serde_json::Value,
    pub rejection_reason: Option<String>,
    pub last_error: Option<String>,
    pub retry_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An item to store.
#[derive(Debug, Clone)]
pub struct NewItem {
    pub id: Uuid,
    pub job_id: Uuid,
    pub source_task_id: Option<Uuid>,
    pub stage: i32,
    pub data: serde_json::Value,
}

/// Item counts of one job by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemCounts {
    pub total: i64,
    pub pending: i64,
    pub validating: i64,
    pub integrated: i64,
    pub rejected: i64,
    pub failed: i64,
}

impl ItemCounts {
    /// Adds `n` items of `status` to the counts.
    pub fn add(&mut self, status: ItemStatus, n: i64) {
        self.total += n;
        match status {
            ItemStatus::Pending => self.pending += n,
            ItemStatus::Validating => self.validating += n,
            ItemStatus::Integrated => self.integrated += n,
            ItemStatus::Rejected => self.rejected += n,
            ItemStatus::Failed => self.failed += n,
        }
    }
}
