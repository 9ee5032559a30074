//! Webhook subscriptions, the delivery queue and its attempt log.
//!
//! A separate trait so each concern's SQL lives in its own files; [`super::Store`]
//! requires it, so callers see one store. The row shapes and the rules both
//! backends apply (patching a subscription, what an attempt does to its
//! delivery) are defined once below.
//!
//! The queue is `webhook_deliveries`: one row per event, subscription and
//! replay generation (`UNIQUE (webhook_id, event_seq, generation)`, so the
//! tailer can insert the same event twice without sending it twice). A row is
//! `pending` until an attempt succeeds (`delivered`) or the retry schedule
//! runs out (`failed`). `next_attempt_at` is both the retry time and the claim
//! lease: claiming a row moves it past the attempt's timeout, so another node
//! (or this one after a crash) only takes it again when the attempt is
//! certainly over.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::StoreError;
use crate::webhooks::model::{
    Attempt, AttemptEffect, AttemptOutcome, AttemptRecord, ClaimedDelivery, Delivery,
    DeliveryStatus, DueDelivery, NewDelivery, NewWebhook, SigningKeys, Webhook, WebhookPatch,
    message_id,
};

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a subscription; it receives events appended after this call
    /// (`since_seq` is the newest event's sequence number).
    async fn create_webhook(&self, new: NewWebhook) -> Result<Webhook, StoreError>;

    async fn get_webhook(&self, id: Uuid) -> Result<Option<Webhook>, StoreError>;

    /// Every subscription, oldest first.
    async fn list_webhooks(&self) -> Result<Vec<Webhook>, StoreError>;

    /// Applies a patch (see [`apply_patch`]). Unknown id: `NotFound("webhook")`.
    async fn update_webhook(&self, id: Uuid, patch: WebhookPatch) -> Result<Webhook, StoreError>;

    /// Deletes a subscription with its deliveries and attempts.
    async fn delete_webhook(&self, id: Uuid) -> Result<(), StoreError>;

    /// Makes `secret` the current secret; the old one keeps signing until
    /// `previous_expires_at`.
    async fn rotate_webhook_secret(
        &self,
        id: Uuid,
        secret: String,
        previous_expires_at: DateTime<Utc>,
    ) -> Result<Webhook, StoreError>;

    /// Stores `new` as a subscription's secrets (sealed differently, same
    /// secrets) if they are still `old`; false when they changed meanwhile
    /// (a rotation) or the subscription is gone.
    async fn reseal_webhook_secrets(
        &self,
        id: Uuid,
        old: &SigningKeys,
        new: &SigningKeys,
    ) -> Result<bool, StoreError>;

    /// Deletes up to `limit` delivered or failed deliveries (their attempts
    /// go with them) last changed before `before`; returns how many.
    async fn delete_webhook_deliveries_before(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;

    /// The sequence number up to which the tailer has matched events.
    async fn webhook_cursor(&self) -> Result<i64, StoreError>;

    /// Queues deliveries (rows that exist already are left alone) and, when
    /// given, advances the tailer's cursor to `cursor` (never backwards), in
    /// one transaction. Returns how many rows were new.
    async fn enqueue_webhook_deliveries(
        &self,
        deliveries: &[NewDelivery],
        cursor: Option<i64>,
    ) -> Result<u64, StoreError>;

    /// Bumps and returns the subscription's replay generation.
    async fn next_replay_generation(&self, id: Uuid) -> Result<i32, StoreError>;

    /// The sequence number just before the first event created at or after
    /// `at` (the newest event's when there is none): where a replay "since
    /// `at`" starts.
    async fn event_seq_before(&self, at: DateTime<Utc>) -> Result<i64, StoreError>;

    /// Pending deliveries of enabled subscriptions due at `now`, earliest
    /// first, leaving out the subscriptions in `exclude`.
    async fn due_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        exclude: &[Uuid],
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError>;

    /// When the next pending delivery of an enabled subscription (not in
    /// `exclude`) is due.
    async fn next_webhook_due_at(
        &self,
        exclude: &[Uuid],
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Claims the given deliveries for one attempt each: those still pending,
    /// due at `now` and of an enabled subscription get `next_attempt_at =
    /// lease_until` and are returned with what sending needs.
    async fn claim_webhook_deliveries(
        &self,
        ids: &[Uuid],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;

    /// Records an attempt and its consequences in one transaction: the
    /// attempt row, the delivery's new state (see [`delivery_update`]), the
    /// subscription's failing run, and, when the attempt disables the
    /// subscription ([`crate::webhooks::model::disable_reason`]), the
    /// `webhook.disabled` event. Only when the delivery is still pending at
    /// `attempt - 1` attempts; otherwise nothing changes.
    async fn record_webhook_attempt(
        &self,
        record: &AttemptRecord,
    ) -> Result<AttemptEffect, StoreError>;

    /// A subscription's deliveries, newest first, each with its attempts;
    /// at most `limit` older than the delivery id `before`.
    async fn list_webhook_deliveries(
        &self,
        webhook_id: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;
}

/// The columns of a `webhooks` row as read by [`WebhookRow`].
macro_rules! webhook_columns {
    () => {
        "id, url, event_types, label, description, enabled, disabled_reason, failing_since, \
         since_seq, created_by, created_at, updated_at, secret, previous_secret, \
         previous_secret_expires_at"
    };
}
pub(crate) use webhook_columns;

/// The columns of a `webhook_deliveries` row as read by [`DeliveryRow`].
macro_rules! delivery_columns {
    () => {
        "id, webhook_id, event_seq, generation, event_type, job_id, status, attempts, \
         next_attempt_at, delivered_at, created_at, updated_at"
    };
}
pub(crate) use delivery_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct WebhookRow {
    pub id: Uuid,
    pub url: String,
    pub event_types: Json<Vec<String>>,
    pub label: Option<String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
    pub since_seq: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

impl From<WebhookRow> for Webhook {
    fn from(r: WebhookRow) -> Self {
        Webhook {
            id: r.id,
            url: r.url,
            event_types: r.event_types.0,
            label: r.label,
            description: r.description,
            enabled: r.enabled,
            disabled_reason: r.disabled_reason,
            failing_since: r.failing_since,
            since_seq: r.since_seq,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            keys: SigningKeys {
                current: r.secret,
                previous: r.previous_secret,
                previous_expires_at: r.previous_secret_expires_at,
            },
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_seq: i64,
    pub generation: i32,
    pub event_type: String,
    pub job_id: Option<Uuid>,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AttemptRow {
    pub delivery_id: Uuid,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// A claimed delivery joined with its subscription's URL and secrets.
#[derive(sqlx::FromRow)]
pub(crate) struct ClaimRow {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_seq: i64,
    pub event_type: String,
    pub job_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub body: String,
    pub attempts: i32,
    pub url: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

impl From<ClaimRow> for ClaimedDelivery {
    fn from(r: ClaimRow) -> Self {
        ClaimedDelivery {
            id: r.id,
            webhook_id: r.webhook_id,
            event_seq: r.event_seq,
            event_type: r.event_type,
            job_id: r.job_id,
            request_id: r.request_id,
            body: r.body,
            attempts: r.attempts,
            url: r.url,
            keys: SigningKeys {
                current: r.secret,
                previous: r.previous_secret,
                previous_expires_at: r.previous_secret_expires_at,
            },
        }
    }
}

/// Deliveries with their attempts (rows in any order), in the order of `rows`.
pub(crate) fn deliveries_from_rows(
    rows: Vec<DeliveryRow>,
    attempts: Vec<AttemptRow>,
) -> Result<Vec<Delivery>, StoreError> {
    let mut by_delivery: std::collections::HashMap<Uuid, Vec<Attempt>> = Default::default();
    for a in attempts {
        by_delivery.entry(a.delivery_id).or_default().push(Attempt {
            attempt: a.attempt,
            started_at: a.started_at,
            status_code: a.status_code.and_then(|c| u16::try_from(c).ok()),
            latency_ms: a.latency_ms,
            error: a.error,
        });
    }
    rows.into_iter()
        .map(|r| {
            let status: DeliveryStatus = r
                .status
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("webhook delivery {}: {e}", r.id)))?;
            let mut attempt_log = by_delivery.remove(&r.id).unwrap_or_default();
            attempt_log.sort_by_key(|a| a.attempt);
            Ok(Delivery {
                id: r.id,
                webhook_id: r.webhook_id,
                message_id: message_id(r.event_seq, r.webhook_id),
                event_seq: r.event_seq,
                event_type: r.event_type,
                job_id: r.job_id,
                generation: r.generation,
                status,
                attempts: r.attempts,
                next_attempt_at: (status == DeliveryStatus::Pending).then_some(r.next_attempt_at),
                delivered_at: r.delivered_at,
                created_at: r.created_at,
                updated_at: r.updated_at,
                attempt_log,
            })
        })
        .collect()
}

/// Applies `patch` to `webhook` at `now`. Enabling a disabled subscription
/// clears why it was disabled and its failing run, and starts it at the
/// newest event (`last_seq`): events from while it was disabled are not
/// sent (replay them if they are wanted). Disabling records who did it.
pub(crate) fn apply_patch(
    webhook: &mut Webhook,
    patch: WebhookPatch,
    last_seq: i64,
    now: DateTime<Utc>,
) {
    if let Some(url) = patch.url {
        webhook.url = url;
    }
    if let Some(types) = patch.event_types {
        webhook.event_types = types;
    }
    if let Some(label) = patch.label {
        webhook.label = label;
    }
    if let Some(description) = patch.description {
        webhook.description = description;
    }
    match patch.enabled {
        Some(true) if !webhook.enabled => {
            webhook.enabled = true;
            webhook.disabled_reason = None;
            webhook.failing_since = None;
            webhook.since_seq = last_seq;
        }
        Some(false) if webhook.enabled => {
            webhook.enabled = false;
            webhook.disabled_reason = Some(format!("disabled by {}", patch.changed_by));
        }
        _ => {}
    }
    webhook.updated_at = now;
}

/// The delivery's state after an attempt: status, next attempt time (the
/// column is kept as it was for finished deliveries) and delivery time.
pub(crate) fn delivery_update(
    record: &AttemptRecord,
) -> (DeliveryStatus, Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    match record.outcome {
        AttemptOutcome::Delivered => (DeliveryStatus::Delivered, None, Some(record.finished_at)),
        AttemptOutcome::Retry { at } => (DeliveryStatus::Pending, Some(at), None),
        AttemptOutcome::GiveUp | AttemptOutcome::Gone => (DeliveryStatus::Failed, None, None),
    }
}

/// The attempt's status code as stored.
pub(crate) fn status_code(record: &AttemptRecord) -> Option<i32> {
    record.status_code.map(i32::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::model::SigningKeys;

    #[test]
    fn enabling_restarts_at_the_newest_event() {
        let now = Utc::now();
        let mut w = Webhook {
            id: Uuid::nil(),
            url: "https://a.example/".into(),
            event_types: vec!["*".into()],
            label: Some("x".into()),
            description: Some("d".into()),
            enabled: false,
            disabled_reason: Some("the target answered 410 Gone".into()),
            failing_since: Some(now),
            since_seq: 3,
            created_by: "admin".into(),
            created_at: now,
            updated_at: now,
            keys: SigningKeys {
                current: "whsec_".into(),
                previous: None,
                previous_expires_at: None,
            },
        };
        apply_patch(
            &mut w,
            WebhookPatch {
                label: Some(None),
                enabled: Some(true),
                changed_by: "root".into(),
                ..WebhookPatch::default()
            },
            42,
            now,
        );
        assert!(w.enabled);
        assert_eq!(w.label, None);
        assert_eq!(w.description.as_deref(), Some("d"));
        assert_eq!(
            (w.since_seq, w.failing_since, w.disabled_reason.clone()),
            (42, None, None)
        );
        apply_patch(
            &mut w,
            WebhookPatch {
                enabled: Some(false),
                changed_by: "root".into(),
                ..WebhookPatch::default()
            },
            50,
            now,
        );
        assert_eq!(w.disabled_reason.as_deref(), Some("disabled by root"));
        assert_eq!(w.since_seq, 42);
    }
}
