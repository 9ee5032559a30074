//! The WebSocket stream's messages (see `docs/events.md`): parsing what a
//! client sends, with an error code and a clear message for everything that
//! is wrong, and rendering what the hub sends.

use serde_json::Value;
use uuid::Uuid;

use crate::domain::EventType;

use super::frames::ServerFrame;

/// Longest subscription id accepted.
pub const MAX_ID_LEN: usize = 128;

/// Error codes of `{"type":"error"}` frames, defined once.
pub mod code {
    /// Not JSON, not an object, or a field of the wrong shape.
    pub const INVALID_MESSAGE: &str = "invalid_message";
    /// `type` is not `auth`, `subscribe` or `unsubscribe`.
    pub const UNKNOWN_TYPE: &str = "unknown_type";
    pub const INVALID_TOPIC: &str = "invalid_topic";
    pub const INVALID_AFTER: &str = "invalid_after";
    /// `job:<uuid>` names a job that does not exist.
    pub const UNKNOWN_JOB: &str = "unknown_job";
    /// `task:<uuid>` names a task that does not exist.
    pub const UNKNOWN_TASK: &str = "unknown_task";
    pub const DUPLICATE_SUBSCRIPTION: &str = "duplicate_subscription";
    pub const UNKNOWN_SUBSCRIPTION: &str = "unknown_subscription";
    pub const TOO_MANY_SUBSCRIPTIONS: &str = "too_many_subscriptions";
    pub const ALREADY_AUTHENTICATED: &str = "already_authenticated";
    /// Authentication by first message failed (the connection closes).
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// `types` names something that is not an event type.
    pub const UNKNOWN_EVENT_TYPE: &str = "unknown_event_type";
    /// The log could not be read for a replay; subscribe again.
    pub const REPLAY_FAILED: &str = "replay_failed";
}

/// What a subscription follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Every event.
    All,
    /// One job's events.
    Job(Uuid),
    /// One task's events (those whose payload names it).
    Task(Uuid),
    /// Snapshots of the live agents.
    Agents,
    /// Queue and agent statistics, every second.
    Stats,
}

impl Topic {
    pub fn parse(raw: &str) -> Result<Topic, String> {
        match raw {
            "*" => Ok(Topic::All),
            "agents" => Ok(Topic::Agents),
            "stats" => Ok(Topic::Stats),
            other => {
                let (kind, id, topic): (&str, &str, fn(Uuid) -> Topic) = match (
                    other.strip_prefix("job:"),
                    other.strip_prefix("task:"),
                ) {
                    (Some(id), _) => ("job", id, Topic::Job),
                    (_, Some(id)) => ("task", id, Topic::Task),
                    _ => {
                        return Err(format!(
                            "unknown topic `{other}`; topics are `*`, `job:<uuid>`, `task:<uuid>`, `agents` and `stats`"
                        ));
                    }
                };
                Uuid::parse_str(id).map(topic).map_err(|_| {
                    format!("`{other}` names no {kind}: expected `{kind}:<uuid>`, e.g. {kind}:0190b8e2-7c4d-7a3e-9f00-1234567890ab")
                })
            }
        }
    }

    pub fn name(self) -> String {
        match self {
            Topic::All => "*".into(),
            Topic::Job(id) => format!("job:{id}"),
            Topic::Task(id) => format!("task:{id}"),
            Topic::Agents => "agents".into(),
            Topic::Stats => "stats".into(),
        }
    }
}

/// A client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    Auth {
        token: String,
    },
    Subscribe {
        id: String,
        topic: Topic,
        after: Option<i64>,
        /// Only these event types (empty: every type).
        types: Vec<EventType>,
    },
    Unsubscribe {
        id: String,
    },
}

/// Why a client message was refused: an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// The `error` frame.
    pub fn frame(&self) -> String {
        frame(&ServerFrame::Error {
            code: self.code,
            message: &self.message,
        })
    }
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<ClientMessage, Refusal> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Refusal::new(
            code::INVALID_MESSAGE,
            format!("messages are JSON objects with a `type`; this one is not JSON: {e}"),
        )
    })?;
    let Some(object) = value.as_object() else {
        return Err(Refusal::new(
            code::INVALID_MESSAGE,
            "messages are JSON objects with a `type`",
        ));
    };
    let kind = object.get("type").and_then(Value::as_str).ok_or_else(|| {
        Refusal::new(
            code::INVALID_MESSAGE,
            "the message has no `type`; send `auth`, `subscribe` or `unsubscribe`",
        )
    })?;
    let text_field = |name: &str| -> Result<String, Refusal> {
        object
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                Refusal::new(
                    code::INVALID_MESSAGE,
                    format!("`{kind}` needs `{name}` as a string"),
                )
            })
    };
    match kind {
        "auth" => Ok(ClientMessage::Auth {
            token: text_field("token")?,
        }),
        "subscribe" => {
            let id = subscription_id(text_field("id")?)?;
            let topic = Topic::parse(&text_field("topic")?)
                .map_err(|m| Refusal::new(code::INVALID_TOPIC, m))?;
            let after = match object.get("after") {
                None | Some(Value::Null) => None,
                Some(raw) => Some(parse_after(raw)?),
            };
            let types = match object.get("types") {
                None | Some(Value::Null) => Vec::new(),
                Some(raw) => parse_types(raw)?,
            };
            Ok(ClientMessage::Subscribe {
                id,
                topic,
                after,
                types,
            })
        }
        "unsubscribe" => Ok(ClientMessage::Unsubscribe {
            id: text_field("id")?,
        }),
        other => Err(Refusal::new(
            code::UNKNOWN_TYPE,
            format!("unknown message type `{other}`; send `auth`, `subscribe` or `unsubscribe`"),
        )),
    }
}

fn subscription_id(id: String) -> Result<String, Refusal> {
    if id.is_empty() || id.chars().count() > MAX_ID_LEN {
        return Err(Refusal::new(
            code::INVALID_MESSAGE,
            format!("`id` must be 1 to {MAX_ID_LEN} characters"),
        ));
    }
    Ok(id)
}

/// `types`: an array of event type names, e.g. `["task.failed", "job.failed"]`.
fn parse_types(raw: &Value) -> Result<Vec<EventType>, Refusal> {
    let names: Option<Vec<&str>> = raw
        .as_array()
        .and_then(|names| names.iter().map(Value::as_str).collect());
    let Some(names) = names else {
        return Err(Refusal::new(
            code::INVALID_MESSAGE,
            format!(
                "`types` must be an array of event type names such as [\"task.failed\"], not {raw}"
            ),
        ));
    };
    EventType::parse_all(names).map_err(|m| Refusal::new(code::UNKNOWN_EVENT_TYPE, m))
}

fn parse_after(raw: &Value) -> Result<i64, Refusal> {
    raw.as_u64()
        .and_then(|n| i64::try_from(n).ok())
        .ok_or_else(|| {
            Refusal::new(
                code::INVALID_AFTER,
                format!(
                    "`after` must be a non-negative integer (the seq of the last event you have), not {raw}"
                ),
            )
        })
}

/// A frame's text (these frames hold only strings and integers, which
/// always encode).
fn frame(frame: &ServerFrame<'_>) -> String {
    serde_json::to_string(frame).unwrap_or_default()
}

/// `subscribed`.
pub fn subscribed(id: &str, topic: Topic, latest_seq: i64) -> String {
    frame(&ServerFrame::Subscribed {
        id,
        topic: topic.name(),
        latest_seq,
    })
}

/// `event`: the event's JSON is spliced in as encoded once for everyone.
pub fn event(id: &str, event_json: &str) -> String {
    let id = Value::from(id).to_string();
    format!(r#"{{"type":"event","id":{id},"event":{event_json}}}"#)
}

/// `lagged`.
pub fn lagged(last_seq: i64) -> String {
    frame(&ServerFrame::Lagged {
        last_seq,
        message: format!(
            "this connection fell too far behind the event stream and is closed; reconnect and subscribe again with after = {last_seq}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn subscribe_messages_parse_or_name_the_problem() {
        let job = Uuid::now_v7();
        assert_eq!(
            parse(&format!(
                r#"{{"type":"subscribe","id":"a","topic":"job:{job}","after":7}}"#
            )),
            Ok(ClientMessage::Subscribe {
                id: "a".into(),
                topic: Topic::Job(job),
                after: Some(7),
                types: vec![]
            })
        );
        assert_eq!(
            parse(r#"{"type":"subscribe","id":"a","topic":"*"}"#),
            Ok(ClientMessage::Subscribe {
                id: "a".into(),
                topic: Topic::All,
                after: None,
                types: vec![]
            })
        );
        assert_eq!(
            parse(
                r#"{"type":"subscribe","id":"a","topic":"*","types":["task.failed","job.failed","task.failed"]}"#
            ),
            Ok(ClientMessage::Subscribe {
                id: "a".into(),
                topic: Topic::All,
                after: None,
                types: vec![EventType::TaskFailed, EventType::JobFailed]
            })
        );
        let refused = |text: &str| parse(text).err().map(|r| r.code);
        assert_eq!(
            refused(r#"{"type":"subscribe","id":"a","topic":"*","types":["task.exploded"]}"#),
            Some(code::UNKNOWN_EVENT_TYPE)
        );
        assert_eq!(
            refused(r#"{"type":"subscribe","id":"a","topic":"*","types":"task.failed"}"#),
            Some(code::INVALID_MESSAGE)
        );
        assert_eq!(refused("nope"), Some(code::INVALID_MESSAGE));
        assert_eq!(refused("[1]"), Some(code::INVALID_MESSAGE));
        assert_eq!(refused(r#"{"type":"hello"}"#), Some(code::UNKNOWN_TYPE));
        assert_eq!(
            refused(r#"{"type":"subscribe","id":"a","topic":"jobs"}"#),
            Some(code::INVALID_TOPIC)
        );
        assert_eq!(
            refused(r#"{"type":"subscribe","id":"a","topic":"job:42"}"#),
            Some(code::INVALID_TOPIC)
        );
        assert_eq!(
            refused(r#"{"type":"subscribe","id":"a","topic":"task:42"}"#),
            Some(code::INVALID_TOPIC)
        );
        let task = Uuid::now_v7();
        assert_eq!(Topic::parse(&format!("task:{task}")), Ok(Topic::Task(task)));
        assert_eq!(Topic::Task(task).name(), format!("task:{task}"));
        for after in ["-1", "1.5", "\"3\"", "true"] {
            assert_eq!(
                refused(&format!(
                    r#"{{"type":"subscribe","id":"a","topic":"*","after":{after}}}"#
                )),
                Some(code::INVALID_AFTER),
                "{after}"
            );
        }
        assert_eq!(
            refused(r#"{"type":"subscribe","id":"","topic":"*"}"#),
            Some(code::INVALID_MESSAGE)
        );
    }

    #[test]
    fn event_frames_splice_the_shared_json() {
        let frame = event("s\"1", r#"{"seq":3}"#);
        let v: Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(
            v,
            json!({"type": "event", "id": "s\"1", "event": {"seq": 3}})
        );
    }

    mod fuzz {
        use proptest::prelude::*;
        use serde_json::json;

        use super::super::{ClientMessage, parse};

        proptest! {
            #[test]
            fn any_text_gets_a_message_or_a_refusal(text in crate::fuzz_support::text()) {
                let _ = parse(&text);
            }

            #[test]
            fn any_json_gets_a_message_or_a_refusal(value in crate::fuzz_support::json()) {
                let _ = parse(&value.to_string());
            }

            #[test]
            fn subscribe_resumes_after_any_seq(after in any::<u64>(), id in "[a-z0-9]{1,16}") {
                let frame = json!({"type": "subscribe", "id": id, "topic": "*", "after": after});
                match parse(&frame.to_string()) {
                    Ok(ClientMessage::Subscribe { after: Some(got), .. }) => {
                        prop_assert_eq!(got as u64, after);
                    }
                    Ok(other) => prop_assert!(false, "{:?}", other),
                    Err(refusal) => prop_assert!(after > i64::MAX as u64, "{}", refusal.frame()),
                }
            }
        }
    }
}
