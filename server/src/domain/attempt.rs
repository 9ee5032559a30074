//! A task's attempts, read back from its events.
//!
//! The store keeps one row per task (its latest attempt); what each earlier
//! hand-out did is in the event log, which is append-only and already holds
//! every fact an operator asks about: who got the task (`task.assigned`),
//! when they started (`task.started`), and how it ended (`task.succeeded`,
//! `task.failed`, `task.retrying`, `task.requeued`, `task.cancelled`). Every
//! task event carries the attempt number it is about, so this module only
//! groups them; nothing is stored twice.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Event, EventType};

/// How an attempt stands or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Pushed to the agent, not accepted yet.
    Assigned,
    /// The agent accepted it and works on it.
    Running,
    Succeeded,
    /// Failed for good.
    Failed,
    /// Failed; the task runs again later.
    Retrying,
    /// Given back without a failure (declined, not accepted in time, the
    /// agent left): the task runs again.
    Requeued,
    Cancelled,
}

/// One hand-out of a task to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    /// 1 for the first hand-out (the fencing token agents send back).
    pub attempt: i32,
    pub agent_id: Option<Uuid>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: AttemptOutcome,
    /// The agent's error (failed, retrying) or why the task was given back (requeued).
    pub error: Option<String>,
    /// `accepted` or `rejected`, for a task that judged an item.
    pub verdict: Option<String>,
    /// What the agent reported it used (tokens, requests), on the attempt that succeeded.
    #[schema(value_type = Option<Object>)]
    pub usage: Option<serde_json::Value>,
}

/// The attempts of one task, oldest first, from its events (any order) and
/// the usage stored with the task (which belongs to the attempt that
/// succeeded).
pub fn attempts_of(events: &[Event], usage: Option<serde_json::Value>) -> Vec<Attempt> {
    let mut events: Vec<&Event> = events.iter().collect();
    events.sort_by_key(|e| e.seq);
    let mut attempts: Vec<Attempt> = Vec::new();
    for event in events {
        let Some(kind) = EventType::parse(&event.kind) else {
            continue;
        };
        let p = &event.payload;
        let Some(n) = p.get("attempt").and_then(|a| a.as_i64()) else {
            continue;
        };
        let Ok(n) = i32::try_from(n) else { continue };
        if n < 1 || kind == EventType::TaskCreated {
            continue;
        }
        let text = |key: &str| p.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        let agent = p
            .get("agent_id")
            .and_then(|v| v.as_str())
            .and_then(|s| Uuid::parse_str(s).ok());
        let at = Some(event.created_at);
        if attempts.last().is_none_or(|a| a.attempt != n) {
            attempts.push(Attempt {
                attempt: n,
                agent_id: agent,
                assigned_at: None,
                started_at: None,
                finished_at: None,
                outcome: AttemptOutcome::Assigned,
                error: None,
                verdict: None,
                usage: None,
            });
        }
        let Some(current) = attempts.last_mut() else {
            continue;
        };
        if current.agent_id.is_none() {
            current.agent_id = agent;
        }
        let mut finish = |outcome: AttemptOutcome, error: Option<String>| {
            current.outcome = outcome;
            current.finished_at = at;
            current.error = error;
        };
        match kind {
            EventType::TaskAssigned => {
                current.assigned_at = at;
                current.outcome = AttemptOutcome::Assigned;
            }
            EventType::TaskStarted => {
                current.started_at = at;
                current.outcome = AttemptOutcome::Running;
            }
            EventType::TaskSucceeded => {
                finish(AttemptOutcome::Succeeded, None);
                current.verdict = text("verdict");
                current.usage = usage.clone();
            }
            EventType::TaskFailed => finish(AttemptOutcome::Failed, text("error")),
            EventType::TaskRetrying => finish(AttemptOutcome::Retrying, text("error")),
            EventType::TaskRequeued => finish(AttemptOutcome::Requeued, text("reason")),
            EventType::TaskCancelled => finish(AttemptOutcome::Cancelled, None),
            _ => {}
        }
    }
    attempts
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ev(seq: i64, kind: EventType, payload: serde_json::Value) -> Event {
        Event {
            seq,
            job_id: None,
            kind: kind.as_str().to_owned(),
            payload,
            created_at: Utc::now(),
            request_id: None,
        }
    }

    #[test]
    fn attempts_group_events_by_attempt_number() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let events = vec![
            ev(1, EventType::TaskCreated, json!({"attempt": 0})),
            ev(
                2,
                EventType::TaskAssigned,
                json!({"attempt": 1, "agent_id": a}),
            ),
            ev(
                3,
                EventType::TaskRequeued,
                json!({"attempt": 1, "agent_id": a, "reason": "declined"}),
            ),
            ev(
                4,
                EventType::TaskAssigned,
                json!({"attempt": 2, "agent_id": b}),
            ),
            ev(
                6,
                EventType::TaskRetrying,
                json!({"attempt": 2, "agent_id": b, "error": "boom"}),
            ),
            ev(
                5,
                EventType::TaskStarted,
                json!({"attempt": 2, "agent_id": b}),
            ),
            ev(
                7,
                EventType::TaskAssigned,
                json!({"attempt": 3, "agent_id": a}),
            ),
            ev(
                8,
                EventType::TaskStarted,
                json!({"attempt": 3, "agent_id": a}),
            ),
            ev(
                9,
                EventType::TaskSucceeded,
                json!({"attempt": 3, "agent_id": a, "verdict": "accepted"}),
            ),
        ];
        let usage = json!({"tokens_in": 10});
        let got = attempts_of(&events, Some(usage.clone()));
        let outcomes: Vec<_> = got.iter().map(|a| (a.attempt, a.outcome)).collect();
        assert_eq!(
            outcomes,
            [
                (1, AttemptOutcome::Requeued),
                (2, AttemptOutcome::Retrying),
                (3, AttemptOutcome::Succeeded)
            ]
        );
        assert_eq!(got[0].error.as_deref(), Some("declined"));
        assert_eq!(got[1].agent_id, Some(b));
        assert!(got[1].started_at.is_some(), "events are taken in seq order");
        assert_eq!(got[1].error.as_deref(), Some("boom"));
        assert_eq!(got[2].verdict.as_deref(), Some("accepted"));
        assert_eq!(got[2].usage, Some(usage));
        assert_eq!(
            got[1].usage, None,
            "usage belongs to the attempt that succeeded"
        );
    }

    #[test]
    fn a_running_attempt_has_no_end() {
        let events = vec![
            ev(1, EventType::TaskAssigned, json!({"attempt": 1})),
            ev(2, EventType::TaskStarted, json!({"attempt": 1})),
            ev(3, EventType::TaskProgress, json!({"attempt": 1})),
        ];
        let got = attempts_of(&events, None);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].outcome, AttemptOutcome::Running);
        assert_eq!(got[0].finished_at, None);
    }
}
