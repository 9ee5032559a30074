//! The input pushed to an agent with a task, built the same on both
//! backends (stage 0's is the domain's [`crate::domain::job::stage0_input`]).

use serde_json::json;
use uuid::Uuid;

use crate::domain::Document;

/// Later stages: the job's prompt and context and the item to work on.
pub(crate) fn item_input(
    job_id: Uuid,
    prompt: &str,
    context: &serde_json::Value,
    item_id: Uuid,
    stage: i32,
    data: &serde_json::Value,
) -> serde_json::Value {
    json!({
        "job_id": job_id,
        "prompt": prompt,
        "context": context,
        "item": { "id": item_id, "stage": stage, "data": data },
    })
}

/// A `documents` row: a stage-0 task's input carries it.
#[derive(sqlx::FromRow)]
pub(crate) struct DocumentRow {
    pub job_id: Uuid,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub bytes: Vec<u8>,
}

impl DocumentRow {
    pub fn into_document(self) -> Document {
        Document {
            meta: crate::domain::DocumentMeta {
                file_name: self.file_name,
                content_type: self.content_type,
                size: self.size,
                sha256: self.sha256,
            },
            bytes: self.bytes,
        }
    }
}
