//! Event log reads for streams (the tail position, job labels, filtered
//! replay) and retention.
//!
//! A separate trait so each concern's SQL lives in its own files; [`super::Store`]
//! requires it, so callers see one store.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use crate::domain::{Event, EventType};

/// Which events a stream wants. Every part that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this job's events.
    pub job_id: Option<Uuid>,
    /// Only these types; empty means every type.
    pub types: Vec<EventType>,
    /// Only events of jobs carrying this label (events without a job never match).
    pub label: Option<String>,
    /// Only events about this task (their `payload.task_id`).
    pub task_id: Option<Uuid>,
}

impl EventFilter {
    /// Whether an event (with its job's labels) passes; the in-memory twin
    /// of [`EventStore::list_events_matching`], used on the live bus.
    pub fn matches(&self, event: &Event, labels: &[String]) -> bool {
        if self.job_id.is_some() && event.job_id != self.job_id {
            return false;
        }
        if !self.types.is_empty() && !self.types.iter().any(|t| t.as_str() == event.kind) {
            return false;
        }
        if let Some(task_id) = self.task_id {
            let about = event.payload.get("task_id").and_then(|v| v.as_str());
            if about.and_then(|s| Uuid::parse_str(s).ok()) != Some(task_id) {
                return false;
            }
        }
        match &self.label {
            Some(label) => event.job_id.is_some() && labels.iter().any(|l| l == label),
            None => true,
        }
    }

    /// The type strings to bind in SQL.
    pub(crate) fn type_strs(&self) -> Vec<&'static str> {
        self.types.iter().map(|t| t.as_str()).collect()
    }
}

#[async_trait]
pub trait EventStore: Send + Sync {
    /// The newest event's sequence number (0 when the log is empty).
    async fn last_event_seq(&self) -> Result<i64, StoreError>;

    /// Labels of the given jobs (jobs without labels may be missing from the map).
    async fn job_labels(&self, job_ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<String>>, StoreError>;

    /// Events after `after_seq` (exclusive) that pass `filter`, in sequence
    /// order; at most `limit` (clamped to 1..=1000). What a stream replays
    /// before it goes live.
    async fn list_events_matching(
        &self,
        filter: &EventFilter,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;

    /// Deletes up to `limit` of the oldest events created before `before`,
    /// in one transaction, and returns how many it deleted. Retention calls it
    /// in a loop until it deletes fewer than `limit`.
    async fn delete_events_before(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(job_id: Option<Uuid>, kind: EventType) -> Event {
        Event {
            seq: 1,
            job_id,
            kind: kind.as_str().to_owned(),
            payload: serde_json::json!({}),
            created_at: Utc::now(),
            request_id: None,
        }
    }

    #[test]
    fn every_part_of_a_filter_must_match() {
        let job = Uuid::now_v7();
        let labels = ["team-a".to_owned()];
        let created = event(Some(job), EventType::JobCreated);
        let agent = event(None, EventType::AgentConnected);

        assert!(EventFilter::default().matches(&agent, &[]));
        let by_type = EventFilter {
            types: vec![EventType::JobCreated, EventType::JobCompleted],
            ..Default::default()
        };
        assert!(by_type.matches(&created, &labels));
        assert!(!by_type.matches(&agent, &[]));

        let by_label = EventFilter {
            label: Some("team-a".into()),
            ..Default::default()
        };
        assert!(by_label.matches(&created, &labels));
        assert!(!by_label.matches(&created, &[]));
        assert!(!by_label.matches(&agent, &labels), "no job, no label");

        let by_job = EventFilter {
            job_id: Some(Uuid::now_v7()),
            ..Default::default()
        };
        assert!(!by_job.matches(&created, &labels));

        let task = Uuid::now_v7();
        let by_task = EventFilter {
            task_id: Some(task),
            ..Default::default()
        };
        let mut about_task = event(Some(job), EventType::TaskCreated);
        about_task.payload = serde_json::json!({"task_id": task});
        assert!(by_task.matches(&about_task, &[]));
        about_task.payload = serde_json::json!({"task_id": Uuid::now_v7()});
        assert!(!by_task.matches(&about_task, &[]));
        assert!(!by_task.matches(&created, &labels), "no task, no match");
    }
}
