//! `POST /v1/jobs`: JSON or multipart in, one validation path, one `NewJob` out.
//!
//! Both body forms are parsed into [`CreateJobRequest`] and validated by the
//! same code, collecting every field problem at once. The idempotency hash is
//! computed over the validated content, so the same job sent as JSON or as
//! multipart hashes the same.

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::Settings;
use crate::config::is_capability_name;
use crate::domain::storable::{NUL_PROBLEM, nul_path};
use crate::domain::{Document, DocumentMeta, NewJob};
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::json_rejection;

/// The most labels a job may carry, and the longest label.
const MAX_LABELS: usize = 32;
const MAX_LABEL_LEN: usize = 64;
const MAX_DEPENDENCIES: usize = 100;
const MAX_PROMPT_CHARS: usize = 100_000;

/// The body of `POST /v1/jobs` as JSON.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJobRequest {
    /// What the pipeline should do. Required, not blank.
    pub prompt: Option<String>,
    /// Capability names in order; defaults to the hub's default pipeline.
    pub pipeline: Option<Vec<String>>,
    /// A JSON object handed to stage 1.
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Value>,
    /// 0 (lowest) to 9 (highest); default 5.
    pub priority: Option<i64>,
    /// Up to 32 labels of letters, digits and `._:=/-`.
    pub labels: Option<Vec<String>>,
    /// Jobs that must complete before this one starts.
    pub depends_on: Option<Vec<Uuid>>,
    /// Attempts per task (1..=100); defaults to the hub's `max_attempts`.
    pub max_attempts: Option<i64>,
    /// An optional document, base64-encoded.
    pub document: Option<DocumentUpload>,
    /// Only in `POST /v1/jobs/batch` items (a single create takes the
    /// `Idempotency-Key` header instead).
    pub idempotency_key: Option<String>,
}

/// A document sent inside a JSON body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentUpload {
    /// The bytes, standard base64.
    pub content_base64: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
}

/// A document received, before validation.
pub(super) struct RawDocument {
    pub(super) bytes: Vec<u8>,
    pub(super) file_name: Option<String>,
    pub(super) content_type: Option<String>,
}

/// Reads the request body in whichever form it came.
pub async fn read_body(req: Request) -> Result<NewJobDraft, ApiError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(req, &())
            .await
            .map_err(|e| ApiError::bad_request("invalid_multipart", e.body_text()))?;
        super::form::read_multipart(multipart).await
    } else if content_type.starts_with("application/json") || content_type.is_empty() {
        let axum::Json(body) = axum::Json::<CreateJobRequest>::from_request(req, &())
            .await
            .map_err(json_rejection)?;
        let mut draft = draft_from_json(body);
        if draft.body.idempotency_key.is_some() {
            draft.errors.push(FieldError::new(
                "idempotency_key",
                "belongs in the Idempotency-Key header of a single create (the body field is for batch items)",
            ));
        }
        Ok(draft)
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type `{content_type}` is not accepted; send application/json or multipart/form-data"
        )))
    }
}

/// Decodes a JSON job body's document; problems become field errors.
pub fn draft_from_json(body: CreateJobRequest) -> NewJobDraft {
    let mut errors = Vec::new();
    let document = body.document.as_ref().and_then(|d| {
        match base64::engine::general_purpose::STANDARD.decode(d.content_base64.trim()) {
            Ok(bytes) => Some(RawDocument {
                bytes,
                file_name: d.file_name.clone(),
                content_type: d.content_type.clone(),
            }),
            Err(e) => {
                errors.push(FieldError::new(
                    "document.content_base64",
                    format!("is not valid base64: {e}"),
                ));
                None
            }
        }
    });
    NewJobDraft {
        body,
        document,
        errors,
    }
}

impl NewJobDraft {
    /// The idempotency key a batch item carries in its body.
    pub fn body_idempotency_key(&self) -> Option<String> {
        self.body.idempotency_key.clone()
    }
}

/// Parsed but not yet validated.
pub struct NewJobDraft {
    pub(super) body: CreateJobRequest,
    pub(super) document: Option<RawDocument>,
    pub(super) errors: Vec<FieldError>,
}

fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:=/-".contains(&b))
}

/// Validates the draft into a `NewJob`, or every field problem at once.
pub fn validate(
    draft: NewJobDraft,
    settings: &Settings,
    created_by: &str,
    idempotency_key: Option<String>,
) -> Result<NewJob, ApiError> {
    let NewJobDraft {
        body,
        document,
        mut errors,
    } = draft;
    let id = Uuid::now_v7();

    let prompt = match body.prompt {
        None => {
            errors.push(FieldError::new("prompt", "is required"));
            String::new()
        }
        Some(p) if p.trim().is_empty() => {
            errors.push(FieldError::new("prompt", "must not be blank"));
            p
        }
        Some(p) if p.chars().count() > MAX_PROMPT_CHARS => {
            errors.push(FieldError::new(
                "prompt",
                format!("is longer than {MAX_PROMPT_CHARS} characters"),
            ));
            p
        }
        Some(p) => p,
    };

    let pipeline = body
        .pipeline
        .unwrap_or_else(|| settings.default_pipeline.clone());
    if pipeline.is_empty() || pipeline.len() > 16 {
        errors.push(FieldError::new(
            "pipeline",
            "must list 1 to 16 capability names",
        ));
    }
    for name in &pipeline {
        if !is_capability_name(name) {
            errors.push(FieldError::new(
                "pipeline",
                format!("`{name}` is not a capability name (lower-case letters, digits, `_`, `-`, separated by dots)"),
            ));
        }
    }

    if prompt.contains('\0') {
        errors.push(FieldError::new("prompt", NUL_PROBLEM));
    }

    let context = body.context.unwrap_or_else(|| serde_json::json!({}));
    if !context.is_object() {
        errors.push(FieldError::new("context", "must be a JSON object"));
    }
    // Wrapped, so a NUL in a top-level key is reported as `context`.
    if let Some(path) = nul_path(&serde_json::json!({ "context": &context })) {
        errors.push(FieldError::new(path, NUL_PROBLEM));
    }

    let priority = body.priority.unwrap_or(5);
    if !(0..=9).contains(&priority) {
        errors.push(FieldError::new(
            "priority",
            format!("{priority} is out of range; use 0 (lowest) to 9 (highest)"),
        ));
    }

    let mut labels = body.labels.unwrap_or_default();
    labels.sort();
    labels.dedup();
    if labels.len() > MAX_LABELS {
        errors.push(FieldError::new(
            "labels",
            format!("at most {MAX_LABELS} labels"),
        ));
    }
    for label in &labels {
        if !valid_label(label) {
            errors.push(FieldError::new(
                "labels",
                format!(
                    "`{label}` is not a label: 1 to {MAX_LABEL_LEN} letters, digits or `._:=/-`"
                ),
            ));
        }
    }

    let mut depends_on = body.depends_on.unwrap_or_default();
    depends_on.sort();
    depends_on.dedup();
    if depends_on.len() > MAX_DEPENDENCIES {
        errors.push(FieldError::new(
            "depends_on",
            format!("at most {MAX_DEPENDENCIES} dependencies"),
        ));
    }

    let max_attempts = body
        .max_attempts
        .unwrap_or(i64::from(settings.max_attempts));
    if !(1..=100).contains(&max_attempts) {
        errors.push(FieldError::new(
            "max_attempts",
            format!("{max_attempts} is out of range; use 1 to 100"),
        ));
    }

    let document = document.and_then(|raw| match document_from(raw) {
        Ok(doc) => Some(doc),
        Err(e) => {
            errors.push(e);
            None
        }
    });

    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }

    let request_hash = request_hash(
        &prompt,
        &pipeline,
        &context,
        priority,
        &labels,
        &depends_on,
        max_attempts,
        document.as_ref(),
    );
    Ok(NewJob {
        id,
        pipeline,
        prompt,
        context,
        priority: priority as i16,
        labels,
        depends_on,
        idempotency_key,
        request_hash,
        created_by: created_by.to_owned(),
        document,
        max_attempts: max_attempts as i32,
    })
}

fn document_from(raw: RawDocument) -> Result<Document, FieldError> {
    if raw.bytes.is_empty() {
        return Err(FieldError::new("document", "is empty"));
    }
    let file_name = raw
        .file_name
        .map(|n| n.rsplit(['/', '\\']).next().unwrap_or("").trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "document".to_owned());
    if file_name.len() > 255 || file_name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "document.file_name",
            "must be at most 255 characters without control characters",
        ));
    }
    let content_type = raw
        .content_type
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let valid_type = content_type.len() <= 255
        && content_type.split(';').next().is_some_and(|t| {
            let mut parts = t.trim().split('/');
            matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty())
        })
        && content_type.is_ascii()
        && !content_type.chars().any(|c| c.is_ascii_control());
    if !valid_type {
        return Err(FieldError::new(
            "document.content_type",
            format!("`{content_type}` is not a media type such as text/plain"),
        ));
    }
    let sha256 = hex::encode(Sha256::digest(&raw.bytes));
    Ok(Document {
        meta: DocumentMeta {
            file_name,
            content_type,
            size: raw.bytes.len() as i64,
            sha256,
        },
        bytes: raw.bytes,
    })
}

/// The idempotency fingerprint of a validated job.
#[allow(clippy::too_many_arguments)]
fn request_hash(
    prompt: &str,
    pipeline: &[String],
    context: &serde_json::Value,
    priority: i64,
    labels: &[String],
    depends_on: &[Uuid],
    max_attempts: i64,
    document: Option<&Document>,
) -> String {
    let canonical = serde_json::json!({
        "prompt": prompt,
        "pipeline": pipeline,
        "context": context,
        "priority": priority,
        "labels": labels,
        "depends_on": depends_on,
        "max_attempts": max_attempts,
        "document": document.map(|d| (&d.meta.sha256, &d.meta.file_name, &d.meta.content_type)),
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::config::RawConfig;
    use crate::fuzz_support::{json as any_json, text};

    fn request() -> impl Strategy<Value = serde_json::Value> {
        (
            proptest::option::of(text()),
            proptest::option::of(prop::collection::vec(text(), 0..4)),
            proptest::option::of(any_json()),
            proptest::option::of(any::<i64>()),
            proptest::option::of(prop::collection::vec(text(), 0..4)),
            proptest::option::of(any::<i64>()),
            proptest::option::of((
                text(),
                proptest::option::of(text()),
                proptest::option::of(text()),
            )),
        )
            .prop_map(
                |(prompt, pipeline, context, priority, labels, attempts, document)| {
                    let mut body = json!({});
                    let mut set = |k: &str, v: Option<serde_json::Value>| {
                        if let Some(v) = v {
                            body[k] = v;
                        }
                    };
                    set("prompt", prompt.map(Into::into));
                    set("pipeline", pipeline.map(Into::into));
                    set("context", context);
                    set("priority", priority.map(Into::into));
                    set("labels", labels.map(Into::into));
                    set("max_attempts", attempts.map(Into::into));
                    set(
                    "document",
                    document.map(|(content, name, kind)| {
                        json!({"content_base64": content, "file_name": name, "content_type": kind})
                    }),
                );
                    body
                },
            )
    }

    proptest! {
        /// Any body is a job or field errors, never a panic; a NUL anywhere
        /// in what is stored is one of the errors.
        #[test]
        fn any_body_is_a_job_or_field_errors(body in request()) {
            let settings = Settings::from_raw(RawConfig::default()).expect("defaults are valid");
            let request: CreateJobRequest = serde_json::from_value(body.clone()).expect("well-typed");
            let has_nul = body["prompt"].as_str().is_some_and(|p| p.contains('\0'))
                || crate::domain::storable::nul_path(&body["context"]).is_some();
            match validate(draft_from_json(request), &settings, "fuzz", None) {
                Ok(job) => {
                    prop_assert!(!has_nul, "{}", body);
                    prop_assert!(!job.prompt.trim().is_empty());
                }
                Err(ApiError::Validation(fields)) => prop_assert!(!fields.is_empty()),
                Err(other) => prop_assert!(false, "{other}"),
            }
        }
    }
}
