//! What the webhook machinery talks about: subscriptions, their signing keys,
//! queued deliveries and the attempt log, and the rules both store backends
//! share (when an attempt disables a subscription, what `webhook.disabled`
//! says).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::status::UnknownStatus;
use crate::domain::{EventType, NewEvent};

/// Subscribes to every event type (in `event_types`).
pub const ANY_EVENT: &str = "*";

/// Lifecycle of one delivery (one event to one subscription, per replay
/// generation): `pending` → `delivered` | `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Queued: sent at `next_attempt_at` (again, after a failed attempt).
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Given up: the retry schedule ran out, or the target answered `410 Gone`.
    Failed,
}

impl DeliveryStatus {
    pub const ALL: &'static [DeliveryStatus] = &[
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
    ];

    /// The one string form, in the database and on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownStatus {
                kind: "delivery status",
                given: s.to_owned(),
                allowed: Self::ALL
                    .iter()
                    .map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The secrets a subscription signs with: the current one and, for a while
/// after a rotation, the previous one (both signatures are sent).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeys {
    /// `whsec_` + base64 of 32 random bytes.
    pub current: String,
    pub previous: Option<String>,
    pub previous_expires_at: Option<DateTime<Utc>>,
}

impl SigningKeys {
    /// The secrets to sign with at `now`: the current one first.
    pub fn active(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut keys = vec![self.current.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous, self.previous_expires_at)
            && now < until
        {
            keys.push(previous);
        }
        keys
    }
}

/// Secrets never reach logs.
impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeys")
            .field("previous_expires_at", &self.previous_expires_at)
            .finish_non_exhaustive()
    }
}

/// A stored subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    /// Event type names, or [`ANY_EVENT`]; sorted, no duplicates.
    pub event_types: Vec<String>,
    /// Only events of jobs carrying this label (events without a job never match).
    pub label: Option<String>,
    pub description: Option<String>,
    pub enabled: bool,
    /// Why it was disabled (by an admin, `410 Gone`, or failing too long).
    pub disabled_reason: Option<String>,
    /// Start of the current run of failed attempts; cleared by a success.
    pub failing_since: Option<DateTime<Utc>>,
    /// Only events with a larger sequence number are delivered (set at
    /// creation and when re-enabled: the newest event at that time).
    pub since_seq: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub keys: SigningKeys,
}

impl Webhook {
    /// Does an event of type `kind` whose job carries `labels` (`None`: an
    /// event without a job) pass this subscription's filters?
    pub fn accepts(&self, kind: &str, labels: Option<&[String]>) -> bool {
        self.event_types.iter().any(|t| t == ANY_EVENT || t == kind)
            && match &self.label {
                None => true,
                Some(label) => labels.is_some_and(|l| l.iter().any(|x| x == label)),
            }
    }

    /// Does the live tail send event `seq` to this subscription: enabled,
    /// newer than `since_seq`, and passing the filters?
    pub fn matches(&self, seq: i64, kind: &str, labels: Option<&[String]>) -> bool {
        self.enabled && seq > self.since_seq && self.accepts(kind, labels)
    }
}

/// A subscription to store.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub label: Option<String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub secret: String,
    pub created_by: String,
}

/// A partial update; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub label: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
    /// Who made the change (recorded as the reason when it disables).
    pub changed_by: String,
}

/// A delivery to queue (one event for one subscription).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_seq: i64,
    /// 0 for deliveries from the live tail, n for the n-th replay.
    pub generation: i32,
    pub event_type: String,
    pub job_id: Option<Uuid>,
    /// The request id of the change that caused the event, when known.
    pub request_id: Option<String>,
    /// The exact JSON body that is signed and sent.
    pub body: String,
}

/// A due delivery, before it is claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueDelivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
}

/// A delivery claimed for one attempt, with what sending it needs.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_seq: i64,
    pub event_type: String,
    pub job_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub body: String,
    /// Attempts made before this one.
    pub attempts: i32,
    pub url: String,
    pub keys: SigningKeys,
}

/// What an attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// 2xx: done.
    Delivered,
    /// Failed; try again at this time.
    Retry { at: DateTime<Utc> },
    /// Failed and the retry schedule is used up.
    GiveUp,
    /// `410 Gone`: the delivery fails and the subscription is disabled.
    Gone,
}

/// One finished attempt, to record.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    /// 1 for the first attempt.
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
    /// A subscription failing for this long without a success is disabled.
    pub disable_after: Duration,
}

/// What recording an attempt changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttemptEffect {
    /// False when the delivery had moved on meanwhile (another claim recorded
    /// this attempt number first); nothing was changed then.
    pub recorded: bool,
    /// The subscription was disabled by this attempt.
    pub disabled: bool,
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    /// The HTTP status answered; null when no answer came (timeout, refused connection).
    pub status_code: Option<u16>,
    /// Time until the answer's headers (or the failure), in milliseconds.
    pub latency_ms: i64,
    /// Why the attempt failed; null for a 2xx.
    pub error: Option<String>,
}

/// One delivery with its attempts, as listed by the API.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The `webhook-id` header: the same for every attempt and replay of this
    /// event to this subscription.
    pub message_id: String,
    pub event_seq: i64,
    pub event_type: String,
    pub job_id: Option<Uuid>,
    /// 0 for the live delivery, n for the n-th replay.
    pub generation: i32,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i32,
    /// When it is tried next (pending deliveries only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<Attempt>,
}

/// The `webhook-id` of an event sent to a subscription: stable across
/// retries and replays, so receivers can de-duplicate.
pub fn message_id(event_seq: i64, webhook_id: Uuid) -> String {
    format!("msg_{event_seq}_{}", webhook_id.simple())
}

/// Why the attempt disables its subscription, if it does: `410 Gone`, or a
/// failure while the subscription has been failing for `disable_after`.
pub fn disable_reason(
    record: &AttemptRecord,
    failing_since: Option<DateTime<Utc>>,
) -> Option<String> {
    match record.outcome {
        AttemptOutcome::Gone => Some("the target answered 410 Gone".to_owned()),
        AttemptOutcome::Delivered => None,
        AttemptOutcome::Retry { .. } | AttemptOutcome::GiveUp => {
            let since = failing_since?;
            let failing = (record.finished_at - since).to_std().unwrap_or_default();
            (failing >= record.disable_after).then(|| {
                format!(
                    "every delivery attempt failed for {} (webhooks.disable_after)",
                    humantime::format_duration(round_to_ms(failing))
                )
            })
        }
    }
}

fn round_to_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().try_into().unwrap_or(u64::MAX))
}

/// The `webhook.disabled` event.
pub fn disabled_event(webhook_id: Uuid, url: &str, reason: &str) -> NewEvent {
    NewEvent {
        job_id: None,
        kind: EventType::WebhookDisabled,
        payload: serde_json::json!({
            "webhook_id": webhook_id,
            "url": url,
            "reason": reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook() -> Webhook {
        let now = Utc::now();
        Webhook {
            id: Uuid::nil(),
            url: "https://example.com/hook".into(),
            event_types: vec!["job.completed".into()],
            label: Some("team-a".into()),
            description: None,
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            since_seq: 10,
            created_by: "admin".into(),
            created_at: now,
            updated_at: now,
            keys: SigningKeys {
                current: "whsec_a".into(),
                previous: Some("whsec_b".into()),
                previous_expires_at: Some(now + chrono::Duration::hours(1)),
            },
        }
    }

    #[test]
    fn matching_checks_type_label_sequence_and_state() {
        let mut w = webhook();
        let labels = vec!["team-a".to_owned(), "x".to_owned()];
        assert!(w.matches(11, "job.completed", Some(&labels)));
        assert!(
            !w.matches(10, "job.completed", Some(&labels)),
            "not after since_seq"
        );
        assert!(!w.matches(11, "job.failed", Some(&labels)));
        assert!(!w.matches(11, "job.completed", Some(&["b".to_owned()])));
        assert!(!w.matches(11, "job.completed", None));
        w.label = None;
        w.event_types = vec![ANY_EVENT.into()];
        assert!(w.matches(11, "agent.connected", None));
        w.enabled = false;
        assert!(!w.matches(11, "agent.connected", None));
    }

    #[test]
    fn previous_key_signs_only_during_the_overlap() {
        let w = webhook();
        let now = Utc::now();
        assert_eq!(w.keys.active(now), vec!["whsec_a", "whsec_b"]);
        assert_eq!(
            w.keys.active(now + chrono::Duration::hours(2)),
            vec!["whsec_a"]
        );
        assert!(!format!("{:?}", w.keys).contains("whsec"));
    }

    #[test]
    fn statuses_round_trip() {
        for s in DeliveryStatus::ALL {
            assert_eq!(s.as_str().parse::<DeliveryStatus>().unwrap(), *s);
        }
        let err = "sent".parse::<DeliveryStatus>().unwrap_err().to_string();
        assert!(err.contains("pending, delivered, failed"), "{err}");
    }

    #[test]
    fn disabling_needs_gone_or_a_long_failing_run() {
        let now = Utc::now();
        let mut record = AttemptRecord {
            delivery_id: Uuid::nil(),
            webhook_id: Uuid::nil(),
            attempt: 1,
            started_at: now,
            finished_at: now,
            status_code: Some(500),
            latency_ms: 3,
            error: None,
            outcome: AttemptOutcome::GiveUp,
            disable_after: Duration::from_secs(60),
        };
        assert_eq!(disable_reason(&record, None), None);
        assert_eq!(
            disable_reason(&record, Some(now - chrono::Duration::seconds(59))),
            None
        );
        let reason = disable_reason(&record, Some(now - chrono::Duration::seconds(61))).unwrap();
        assert!(reason.contains("1m 1s"), "{reason}");
        record.outcome = AttemptOutcome::Gone;
        assert!(disable_reason(&record, None).unwrap().contains("410"));
        record.outcome = AttemptOutcome::Delivered;
        assert_eq!(
            disable_reason(&record, Some(now - chrono::Duration::days(9))),
            None
        );
    }
}
