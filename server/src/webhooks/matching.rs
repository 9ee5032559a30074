//! From events to deliveries: which subscriptions an event goes to, and the
//! exact body that is signed and sent. Used by the live tailer and by replays.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::model::{NewDelivery, Webhook};
use crate::domain::Event;
use crate::store::{DynStore, StoreError};

/// The Standard Webhooks body: `{"type", "timestamp", "data"}`; `data` is the
/// event's payload plus its `seq` and `job_id`.
pub fn render_body(event: &Event) -> String {
    let mut payload = match &event.payload {
        Value::Object(map) => map.clone(),
        other => {
            let mut map = serde_json::Map::new();
            map.insert("payload".into(), other.clone());
            map
        }
    };
    // `seq` and `job_id` are the event's own (a payload naming its job says
    // the same); each key once.
    payload.remove("seq");
    payload.remove("job_id");
    let body = WebhookBody {
        kind: &event.kind,
        timestamp: event
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        data: WebhookData {
            seq: event.seq,
            job_id: event.job_id,
            payload,
        },
    };
    // Strings, integers and JSON values: always encodes.
    serde_json::to_string(&body).unwrap_or_default()
}

/// The body of every webhook request (`docs/schema/webhook-payload.json`).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct WebhookBody<'a> {
    /// The event's type.
    #[serde(rename = "type")]
    #[schemars(schema_with = "crate::domain::event::event_type_schema")]
    pub kind: &'a str,
    /// When the event happened, RFC 3339 with microseconds.
    #[schemars(with = "chrono::DateTime<chrono::Utc>")]
    pub timestamp: String,
    pub data: WebhookData,
}

/// A webhook's `data`: the event's payload (per type, `docs/events.md`)
/// plus its position in the log and its job.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct WebhookData {
    /// The event's global sequence number.
    pub seq: i64,
    /// Null for events without a job.
    pub job_id: Option<Uuid>,
    #[serde(flatten)]
    pub payload: serde_json::Map<String, Value>,
}

/// Does any subscription filter on a job label (then the events' job labels
/// are needed)?
pub fn needs_labels<'a>(webhooks: impl IntoIterator<Item = &'a Webhook>) -> bool {
    webhooks.into_iter().any(|w| w.label.is_some())
}

/// The labels of the events' jobs, read only when a filter needs them.
pub async fn labels_for(
    store: &DynStore,
    events: &[Event],
    needed: bool,
) -> Result<HashMap<Uuid, Vec<String>>, StoreError> {
    if !needed {
        return Ok(HashMap::new());
    }
    let mut jobs: Vec<Uuid> = events.iter().filter_map(|e| e.job_id).collect();
    jobs.sort_unstable();
    jobs.dedup();
    store.job_labels(&jobs).await
}

/// One delivery per event and matching subscription, in event order.
/// `live` applies the subscriptions' state (enabled, `since_seq`); a replay
/// (`live = false`) only applies their filters.
pub fn deliveries_for(
    events: &[Event],
    webhooks: &[&Webhook],
    labels: &HashMap<Uuid, Vec<String>>,
    generation: i32,
    live: bool,
) -> Vec<NewDelivery> {
    let mut out = Vec::new();
    for event in events {
        let job_labels = event
            .job_id
            .map(|id| labels.get(&id).map(Vec::as_slice).unwrap_or_default());
        let mut body = None;
        for webhook in webhooks {
            let matches = if live {
                webhook.matches(event.seq, &event.kind, job_labels)
            } else {
                webhook.accepts(&event.kind, job_labels)
            };
            if !matches {
                continue;
            }
            let body = body.get_or_insert_with(|| render_body(event)).clone();
            out.push(NewDelivery {
                id: Uuid::now_v7(),
                webhook_id: webhook.id,
                event_seq: event.seq,
                generation,
                event_type: event.kind.clone(),
                job_id: event.job_id,
                request_id: event.request_id.clone(),
                body,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use serde_json::json;

    use super::*;
    use crate::webhooks::model::SigningKeys;

    fn event(seq: i64, kind: &str, job: Option<Uuid>) -> Event {
        Event {
            seq,
            job_id: job,
            kind: kind.into(),
            payload: json!({"job_id": job, "status": "x"}),
            created_at: Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap(),
            request_id: Some("req-1".into()),
        }
    }

    fn webhook(types: &[&str], label: Option<&str>, since: i64) -> Webhook {
        let now = Utc::now();
        Webhook {
            id: Uuid::now_v7(),
            url: "https://example.com/".into(),
            event_types: types.iter().map(|s| s.to_string()).collect(),
            label: label.map(String::from),
            description: None,
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            since_seq: since,
            created_by: "admin".into(),
            created_at: now,
            updated_at: now,
            keys: SigningKeys {
                current: "whsec_".into(),
                previous: None,
                previous_expires_at: None,
            },
        }
    }

    #[test]
    fn body_names_seq_and_job_once() {
        let job = Uuid::nil();
        let mut e = event(7, "job.created", Some(job));
        e.payload = json!({"job_id": job, "seq": 1, "status": "queued"});
        let text = render_body(&e);
        assert_eq!(text.matches("\"job_id\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"seq\"").count(), 1, "{text}");
        assert!(text.contains("\"seq\":7"), "{text}");
    }

    #[test]
    fn body_matches_the_published_schema() {
        let schema = crate::wire_schema::documents()
            .into_iter()
            .find(|d| d.file == "webhook-payload.json")
            .expect("the webhook schema")
            .schema;
        let validator = jsonschema::validator_for(&crate::wire_schema::strict(&schema)).unwrap();
        for e in [
            event(7, "job.created", Some(Uuid::nil())),
            event(8, "agent.connected", None),
        ] {
            let body: Value = serde_json::from_str(&render_body(&e)).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&body)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{body}: {errors:?}");
        }
    }

    #[test]
    fn body_is_the_standard_envelope() {
        let job = Uuid::nil();
        let body: Value =
            serde_json::from_str(&render_body(&event(7, "job.created", Some(job)))).unwrap();
        assert_eq!(
            body,
            json!({
                "type": "job.created",
                "timestamp": "2025-01-02T03:04:05.000000Z",
                "data": {"job_id": job, "status": "x", "seq": 7},
            })
        );
    }

    #[test]
    fn deliveries_follow_filters_and_state() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let events = vec![
            event(1, "job.created", Some(a)),
            event(2, "job.created", Some(b)),
            event(3, "agent.connected", None),
        ];
        let labels = HashMap::from([(a, vec!["blue".to_owned()])]);
        let all = webhook(&["*"], None, 1);
        let blue = webhook(&["job.created"], Some("blue"), 0);
        let hooks = [&all, &blue];
        let got: Vec<(i64, Uuid)> = deliveries_for(&events, &hooks, &labels, 0, true)
            .iter()
            .map(|d| (d.event_seq, d.webhook_id))
            .collect();
        assert_eq!(got, vec![(1, blue.id), (2, all.id), (3, all.id)]);
        let replayed = deliveries_for(&events, &[&all], &labels, 4, false);
        assert_eq!(replayed.len(), 3, "replays ignore since_seq");
        assert!(replayed.iter().all(|d| d.generation == 4));
        assert_eq!(replayed[0].request_id.as_deref(), Some("req-1"));
    }
}
