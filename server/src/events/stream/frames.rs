//! The WebSocket stream's frames as types, for their JSON Schema
//! (`docs/schema/stream-*.json`) and for the frames small enough to build
//! from them.
//!
//! The client's frames are parsed by hand in [`super::protocol::parse`],
//! which gives each mistake its own error code; [`ClientFrame`] describes
//! what that parser accepts. The hub's `event`, `agents` and `stats` frames
//! are spliced from text encoded once for every subscriber; their unit
//! tests validate what the builders produce against [`ServerFrame`]'s
//! schema, so the schema and the wire cannot drift apart.

use schemars::JsonSchema;
use serde::Serialize;

use super::snapshots::Stats;
use crate::domain::Event;
use crate::hub::LiveAgent;

/// A message a stream client sends (docs/events.md, "Client messages").
#[derive(Debug, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(dead_code)] // a description of what `protocol::parse` accepts
pub enum ClientFrame {
    /// Authenticates a connection opened without a token (the first message).
    Auth { token: String },
    /// Starts a subscription.
    Subscribe {
        /// Names the subscription on this connection: 1 to 128 characters.
        #[schemars(length(min = 1, max = 128))]
        id: String,
        /// `*`, `job:<uuid>`, `task:<uuid>`, `agents` or `stats`.
        #[schemars(regex(
            pattern = r"^(\*|agents|stats|(job|task):[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
        ))]
        topic: String,
        /// Replay the stored events after this `seq` first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<u64>,
        /// Only these event types (event topics); absent: every type.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        types: Option<Vec<String>>,
    },
    /// Ends a subscription.
    Unsubscribe { id: String },
}

/// A message the hub sends on the stream (docs/events.md, "Server messages").
#[derive(Debug, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    /// Answers an accepted `subscribe`.
    Subscribed {
        id: &'a str,
        topic: String,
        /// The newest event the hub had published.
        latest_seq: i64,
    },
    /// One event for subscription `id`.
    Event { id: &'a str, event: Event },
    /// The live agents, for an `agents` subscription.
    Agents { id: &'a str, agents: Vec<LiveAgent> },
    /// Queue and agent statistics, for a `stats` subscription.
    Stats {
        id: &'a str,
        #[serde(flatten)]
        stats: Stats,
    },
    /// The connection fell behind and is closed; subscribe again after
    /// `last_seq`.
    Lagged { last_seq: i64, message: String },
    /// A client message was refused.
    Error { code: &'a str, message: &'a str },
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;
    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::super::protocol::{self, Refusal, Topic};
    use super::super::snapshots::{self, AgentCounts, Stats};
    use crate::domain::{AgentHealth, AgentSessionState, Event};
    use crate::hub::{LiveAgent, QueueStats};
    use crate::wire_schema;

    /// Every frame the hub's builders produce is valid against the
    /// published schema, with no field the schema does not name.
    #[test]
    fn built_frames_match_the_schema() {
        let schema = wire_schema::documents()
            .into_iter()
            .find(|d| d.file == "stream-server-message.json")
            .expect("the stream schema")
            .schema;
        let validator = jsonschema::validator_for(&wire_schema::strict(&schema)).unwrap();

        let event = Event {
            seq: 9,
            job_id: Some(Uuid::now_v7()),
            kind: "job.created".into(),
            payload: json!({"status": "queued"}),
            created_at: Utc::now(),
            request_id: Some("req-1".into()),
        };
        let agent = LiveAgent {
            id: Uuid::now_v7(),
            name: "extractor-1".into(),
            session_state: AgentSessionState::Connected,
            health: AgentHealth::Active,
            in_flight: 1,
            capacity: 2,
            trust_score: 1.0,
            load: 0.5,
            last_heartbeat_at: Some(Utc::now()),
            capabilities: vec!["demo.extract".into()],
        };
        let stats = Stats {
            queues: BTreeMap::from([(
                "demo.extract".to_owned(),
                QueueStats {
                    depth: 3,
                    oldest_seconds: 1.5,
                },
            )]),
            agents: AgentCounts::default(),
            throughput: crate::hub::throughput::Throughput::default().last_second(Utc::now()),
            latest_seq: 9,
            at: "2026-11-22T15:00:01.000Z".into(),
        };
        let frames = [
            protocol::subscribed("s\"1", Topic::All, 7),
            protocol::event("s1", &serde_json::to_string(&event).unwrap()),
            snapshots::agents_frame("ag", &serde_json::to_string(&[agent]).unwrap()),
            stats.frame("st"),
            protocol::lagged(12),
            Refusal::new(protocol::code::INVALID_TOPIC, "unknown topic").frame(),
        ];
        for text in frames {
            let value: Value = serde_json::from_str(&text).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{text}: {errors:?}");
        }
        // And the check has teeth: a field the schema does not name fails.
        let mut bad: Value = serde_json::from_str(&protocol::lagged(1)).unwrap();
        bad["lastseq"] = json!(1);
        assert!(!validator.is_valid(&bad));
    }
}
