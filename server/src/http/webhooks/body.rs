//! Request and response bodies of `/v1/webhooks`, and their validation.
//!
//! Every field problem is collected into one 422 (`details`, one entry per
//! field). The target's addresses are only resolved once everything else is
//! valid, so a bad body never costs a DNS lookup.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::domain::EventType;
use crate::http::error::{ApiError, FieldError};
use crate::webhooks::model::{ANY_EVENT, Webhook};
use crate::webhooks::replay::ReplayFrom;
use crate::webhooks::target::{AddressPolicy, check_url, parse_url};

const MAX_EVENT_TYPES: usize = 64;
const MAX_LABEL_LEN: usize = 64;
const MAX_DESCRIPTION_CHARS: usize = 1000;

/// `POST /v1/webhooks`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where to POST events: an absolute http or https URL.
    pub url: Option<String>,
    /// Event types to send (see docs/events.md), or `["*"]` for all; left
    /// out, all of them (as Svix and the CLI do).
    pub event_types: Option<Vec<String>>,
    /// Only events of jobs carrying this label.
    pub label: Option<String>,
    pub description: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// `PATCH /v1/webhooks/{id}`: only the fields given change; `null` clears
/// `label` and `description`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWebhookRequest {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub label: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// Enabling a disabled subscription starts it at the newest event.
    pub enabled: Option<bool>,
}

/// A field that is present (possibly `null`) becomes `Some(..)`.
fn present<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// `POST /v1/webhooks/{id}/replay`: exactly one of the two.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Replay events with a larger sequence number (0: the whole log).
    pub since_seq: Option<i64>,
    /// Replay events created at or after this RFC 3339 time.
    pub since_time: Option<String>,
}

/// A subscription as the API shows it (never its secrets, except `secret`
/// right after creation or rotation).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookView {
    pub id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub label: Option<String>,
    pub description: Option<String>,
    pub enabled: bool,
    /// Why it is disabled: by whom, `410 Gone`, or failing too long.
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed (null when the last one succeeded).
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the previous secret still signs (after a rotation).
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The signing secret: only in the answers to creation and rotation. Keep it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub secret: Option<String>,
}

impl WebhookView {
    /// The view of `w`; `secret` (plain) only in the answers that made it.
    pub fn new(w: Webhook, secret: Option<String>) -> Self {
        let now = Utc::now();
        Self {
            previous_secret_expires_at: w.keys.previous_expires_at.filter(|at| *at > now),
            secret,
            id: w.id,
            url: w.url,
            event_types: w.event_types,
            label: w.label,
            description: w.description,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            failing_since: w.failing_since,
            created_by: w.created_by,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// Every accepted `event_types` entry.
pub fn known_event_types() -> String {
    std::iter::once(ANY_EVENT)
        .chain(EventType::ALL.iter().map(|t| t.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn event_types(raw: Vec<String>, problems: &mut Vec<FieldError>) -> Vec<String> {
    if raw.is_empty() || raw.len() > MAX_EVENT_TYPES {
        problems.push(FieldError::new(
            "event_types",
            format!(
                "give 1 to {MAX_EVENT_TYPES} event types, or [\"*\"] for all; known types: {}",
                known_event_types()
            ),
        ));
        return raw;
    }
    let unknown: Vec<&str> = raw
        .iter()
        .map(String::as_str)
        .filter(|t| *t != ANY_EVENT && EventType::parse(t).is_none())
        .collect();
    if !unknown.is_empty() {
        problems.push(FieldError::new(
            "event_types",
            format!(
                "unknown event type{} {}; known types: {}",
                if unknown.len() == 1 { "" } else { "s" },
                unknown
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                known_event_types()
            ),
        ));
    }
    let mut types = raw;
    types.sort();
    types.dedup();
    types
}

fn label(raw: Option<String>, problems: &mut Vec<FieldError>) -> Option<String> {
    let label = raw?;
    let ok = !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:=/-".contains(&b));
    if !ok {
        problems.push(FieldError::new(
            "label",
            format!(
                "`{label}` is not a job label: 1 to {MAX_LABEL_LEN} letters, digits or `._:=/-`"
            ),
        ));
    }
    Some(label)
}

fn description(raw: Option<String>, problems: &mut Vec<FieldError>) -> Option<String> {
    let text = raw?.trim().to_owned();
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        problems.push(FieldError::new(
            "description",
            format!("at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    (!text.is_empty()).then_some(text)
}

fn url_syntax(raw: &str, problems: &mut Vec<FieldError>) -> String {
    match parse_url(raw) {
        Ok(url) => url.to_string(),
        Err(e) => {
            problems.push(FieldError::new("url", e.to_string()));
            raw.to_owned()
        }
    }
}

/// A validated creation.
pub struct ValidCreate {
    pub url: String,
    pub event_types: Vec<String>,
    pub label: Option<String>,
    pub description: Option<String>,
    pub enabled: bool,
}

pub async fn validate_create(
    body: CreateWebhookRequest,
    policy: &AddressPolicy,
) -> Result<ValidCreate, ApiError> {
    let mut problems = Vec::new();
    let url = match body.url {
        Some(url) => url_syntax(&url, &mut problems),
        None => {
            problems.push(FieldError::new(
                "url",
                "required: the http or https URL to POST events to",
            ));
            String::new()
        }
    };
    let event_types = match body.event_types {
        Some(types) => event_types(types, &mut problems),
        // None given means every event, as in Svix and `webhooks create`.
        None => vec![ANY_EVENT.to_owned()],
    };
    let label = label(body.label, &mut problems);
    let description = description(body.description, &mut problems);
    reachable(&url, policy, &mut problems).await;
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    Ok(ValidCreate {
        url,
        event_types,
        label,
        description,
        enabled: body.enabled.unwrap_or(true),
    })
}

/// A validated patch, ready for the store (`changed_by` still to be set).
pub async fn validate_patch(
    body: PatchWebhookRequest,
    policy: &AddressPolicy,
) -> Result<crate::webhooks::model::WebhookPatch, ApiError> {
    let mut problems = Vec::new();
    let url = body.url.map(|u| url_syntax(&u, &mut problems));
    let event_types = body.event_types.map(|t| event_types(t, &mut problems));
    let label = body.label.map(|l| label(l, &mut problems));
    let description = body.description.map(|d| description(d, &mut problems));
    if let Some(url) = &url {
        reachable(url, policy, &mut problems).await;
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    Ok(crate::webhooks::model::WebhookPatch {
        url,
        event_types,
        label,
        description,
        enabled: body.enabled,
        changed_by: String::new(),
    })
}

/// Resolves the target once everything else is valid.
async fn reachable(url: &str, policy: &AddressPolicy, problems: &mut Vec<FieldError>) {
    if problems.is_empty()
        && let Err(e) = check_url(url, policy).await
    {
        problems.push(FieldError::new("url", e.to_string()));
    }
}

pub fn validate_replay(body: ReplayRequest) -> Result<ReplayFrom, ApiError> {
    match (body.since_seq, body.since_time) {
        (Some(seq), None) if seq >= 0 => Ok(ReplayFrom::Seq(seq)),
        (Some(seq), None) => Err(ApiError::invalid(
            "since_seq",
            format!("{seq} is negative; give an event sequence number, 0 for the whole log"),
        )),
        (None, Some(time)) => DateTime::parse_from_rfc3339(&time)
            .map(|t| ReplayFrom::Time(t.to_utc()))
            .map_err(|_| {
                ApiError::invalid(
                    "since_time",
                    format!("`{time}` is not an RFC 3339 time such as 2025-01-31T12:00:00Z"),
                )
            }),
        _ => Err(ApiError::invalid(
            "since_seq",
            "give exactly one of since_seq (an event sequence number) or since_time (an RFC 3339 time)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_event_types_are_named_with_the_known_ones() {
        let mut problems = Vec::new();
        let types = event_types(
            vec![
                "job.created".into(),
                "job.exploded".into(),
                "job.created".into(),
            ],
            &mut problems,
        );
        assert_eq!(types, vec!["job.created", "job.exploded"]);
        assert_eq!(problems.len(), 1);
        let message = &problems[0].message;
        assert!(
            message.starts_with("unknown event type `job.exploded`; known types: *, job.created"),
            "{message}"
        );
        assert!(message.contains("webhook.disabled"), "{message}");
    }

    #[test]
    fn replay_needs_exactly_one_start() {
        assert_eq!(
            validate_replay(ReplayRequest {
                since_seq: Some(5),
                since_time: None
            })
            .unwrap(),
            ReplayFrom::Seq(5)
        );
        assert!(matches!(
            validate_replay(ReplayRequest {
                since_seq: None,
                since_time: Some("2025-01-01T00:00:00Z".into())
            }),
            Ok(ReplayFrom::Time(_))
        ));
        for bad in [
            ReplayRequest::default(),
            ReplayRequest {
                since_seq: Some(-1),
                since_time: None,
            },
            ReplayRequest {
                since_seq: None,
                since_time: Some("yesterday".into()),
            },
            ReplayRequest {
                since_seq: Some(1),
                since_time: Some("2025-01-01T00:00:00Z".into()),
            },
        ] {
            assert!(validate_replay(bad).is_err());
        }
    }
}
