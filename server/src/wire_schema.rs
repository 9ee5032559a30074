//! JSON Schema of every message on the wire, generated from the Rust types
//! that send or read them (`schemars`), so other languages can validate and
//! generate code without reading Rust.
//!
//! The documents are checked in under `docs/schema/`; the test suite fails
//! when the types and the files drift apart (regenerate with
//! `SWITCHYARD_BLESS_SCHEMA=1 cargo nextest run -E 'test(wire_schema)'`),
//! and validates every JSON example in `docs/protocol.md` and
//! `docs/events.md` against them.

use schemars::{JsonSchema, generate::SchemaSettings};
use serde_json::Value;
use switchyard_agent::protocol::{AgentMessage, HubMessage};

use crate::domain::Event;
use crate::events::stream::frames::{ClientFrame, ServerFrame};
use crate::webhooks::matching::WebhookBody;

/// One schema document: its file name under `docs/schema/` and its JSON.
pub struct Document {
    pub file: &'static str,
    pub schema: Value,
}

/// Every document, in a fixed order.
pub fn documents() -> Vec<Document> {
    vec![
        document::<AgentMessage>(
            "agent-message.json",
            "A message an agent sends to the hub (docs/protocol.md)",
        ),
        document::<HubMessage>(
            "hub-message.json",
            "A message the hub sends to an agent (docs/protocol.md)",
        ),
        document::<Event>(
            "event.json",
            "An event: in the REST API, SSE `data`, and stream `event` frames (docs/events.md)",
        ),
        document::<ClientFrame>(
            "stream-client-message.json",
            "A message a client sends on the WebSocket event stream (docs/events.md)",
        ),
        document::<ServerFrame<'static>>(
            "stream-server-message.json",
            "A message the hub sends on the WebSocket event stream (docs/events.md)",
        ),
        document::<WebhookBody<'static>>(
            "webhook-payload.json",
            "The body of a webhook request (docs/webhooks.md)",
        ),
    ]
}

fn document<T: JsonSchema>(file: &'static str, description: &str) -> Document {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Value::Object(map) = &mut schema {
        map.insert("description".into(), Value::from(description));
    }
    Document { file, schema }
}

/// The same schema with `additionalProperties: false` on every object that
/// lists its properties and says nothing about others: what the docs'
/// examples are checked against, so a misspelt field fails. (On the wire,
/// unknown fields are ignored, so newer peers can talk to older ones.)
///
/// A tagged enum's variant is `{"$ref": <struct>, "properties": {"type"}}`;
/// `additionalProperties` would not see the struct's properties through the
/// `$ref`, so such a variant gets the struct's properties inlined first.
pub fn strict(schema: &Value) -> Value {
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    tighten(schema, &defs)
}

fn tighten(schema: &Value, defs: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: serde_json::Map<String, Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), tighten(v, defs)))
                .collect();
            let target = out
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
                .map(str::to_owned);
            if let (Some(name), true) = (target, out.contains_key("properties")) {
                let def = tighten(&defs[name.as_str()], defs);
                out.remove("$ref");
                for key in ["properties", "required"] {
                    merge(&mut out, key, def.get(key));
                }
            }
            if out.contains_key("properties") && !out.contains_key("additionalProperties") {
                out.insert("additionalProperties".into(), Value::Bool(false));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| tighten(i, defs)).collect()),
        other => other.clone(),
    }
}

/// Adds `from`'s properties (an object) or required names (an array) to
/// `into[key]`.
fn merge(into: &mut serde_json::Map<String, Value>, key: &str, from: Option<&Value>) {
    match (into.get_mut(key), from) {
        (Some(Value::Object(have)), Some(Value::Object(more))) => {
            have.extend(more.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        (Some(Value::Array(have)), Some(Value::Array(more))) => have.extend(more.iter().cloned()),
        (None, Some(more)) => {
            into.insert(key.into(), more.clone());
        }
        _ => {}
    }
}
