//! The agent wire protocol: JSON text frames over one WebSocket, tagged by `type`.
//!
//! These types are the single definition of the protocol, shared by the hub
//! and the SDK; `docs/protocol.md` describes them for agents written in other
//! languages. Unknown fields are ignored (so newer agents can talk to older
//! hubs); unknown `type`s and missing fields are refused with an `error` frame.
//!
//! Every message about a task carries `(task_id, attempt)`. The hub refuses a
//! message whose attempt is no longer current (fencing): an agent that lost
//! its task to another agent can never overwrite the other agent's work.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Every protocol version the hub accepts in `hello`.
pub const SUPPORTED_PROTOCOLS: &[u32] = &[1];

/// The reported health of an agent, sent in every heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentHealth {
    /// Fully able to work.
    #[default]
    Active,
    /// Working but impaired: gets work only when no active agent can take it.
    Degraded,
}

impl AgentHealth {
    pub const fn as_str(self) -> &'static str {
        match self {
            AgentHealth::Active => "active",
            AgentHealth::Degraded => "degraded",
        }
    }
}

// ---------------------------------------------------------------- agent → hub

/// A message from an agent to the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    Hello(Hello),
    Heartbeat(Heartbeat),
    Accept(TaskRef),
    Progress(Progress),
    Item(ItemMessage),
    Complete(Complete),
    Fail(Fail),
    Decline(Decline),
    Drain(Drain),
}

impl AgentMessage {
    /// The `type` tags an agent may send.
    pub const TYPES: &'static [&'static str] = &[
        "hello",
        "heartbeat",
        "accept",
        "progress",
        "item",
        "complete",
        "fail",
        "decline",
        "drain",
    ];
}

/// First message of a session: who the agent is and what it can do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Hello {
    /// Protocol version the agent speaks; must be in [`SUPPORTED_PROTOCOLS`].
    pub protocol: u32,
    /// The agent's name; must equal the `sub` of its token.
    pub name: String,
    /// The agent's own version string.
    #[serde(default)]
    pub version: String,
    #[serde(deserialize_with = "object::each")]
    pub capabilities: Vec<Capability>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Tasks this agent still runs from a previous session (after a reconnect).
    #[serde(default, deserialize_with = "object::each")]
    pub resume: Vec<TaskRef>,
}

/// One thing an agent can do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Capability {
    /// e.g. `requirements.extract`.
    pub name: String,
    #[serde(default)]
    pub version: String,
    /// JSON Schema the task input must match (`{}` accepts anything).
    #[serde(default = "empty_schema")]
    pub input_schema: serde_json::Value,
    /// JSON Schema the `complete` output must match.
    #[serde(default = "empty_schema")]
    pub output_schema: serde_json::Value,
    #[serde(default, deserialize_with = "object::one")]
    pub pricing: Pricing,
    /// Tasks of this capability the agent runs at once (at least 1).
    #[serde(default = "one")]
    pub max_concurrency: u32,
}

fn empty_schema() -> serde_json::Value {
    serde_json::json!({})
}

fn one() -> u32 {
    1
}

/// What a capability costs, used for the job reports' cost figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Pricing {
    /// Currency of the prices, e.g. `USD`.
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub per_1k_input_tokens: f64,
    #[serde(default)]
    pub per_1k_output_tokens: f64,
    #[serde(default)]
    pub per_request: f64,
}

/// Liveness and load, sent every `heartbeat_interval_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Heartbeat {
    /// The agent's clock, RFC 3339.
    pub timestamp: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    pub status: AgentHealth,
    #[serde(default)]
    pub uptime_ms: u64,
    /// 0.0 (idle) to 1.0 (saturated), as the agent sees it.
    #[serde(default)]
    pub load: f64,
    /// Free-form numbers for dashboards.
    #[serde(default)]
    pub metrics: BTreeMap<String, serde_json::Value>,
}

/// Names one attempt of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct TaskRef {
    pub task_id: Uuid,
    pub attempt: u32,
}

/// Still working: extends the task's lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Progress {
    pub task_id: Uuid,
    pub attempt: u32,
    /// 0 to 100, when known.
    #[serde(default)]
    pub percent: Option<f64>,
    #[serde(default)]
    pub message: Option<String>,
}

/// One result item (a requirement, in the reference pipeline); it becomes the
/// input of one task of the next stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ItemMessage {
    pub task_id: Uuid,
    pub attempt: u32,
    /// Chosen by the agent so a resent item is stored once.
    pub item_id: Uuid,
    /// The item's content: text, name, kind, tags, citations, ...
    pub data: serde_json::Value,
}

/// How a task that judged an item decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The input item passes (it becomes `integrated` at the last stage).
    #[default]
    Accepted,
    /// The input item is rejected, with `reason`.
    Rejected,
}

/// LLM usage of one task attempt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Usage {
    #[serde(default)]
    pub tokens_in: u64,
    #[serde(default)]
    pub tokens_out: u64,
    #[serde(default)]
    pub requests: u64,
    #[serde(default)]
    pub model: Option<String>,
}

/// The task is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Complete {
    pub task_id: Uuid,
    pub attempt: u32,
    /// Must match the capability's output schema.
    #[serde(default)]
    pub output: serde_json::Value,
    /// For tasks that work on an item: accept or reject it.
    #[serde(default)]
    pub verdict: Verdict,
    /// Why the item was rejected.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default, deserialize_with = "object::one")]
    pub usage: Usage,
}

/// The attempt failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Fail {
    pub task_id: Uuid,
    pub attempt: u32,
    pub error: String,
    /// `false` stops retrying at once.
    #[serde(default = "yes")]
    pub retryable: bool,
}

fn yes() -> bool {
    true
}

/// The agent will not run this task now; it goes back to the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Decline {
    pub task_id: Uuid,
    pub attempt: u32,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Take no new work; running work finishes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Drain {}

// ---------------------------------------------------------------- hub → agent

/// A message from the hub to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubMessage {
    Welcome(Welcome),
    Task(TaskAssignment),
    Cancel(Cancel),
    Ack(Ack),
    Error(ErrorMessage),
    Shutdown(Shutdown),
}

/// Answer to `hello`: the session is open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Welcome {
    pub protocol: u32,
    pub agent_id: Uuid,
    pub session_id: Uuid,
    pub heartbeat_interval_ms: u64,
    /// How long a running task's lease lasts without `progress`.
    pub lease_ms: u64,
    /// How long the agent has to `accept` a pushed task.
    pub accept_timeout_ms: u64,
    /// Of the tasks listed in `hello.resume`, those the agent still owns.
    #[serde(default)]
    pub resumed: Vec<TaskRef>,
    /// The other live nodes of the hub's cluster (their base URLs, e.g.
    /// `http://10.0.0.2:8000`): where to reconnect if this one goes away.
    /// Empty for a single hub.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hubs: Vec<String>,
}

/// Work for the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskAssignment {
    pub task_id: Uuid,
    pub attempt: u32,
    pub job_id: Uuid,
    pub capability: String,
    /// 0-based pipeline stage.
    pub stage: u32,
    /// Stage 1: `{prompt, context, document}`; later stages: `{prompt, context, item}`.
    pub input: serde_json::Value,
    /// Accept by this time or the task goes to another agent.
    pub accept_by: chrono::DateTime<chrono::Utc>,
    /// Ties log lines of hub and agent together.
    pub correlation_id: String,
}

/// Stop working on a task (its job was cancelled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cancel {
    pub task_id: Uuid,
    pub attempt: u32,
    pub reason: String,
}

/// A `complete`, `fail` or `decline` is durably recorded (items are written
/// with their attempt's `complete`; `item_id` is reserved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Ack {
    pub task_id: Uuid,
    pub attempt: u32,
    /// The `type` of the message acknowledged.
    pub of: String,
    /// For `item`: the item id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<Uuid>,
}

/// Something the agent sent was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorMessage {
    /// Machine-readable, e.g. `stale_attempt`, `invalid_message`.
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<Uuid>,
}

/// The hub is going away (or removing this agent); reconnect later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Shutdown {
    pub reason: String,
    #[serde(default)]
    pub reconnect_after_ms: Option<u64>,
    /// Other live nodes of the cluster to reconnect to instead (base URLs);
    /// empty when there are none (come back to this one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hubs: Vec<String>,
}

/// Parses an agent's frame with an error message that names the problem:
/// not JSON, no `type`, an unknown `type`, or a missing/mistyped field.
pub fn parse_agent_message(text: &str) -> Result<AgentMessage, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the frame is not valid JSON: {e}"))?;
    let kind = match value.get("type") {
        Some(serde_json::Value::String(kind)) => kind.clone(),
        Some(_) => return Err("`type` must be a string".into()),
        None => {
            return Err(format!(
                "the message has no `type`; expected one of: {}",
                AgentMessage::TYPES.join(", ")
            ));
        }
    };
    if !AgentMessage::TYPES.contains(&kind.as_str()) {
        return Err(format!(
            "unknown message type `{kind}`; expected one of: {}",
            AgentMessage::TYPES.join(", ")
        ));
    }
    fn typed<T: serde::de::DeserializeOwned>(
        kind: &str,
        value: serde_json::Value,
        wrap: fn(T) -> AgentMessage,
    ) -> Result<AgentMessage, String> {
        serde_path_to_error::deserialize(value)
            .map(wrap)
            .map_err(|e| match e.path().to_string() {
                path if path == "." => format!("`{kind}` message is not valid: {}", e.inner()),
                path => format!("`{kind}` message is not valid at `{path}`: {}", e.inner()),
            })
    }
    // Each kind is read as its own struct so a problem names its field.
    match kind.as_str() {
        "hello" => typed(&kind, value, AgentMessage::Hello),
        "heartbeat" => typed(&kind, value, AgentMessage::Heartbeat),
        "accept" => typed(&kind, value, AgentMessage::Accept),
        "progress" => typed(&kind, value, AgentMessage::Progress),
        "item" => typed(&kind, value, AgentMessage::Item),
        "complete" => typed(&kind, value, AgentMessage::Complete),
        "fail" => typed(&kind, value, AgentMessage::Fail),
        "decline" => typed(&kind, value, AgentMessage::Decline),
        _ => typed(&kind, value, AgentMessage::Drain),
    }
}

/// Nested structs of the protocol are JSON objects. Left to itself serde
/// also reads a struct from an array of its fields in order, so
/// `"usage": [1]` would pass as `tokens_in: 1`; these refuse that.
mod object {
    use serde::de::{DeserializeOwned, Error};
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    fn kind(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }

    /// `at` names the element of a list, so a problem inside says where.
    fn from<T: DeserializeOwned, E: Error>(v: Value, at: Option<usize>) -> Result<T, E> {
        let at = at.map(|i| format!("[{i}]")).unwrap_or_default();
        if !v.is_object() {
            let found = kind(&v);
            return Err(E::custom(
                format!("{at} expected an object, found {found}")
                    .trim_start()
                    .to_owned(),
            ));
        }
        serde_path_to_error::deserialize(v).map_err(|e| match e.path().to_string() {
            path if path == "." => E::custom(format!("{at} {}", e.inner()).trim_start().to_owned()),
            path => E::custom(format!("in `{at}{path}`: {}", e.inner())),
        })
    }

    pub fn one<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
        from(Value::deserialize(d)?, None)
    }

    pub fn each<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
        let list = Vec::<Value>::deserialize(d)?;
        list.into_iter()
            .enumerate()
            .map(|(i, v)| from(v, Some(i)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_structs_must_be_objects_and_problems_name_the_field() {
        let id = Uuid::nil();
        let bad = [
            (
                format!(r#"{{"type":"complete","task_id":"{id}","attempt":1,"usage":[1]}}"#),
                "`usage`",
            ),
            (
                format!(r#"{{"type":"complete","task_id":"{id}","attempt":1,"usage":{{"tokens_in":"x"}}}}"#),
                "usage",
            ),
            (
                r#"{"type":"hello","protocol":1,"name":"a","capabilities":[["x"]]}"#.to_owned(),
                "`capabilities`",
            ),
            (
                r#"{"type":"hello","protocol":1,"name":"a","capabilities":[{"name":"x","pricing":[1]}]}"#.to_owned(),
                "pricing",
            ),
            (
                format!(r#"{{"type":"hello","protocol":1,"name":"a","capabilities":[],"resume":[["{id}",1]]}}"#),
                "`resume`",
            ),
            (
                format!(r#"{{"type":"accept","task_id":"{id}","attempt":"one"}}"#),
                "`attempt`",
            ),
        ];
        for (text, field) in bad {
            let e = parse_agent_message(&text).expect_err(&text);
            assert!(e.contains(field), "{text}: {e}");
        }
        let ok = format!(
            r#"{{"type":"complete","task_id":"{id}","attempt":1,"usage":{{"tokens_in":3}}}}"#
        );
        let Ok(AgentMessage::Complete(c)) = parse_agent_message(&ok) else {
            panic!("{ok}")
        };
        assert_eq!(c.usage.tokens_in, 3);
    }

    #[test]
    fn round_trips_and_tags() {
        let msg = AgentMessage::Accept(TaskRef {
            task_id: Uuid::nil(),
            attempt: 2,
        });
        let text = serde_json::to_string(&msg).unwrap();
        assert_eq!(
            text,
            r#"{"type":"accept","task_id":"00000000-0000-0000-0000-000000000000","attempt":2}"#
        );
        assert_eq!(parse_agent_message(&text).unwrap(), msg);
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(
            parse_agent_message("{")
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(parse_agent_message("{}").unwrap_err().contains("no `type`"));
        assert!(
            parse_agent_message(r#"{"type":"dance"}"#)
                .unwrap_err()
                .contains("unknown message type `dance`")
        );
        let e = parse_agent_message(
            r#"{"type":"complete","task_id":"00000000-0000-0000-0000-000000000000"}"#,
        )
        .unwrap_err();
        assert!(e.contains("`complete`") && e.contains("attempt"), "{e}");
    }

    #[test]
    fn defaults_are_filled_in() {
        let hello = parse_agent_message(
            r#"{"type":"hello","protocol":1,"name":"a","capabilities":[{"name":"x"}]}"#,
        )
        .unwrap();
        let AgentMessage::Hello(h) = hello else {
            panic!()
        };
        assert_eq!(h.capabilities[0].max_concurrency, 1);
        assert_eq!(h.capabilities[0].input_schema, serde_json::json!({}));
    }

    mod fuzz {
        use proptest::prelude::*;
        use serde_json::Value;

        use super::super::*;

        fn text() -> impl Strategy<Value = String> {
            prop_oneof![".*", "[a-z_]{0,10}", Just("\0".to_owned())]
        }

        fn any_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                text().prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 24, 5, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                    prop::collection::btree_map(text(), inner, 0..5)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn any_text_is_a_message_or_a_reason(raw in ".*") {
                if let Err(reason) = parse_agent_message(&raw) {
                    prop_assert!(!reason.is_empty());
                }
            }

            /// Every message type with arbitrary fields: decoded, or refused
            /// with a reason; never a panic.
            #[test]
            fn any_fields_of_any_type_decode_or_are_refused(
                kind in prop::sample::select(AgentMessage::TYPES),
                fields in prop::collection::btree_map(
                    prop_oneof![
                        Just("task_id".to_owned()), Just("attempt".to_owned()),
                        Just("output".to_owned()), Just("usage".to_owned()),
                        Just("capabilities".to_owned()), Just("resume".to_owned()),
                        Just("data".to_owned()), Just("item_id".to_owned()), text()
                    ],
                    any_json(),
                    0..8,
                ),
            ) {
                let mut frame: serde_json::Map<String, Value> = fields.into_iter().collect();
                frame.insert("type".into(), Value::from(kind));
                if let Err(reason) = parse_agent_message(&Value::Object(frame).to_string()) {
                    prop_assert!(reason.contains(kind), "{}", reason);
                }
            }

            #[test]
            fn valid_frames_round_trip(
                attempt in any::<u32>(),
                output in any_json(),
                tokens in any::<u64>(),
                reason in proptest::option::of(text()),
            ) {
                let message = AgentMessage::Complete(Complete {
                    task_id: Uuid::now_v7(),
                    attempt,
                    output,
                    verdict: Verdict::Rejected,
                    reason,
                    usage: Usage { tokens_in: tokens, ..Usage::default() },
                });
                let text = serde_json::to_string(&message).unwrap();
                prop_assert_eq!(parse_agent_message(&text).unwrap(), message);
            }
        }
    }
}
