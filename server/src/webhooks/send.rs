//! One delivery attempt: sign, POST, classify the answer.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{CONTENT_TYPE, HeaderValue, LOCATION, RETRY_AFTER, USER_AGENT};
use reqwest::{Client, StatusCode, redirect};

use super::config::WebhookSettings;
use super::model::{AttemptOutcome, AttemptRecord, ClaimedDelivery, SigningKeys, message_id};
use super::retry::{next_attempt_at, parse_retry_after};
use super::sealing::{SealError, Sealer};
use super::signing::signature_header;
use super::target::{AddressPolicy, GuardedResolver};

/// `User-Agent` of every delivery.
pub const USER_AGENT_VALUE: &str = concat!("switchyard-webhooks/", env!("CARGO_PKG_VERSION"));

/// The delivery client: no redirects, no proxies (they would resolve the
/// target themselves, out of reach of the address checks), the configured
/// timeout, and the guarded resolver.
pub fn client(settings: &WebhookSettings) -> reqwest::Result<Client> {
    Client::builder()
        .redirect(redirect::Policy::none())
        .no_proxy()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
        .dns_resolver(GuardedResolver::new(AddressPolicy::new(settings)))
        .build()
}

/// A finished attempt: what to record, and whether the host looked up.
#[derive(Debug)]
pub struct Sent {
    pub record: AttemptRecord,
    pub healthy: bool,
}

/// Makes one attempt to deliver `delivery`.
pub async fn attempt(
    client: &Client,
    settings: &Arc<WebhookSettings>,
    policy: AddressPolicy,
    delivery: &ClaimedDelivery,
) -> Sent {
    let attempt = delivery.attempts + 1;
    let started_at = super::now();
    let clock = tokio::time::Instant::now();
    let msg_id = message_id(delivery.event_seq, delivery.webhook_id);
    let timestamp = started_at.timestamp();

    let prepared = match open_keys(&settings.sealer, &delivery.keys) {
        Ok(keys) => {
            prepare(
                client, policy, delivery, &keys, &msg_id, timestamp, started_at,
            )
            .await
        }
        Err(e) => Err(e.to_string()),
    };
    let answer = match prepared {
        Ok(request) => request
            .send()
            .await
            .map_err(|e| describe(&e, settings.timeout)),
        Err(message) => Err(message),
    };
    let latency_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
    let finished_at = super::now();

    let (status_code, error, healthy, retry_after, gone) = match answer {
        Ok(response) => {
            let status = response.status();
            let retry_after = matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            )
            .then(|| response.headers().get(RETRY_AFTER))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
            let error = (!status.is_success()).then(|| {
                if status.is_redirection() {
                    let location = response
                        .headers()
                        .get(LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none");
                    format!("HTTP {status}: redirects are not followed (Location: {location})")
                } else {
                    format!("HTTP {status}")
                }
            });
            let healthy = !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS);
            (
                Some(status.as_u16()),
                error,
                healthy,
                retry_after,
                status == StatusCode::GONE,
            )
        }
        Err(message) => (None, Some(message), false, None, false),
    };

    let outcome = if error.is_none() {
        AttemptOutcome::Delivered
    } else if gone {
        AttemptOutcome::Gone
    } else {
        match next_attempt_at(
            &settings.retry_schedule,
            attempt,
            retry_after,
            finished_at,
            rand::random(),
        ) {
            Some(at) => AttemptOutcome::Retry { at },
            None => AttemptOutcome::GiveUp,
        }
    };
    Sent {
        record: AttemptRecord {
            delivery_id: delivery.id,
            webhook_id: delivery.webhook_id,
            attempt,
            started_at,
            finished_at,
            status_code,
            latency_ms,
            error,
            outcome,
            disable_after: settings.disable_after,
        },
        healthy,
    }
}

/// The plain secrets of stored (possibly sealed) `keys`.
fn open_keys(sealer: &Sealer, keys: &SigningKeys) -> Result<SigningKeys, SealError> {
    Ok(SigningKeys {
        current: sealer.open(&keys.current)?,
        previous: keys
            .previous
            .as_deref()
            .map(|p| sealer.open(p))
            .transpose()?,
        previous_expires_at: keys.previous_expires_at,
    })
}

/// The signed request, or why it cannot be made.
async fn prepare(
    client: &Client,
    policy: AddressPolicy,
    delivery: &ClaimedDelivery,
    keys: &SigningKeys,
    msg_id: &str,
    timestamp: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<reqwest::RequestBuilder, String> {
    let url = super::target::parse_url(&delivery.url).map_err(|e| e.to_string())?;
    // Host names are checked by the resolver as the connection is made; IP
    // literals never reach a resolver, so they are checked here.
    if let Some(host) = url.host_str()
        && host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok()
    {
        policy
            .resolve(host, url.port_or_known_default().unwrap_or(80))
            .await
            .map_err(|e| e.to_string())?;
    }
    let signature = signature_header(&keys.active(now), msg_id, timestamp, &delivery.body)
        .map_err(|e| format!("{e}; rotate the secret to repair it"))?;
    let mut request = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header("webhook-id", msg_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(delivery.body.clone());
    if let Some(id) = delivery
        .request_id
        .as_deref()
        .and_then(|id| HeaderValue::from_str(id).ok())
    {
        request = request.header("x-request-id", id);
    }
    Ok(request)
}

/// A transport failure in one line: what happened, with its causes.
fn describe(err: &reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        return format!(
            "timed out after {} (webhooks.timeout)",
            humantime::format_duration(timeout)
        );
    }
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    let what = if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    if parts.is_empty() {
        format!("{what}: {err}")
    } else {
        format!("{what}: {}", parts.join(": "))
    }
}
