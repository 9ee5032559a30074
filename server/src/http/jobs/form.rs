//! `POST /v1/jobs` as multipart/form-data: the same fields as the JSON body,
//! as form fields, plus the document as a file part.
//!
//! [`CreateJobForm`] describes the form in the OpenAPI document (it is never
//! deserialised: [`read_multipart`] reads the fields as they stream in, so a
//! large document is not buffered twice), and the result goes through the
//! JSON body's validation.

use axum::extract::Multipart;
use uuid::Uuid;

use super::create::{CreateJobRequest, NewJobDraft, RawDocument};
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::body_too_large;

/// The multipart/form-data body of `POST /v1/jobs`.
#[allow(dead_code)] // read field by field in `read_multipart`
#[derive(utoipa::ToSchema)]
pub struct CreateJobForm {
    /// What the pipeline should do. Required, not blank.
    prompt: String,
    /// Capability names in order, comma-separated.
    pipeline: Option<String>,
    /// A JSON object handed to stage 1, as JSON text.
    context: Option<String>,
    /// 0 (lowest) to 9 (highest); default 5.
    priority: Option<String>,
    /// Comma-separated labels (the field may also repeat).
    labels: Option<String>,
    /// Comma-separated ids of jobs that must complete first.
    depends_on: Option<String>,
    /// Attempts per task (1..=100).
    max_attempts: Option<String>,
    /// The document: its file name and content type come from the part.
    #[schema(value_type = String, format = Binary)]
    document: Vec<u8>,
}

pub(super) async fn read_multipart(mut multipart: Multipart) -> Result<NewJobDraft, ApiError> {
    let mut body = CreateJobRequest::default();
    let mut document = None;
    let mut errors = Vec::new();
    let mut saw_file = false;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(body_too_large());
            }
            Err(e) => return Err(ApiError::bad_request("invalid_multipart", e.body_text())),
        };
        let name = field.name().unwrap_or("").to_owned();
        if name == "document" {
            saw_file = true;
            let file_name = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(str::to_owned);
            let bytes = field.bytes().await.map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    body_too_large()
                } else {
                    ApiError::bad_request("invalid_multipart", e.body_text())
                }
            })?;
            document = Some(RawDocument {
                bytes: bytes.to_vec(),
                file_name,
                content_type,
            });
            continue;
        }
        let text = field.text().await.map_err(|e| {
            ApiError::bad_request(
                "invalid_multipart",
                format!("field `{name}`: {}", e.body_text()),
            )
        })?;
        match name.as_str() {
            "prompt" => body.prompt = Some(text),
            "pipeline" => body.pipeline = Some(split_list(&text)),
            "labels" | "label" => body.labels.get_or_insert_with(Vec::new).extend(split_list(&text)),
            "priority" => match text.trim().parse() {
                Ok(p) => body.priority = Some(p),
                Err(_) => errors.push(FieldError::new("priority", format!("`{text}` is not a whole number from 0 to 9"))),
            },
            "max_attempts" => match text.trim().parse() {
                Ok(p) => body.max_attempts = Some(p),
                Err(_) => errors.push(FieldError::new("max_attempts", format!("`{text}` is not a whole number"))),
            },
            "context" => match serde_json::from_str(&text) {
                Ok(v) => body.context = Some(v),
                Err(e) => errors.push(FieldError::new("context", format!("is not valid JSON: {e}"))),
            },
            "depends_on" => {
                for id in split_list(&text) {
                    match Uuid::parse_str(&id) {
                        Ok(id) => body.depends_on.get_or_insert_with(Vec::new).push(id),
                        Err(_) => errors.push(FieldError::new("depends_on", format!("`{id}` is not a job id (UUID)"))),
                    }
                }
            }
            other => errors.push(FieldError::new(
                other,
                "unknown form field; allowed: prompt, pipeline, context, priority, labels, depends_on, max_attempts, document",
            )),
        }
    }
    if !saw_file {
        return Err(ApiError::invalid(
            "document",
            "a multipart/form-data job needs a `document` file part; send JSON instead when there is no document",
        ));
    }
    Ok(NewJobDraft {
        body,
        document,
        errors,
    })
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
