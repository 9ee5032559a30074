//! Events: every state transition appends one, in the same transaction as the change.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The type of an event. The list is documented once, in `docs/events.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    JobCreated,
    /// A `waiting` job's dependencies completed; it is now `queued`.
    JobQueued,
    JobStarted,
    JobCompleted,
    JobFailed,
    JobCancelled,
    TaskCreated,
    TaskAssigned,
    TaskStarted,
    TaskProgress,
    TaskSucceeded,
    TaskFailed,
    TaskRetrying,
    TaskRequeued,
    TaskCancelled,
    ItemCreated,
    ItemIntegrated,
    ItemRejected,
    ItemFailed,
    AgentConnected,
    AgentDraining,
    AgentDisconnected,
    AgentOffline,
    /// A webhook subscription was switched off (every delivery kept failing, or 410 Gone).
    WebhookDisabled,
}

impl EventType {
    /// The one string form, e.g. `job.created`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::JobCreated => "job.created",
            EventType::JobQueued => "job.queued",
            EventType::JobStarted => "job.started",
            EventType::JobCompleted => "job.completed",
            EventType::JobFailed => "job.failed",
            EventType::JobCancelled => "job.cancelled",
            EventType::TaskCreated => "task.created",
            EventType::TaskAssigned => "task.assigned",
            EventType::TaskStarted => "task.started",
            EventType::TaskProgress => "task.progress",
            EventType::TaskSucceeded => "task.succeeded",
            EventType::TaskFailed => "task.failed",
            EventType::TaskRetrying => "task.retrying",
            EventType::TaskRequeued => "task.requeued",
            EventType::TaskCancelled => "task.cancelled",
            EventType::ItemCreated => "item.created",
            EventType::ItemIntegrated => "item.integrated",
            EventType::ItemRejected => "item.rejected",
            EventType::ItemFailed => "item.failed",
            EventType::AgentConnected => "agent.connected",
            EventType::AgentDraining => "agent.draining",
            EventType::AgentDisconnected => "agent.disconnected",
            EventType::AgentOffline => "agent.offline",
            EventType::WebhookDisabled => "webhook.disabled",
        }
    }

    /// Every event type, in documentation order. Keep in step with the enum
    /// (a unit test checks that each string parses back to its type).
    pub const ALL: &'static [EventType] = &[
        EventType::JobCreated,
        EventType::JobQueued,
        EventType::JobStarted,
        EventType::JobCompleted,
        EventType::JobFailed,
        EventType::JobCancelled,
        EventType::TaskCreated,
        EventType::TaskAssigned,
        EventType::TaskStarted,
        EventType::TaskProgress,
        EventType::TaskSucceeded,
        EventType::TaskFailed,
        EventType::TaskRetrying,
        EventType::TaskRequeued,
        EventType::TaskCancelled,
        EventType::ItemCreated,
        EventType::ItemIntegrated,
        EventType::ItemRejected,
        EventType::ItemFailed,
        EventType::AgentConnected,
        EventType::AgentDraining,
        EventType::AgentDisconnected,
        EventType::AgentOffline,
        EventType::WebhookDisabled,
    ];

    /// The type named by its string form, e.g. `job.created`.
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|t| t.as_str() == s)
    }

    /// The distinct types named by `names`, in order, or the message that
    /// names the first unknown one and lists the known types (one rule for
    /// every filter: SSE's `type=`, the stream's `types`).
    pub fn parse_all<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<EventType>, String> {
        let mut types = Vec::new();
        for name in names {
            let kind = EventType::parse(name).ok_or_else(|| {
                let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                format!(
                    "unknown event type `{name}`; known types: {}",
                    known.join(", ")
                )
            })?;
            if !types.contains(&kind) {
                types.push(kind);
            }
        }
        Ok(types)
    }

    /// `job.completed`, `job.failed` and `job.cancelled`: nothing follows them for the job.
    pub const fn is_terminal_job_event(self) -> bool {
        matches!(
            self,
            EventType::JobCompleted | EventType::JobFailed | EventType::JobCancelled
        )
    }
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub job_id: Option<Uuid>,
    pub kind: EventType,
    pub payload: serde_json::Value,
}

/// The JSON Schema of an event's `type`: one of [`EventType::ALL`].
pub fn event_type_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    schemars::json_schema!({"type": "string", "enum": names})
}

/// A stored event with its global sequence number.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct Event {
    /// Global, strictly increasing.
    pub seq: i64,
    pub job_id: Option<Uuid>,
    /// One of the types in `docs/events.md`.
    #[serde(rename = "type")]
    #[schemars(schema_with = "event_type_schema")]
    pub kind: String,
    /// Depends on the type (`docs/events.md`).
    #[schema(value_type = Object)]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// The `x-request-id` of the HTTP request whose transaction appended it
    /// (absent for changes the hub or an agent session made on its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_listed_once_and_parses_back() {
        let mut seen = std::collections::HashSet::new();
        for t in EventType::ALL {
            assert!(seen.insert(t.as_str()), "{} listed twice", t.as_str());
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
        }
        // A variant missing from ALL would not parse; this one must.
        assert_eq!(
            EventType::parse("webhook.disabled"),
            Some(EventType::WebhookDisabled)
        );
        assert_eq!(EventType::parse("job.done"), None);
    }
}
