//! The input pushed to an agent with a task, built the same on both backends.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use uuid::Uuid;

use crate::domain::Document;

/// Stage 0: the job's prompt, context and document (bytes as standard base64).
pub(crate) fn stage_zero_input(
    job_id: Uuid,
    prompt: &str,
    context: &serde_json::Value,
    document: Option<&Document>,
) -> serde_json::Value {
    let document = document.map(|d| {
        json!({
            "file_name": d.meta.file_name,
            "content_type": d.meta.content_type,
            "size": d.meta.size,
            "sha256": d.meta.sha256,
            "content_base64": STANDARD.encode(&d.bytes),
        })
    });
    json!({ "job_id": job_id, "prompt": prompt, "context": context, "document": document })
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DocumentMeta;

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
        let input = stage_zero_input(Uuid::nil(), "p", &json!({}), Some(&doc));
        assert_eq!(input["document"]["content_base64"], "+//+");
        assert_eq!(
            stage_zero_input(Uuid::nil(), "p", &json!({}), None)["document"],
            json!(null)
        );
    }
}
