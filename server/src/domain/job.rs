//! Jobs: what a client submits.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::item::ItemCounts;
use super::status::JobStatus;

/// A job as stored and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub id: Uuid,
    pub status: JobStatus,
    /// Why the job is in its status (for `failed` and `cancelled`).
    pub status_reason: Option<String>,
    /// Ordered capability names; stage 1 gets the job's input.
    pub pipeline: Vec<String>,
    pub prompt: String,
    /// Free-form JSON object handed to stage 1.
    #[schema(value_type = Object)]
    pub context: serde_json::Value,
    /// 0 (lowest) to 9 (highest).
    pub priority: i16,
    pub labels: Vec<String>,
    pub depends_on: Vec<Uuid>,
    pub idempotency_key: Option<String>,
    /// The `sub` of the token that created it.
    pub created_by: String,
    pub document: Option<DocumentMeta>,
    /// Item counts by status; filled in by single-job reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<ItemCounts>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Bumped by every state change; conditional updates compare it.
    pub version: i64,
}

/// What is known about a stored document without loading its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DocumentMeta {
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    /// Hex sha256 of the bytes.
    pub sha256: String,
}

/// A stored document with its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub meta: DocumentMeta,
    pub bytes: Vec<u8>,
}

/// A validated job ready to be stored. Built by the HTTP layer.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub pipeline: Vec<String>,
    pub prompt: String,
    pub context: serde_json::Value,
    pub priority: i16,
    pub labels: Vec<String>,
    pub depends_on: Vec<Uuid>,
    pub idempotency_key: Option<String>,
    /// Hex sha256 of the canonical request, compared on an idempotent replay.
    pub request_hash: String,
    pub created_by: String,
    pub document: Option<Document>,
    pub max_attempts: i32,
}

/// The result of [`crate::store::Store::create_job`].
#[derive(Debug, Clone)]
pub enum CreateJobOutcome {
    /// A new job was stored.
    Created(Job),
    /// The idempotency key was seen before with the same request: the original job.
    Existing(Job),
}

/// Filters for listing jobs, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub label: Option<String>,
    /// Every one must match (see [`super::ContextFilter`]).
    pub context: Vec<super::ContextFilter>,
    /// Only jobs whose prompt contains this text, ignoring ASCII case.
    pub text: Option<String>,
    /// Only jobs created at or after this instant.
    pub created_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Only jobs created before this instant.
    pub created_before: Option<chrono::DateTime<chrono::Utc>>,
    /// Return only jobs strictly older than this id (ids are UUIDv7, so time ordered).
    pub before: Option<Uuid>,
    pub limit: u32,
}

/// One page of jobs; `next` is the id to continue before, if there are more.
#[derive(Debug, Clone)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    pub next: Option<Uuid>,
}

/// The input of a job's first-stage task, as pushed to the agent (and checked
/// against input schemas at submit time): the one definition, used by the
/// create handlers and by the store when it reads an input back. The
/// document's bytes are standard base64 (with padding).
pub fn stage0_input(
    job_id: Uuid,
    prompt: &str,
    context: &serde_json::Value,
    document: Option<&Document>,
) -> serde_json::Value {
    use base64::Engine;
    serde_json::json!({
        "job_id": job_id,
        "prompt": prompt,
        "context": context,
        "document": document.map(|d| serde_json::json!({
            "file_name": d.meta.file_name,
            "content_type": d.meta.content_type,
            "size": d.meta.size,
            "sha256": d.meta.sha256,
            "content_base64": base64::engine::general_purpose::STANDARD.encode(&d.bytes),
        })),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn documents_are_standard_base64() {
        let doc = Document {
            meta: DocumentMeta {
                file_name: "a.bin".into(),
                content_type: "application/octet-stream".into(),
                size: 3,
                sha256: "00".into(),
            },
            bytes: vec![0xfb, 0xff, 0xfe],
        };
        let input = stage0_input(Uuid::nil(), "p", &json!({}), Some(&doc));
        assert_eq!(input["document"]["content_base64"], "+//+");
        assert_eq!(
            stage0_input(Uuid::nil(), "p", &json!({}), None)["document"],
            json!(null)
        );
    }
}
