//! Reads for people browsing the hub (the dashboard, the CLI, REST
//! clients): counts aggregated in the database, pages of a job's events
//! newest first, and one task with the events of its attempts.
//!
//! They exist so that no client has to load a job's whole history to show
//! where it stands: a 20,000-item job is a few aggregate rows and a page.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;
use crate::domain::{Event, JobStatus, Task};

/// One task with what it needs to show its attempts.
#[derive(Debug, Clone)]
pub struct TaskDetail {
    pub task: Task,
    /// The task's events (`task.*` naming it), in sequence order.
    pub events: Vec<Event>,
    /// The usage the agent reported with its result, if it did.
    pub usage: Option<serde_json::Value>,
}

#[async_trait]
pub trait BrowseStore: Send + Sync {
    /// How many jobs are in each status, every status in lifecycle order
    /// ([`JobStatus::ALL`]), 0 when none.
    async fn job_counts(&self) -> Result<Vec<(JobStatus, i64)>, StoreError>;

    /// A job's events newest first: those with `seq < before` (all when
    /// `None`), at most `limit` (clamped to 1..=1000).
    async fn job_events_before(
        &self,
        job_id: Uuid,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;

    /// One task, or `None`.
    async fn get_task(&self, task_id: Uuid) -> Result<Option<Task>, StoreError>;

    /// One task with its events and usage, or `None`.
    async fn task_detail(&self, task_id: Uuid) -> Result<Option<TaskDetail>, StoreError>;
}
