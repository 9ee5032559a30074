//! The reference Creator and Validator as agents, for the examples and for
//! running both in-process (`switchyard dev`).
//!
//! **Duplicate detection is per validator process.** A validator task sees
//! one item, so the Validator keeps a memory of each job's items in the
//! process ([`JobMemories`], dropped after an hour unused). Two items with the
//! same text are caught only when both go to the same validator process
//! (and which of the two is rejected depends on the order they arrive).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{Requirement, ValidatorMemory, extract_requirements, validate_requirement};
use crate::protocol::Verdict;
use crate::{Agent, AgentBuilder, AgentError, CapabilitySpec, TaskContext, TaskError};

/// The Creator's capability.
pub const EXTRACT: &str = "requirements.extract";
/// The Validator's capability.
pub const VALIDATE: &str = "requirements.validate";

/// The Creator's task input (stage 1 of the pipeline).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExtractInput {
    /// The job's prompt; naming GoBD or GDPR narrows the extraction.
    pub prompt: String,
    /// The job's context (not used by the reference Creator).
    pub context: serde_json::Value,
    /// The job's document, if it has one: without one nothing is extracted.
    pub document: Option<DocumentInput>,
}

/// A job's document as the hub sends it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DocumentInput {
    /// The uploaded file's name (names the requirements' source).
    pub file_name: String,
    /// The uploaded content type.
    pub content_type: Option<String>,
    /// The bytes, standard base64; read as UTF-8 (invalid bytes replaced).
    pub content_base64: String,
}

/// The Creator's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractOutput {
    /// How many requirements (items) were emitted.
    pub requirements: usize,
}

/// The Validator's task input (stage 2): one item of stage 1.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ValidateInput {
    /// The job's prompt (not used by the reference Validator).
    pub prompt: String,
    /// The job's context (not used by the reference Validator).
    pub context: serde_json::Value,
    /// The item to judge.
    pub item: ItemInput,
}

/// An item as the hub sends it to the next stage.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ItemInput {
    /// The item's id (a UUID); the task id stands in when it is missing.
    pub id: Option<String>,
    /// The requirement.
    pub data: serde_json::Value,
}

/// The Validator's output; the verdict also goes into `complete.verdict`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateOutput {
    /// `accepted` or `rejected`.
    pub verdict: Verdict,
    /// Why it was rejected.
    pub reason: Option<String>,
}

/// The Creator agent, ready to spawn (see [`creator_builder`]).
pub fn creator(url: &str, token: &str, name: &str) -> Result<Agent, AgentError> {
    creator_builder(url, token, name).build()
}

/// The Creator agent's builder (`requirements.extract`, 4 at a time), to
/// adjust before building (backoff, heartbeats, labels).
pub fn creator_builder(url: &str, token: &str, name: &str) -> AgentBuilder {
    let spec = CapabilitySpec::new(EXTRACT)
        .version("1")
        .max_concurrency(4)
        .input_schema(json!({
            "type": "object",
            "properties": {
                "prompt": {"type": "string"},
                "context": {},
                "document": {
                    "type": ["object", "null"],
                    "properties": {
                        "file_name": {"type": "string"},
                        "content_type": {"type": ["string", "null"]},
                        "content_base64": {"type": "string"}
                    },
                    "required": ["content_base64"]
                }
            }
        }))
        .output_schema(json!({
            "type": "object",
            "properties": {"requirements": {"type": "integer", "minimum": 0}},
            "required": ["requirements"]
        }));
    Agent::builder(url, token, name)
        .version(env!("CARGO_PKG_VERSION"))
        .label("role", "creator")
        .capability(spec, extract)
}

/// Runs `requirements.extract`: emits one item per requirement found.
pub async fn extract(ctx: TaskContext, input: ExtractInput) -> Result<ExtractOutput, TaskError> {
    let Some(document) = input.document else {
        return Ok(ExtractOutput { requirements: 0 });
    };
    let encoded: String = document.content_base64.split_whitespace().collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| {
            TaskError::fatal(format!("document.content_base64 is not valid base64: {e}"))
        })?;
    let source = if document.file_name.is_empty() {
        "document".to_owned()
    } else {
        document.file_name
    };
    // A big document takes a while to read: off the runtime's threads, so
    // heartbeats and other tasks keep going meanwhile.
    let prompt = input.prompt;
    let requirements = tokio::task::spawn_blocking(move || {
        extract_requirements(&prompt, &String::from_utf8_lossy(&bytes), &source)
    })
    .await
    .map_err(|e| TaskError::retryable(format!("the extraction stopped: {e}")))?;
    for req in &requirements {
        if ctx.is_cancelled() {
            return Err(TaskError::retryable("cancelled"));
        }
        let data = serde_json::to_value(req).map_err(|e| TaskError::fatal(e.to_string()))?;
        ctx.emit_item(data).await;
    }
    Ok(ExtractOutput {
        requirements: requirements.len(),
    })
}

/// The Validator agent, ready to spawn (see [`validator_builder`]).
pub fn validator(url: &str, token: &str, name: &str) -> Result<Agent, AgentError> {
    validator_builder(url, token, name).build()
}

/// The Validator agent's builder (`requirements.validate`, 8 at a time),
/// with a fresh [`JobMemories`].
pub fn validator_builder(url: &str, token: &str, name: &str) -> AgentBuilder {
    let memories = Arc::new(JobMemories::new(Duration::from_secs(3600)));
    let spec = CapabilitySpec::new(VALIDATE)
        .version("1")
        .max_concurrency(8)
        .input_schema(json!({
            "type": "object",
            "properties": {
                "prompt": {"type": "string"},
                "context": {},
                "item": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}, "data": {"type": "object"}},
                    "required": ["data"]
                }
            },
            "required": ["item"]
        }))
        .output_schema(json!({
            "type": "object",
            "properties": {
                "verdict": {"enum": ["accepted", "rejected"]},
                "reason": {"type": ["string", "null"]}
            },
            "required": ["verdict"]
        }));
    Agent::builder(url, token, name)
        .version(env!("CARGO_PKG_VERSION"))
        .label("role", "validator")
        .capability(spec, move |ctx, input| {
            validate(Arc::clone(&memories), ctx, input)
        })
}

/// Runs `requirements.validate` for one item, rejecting through
/// [`TaskContext::reject`].
pub async fn validate(
    memories: Arc<JobMemories>,
    ctx: TaskContext,
    input: ValidateInput,
) -> Result<ValidateOutput, TaskError> {
    let req: Requirement = serde_json::from_value(input.item.data)
        .map_err(|e| TaskError::fatal(format!("item.data is not a requirement: {e}")))?;
    let item_id = input.item.id.unwrap_or_else(|| ctx.task_id().to_string());
    let validation = memories.validate(ctx.job_id(), &item_id, &req);
    if let Some(reason) = validation.reason() {
        ctx.reject(reason);
    }
    Ok(ValidateOutput {
        verdict: validation.verdict(),
        reason: validation.reason().map(str::to_owned),
    })
}

/// The Validator's per-job memories, shared by its concurrent tasks; a job's
/// memory is dropped after `ttl` without use.
#[derive(Debug)]
pub struct JobMemories {
    ttl: Duration,
    jobs: Mutex<HashMap<Uuid, (ValidatorMemory, Instant)>>,
}

impl JobMemories {
    /// Empty memories, forgetting a job after `ttl` unused.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            jobs: Mutex::new(HashMap::new()),
        }
    }

    /// Validates `req` (item `item_id`) against the earlier items of `job_id`.
    pub fn validate(&self, job_id: Uuid, item_id: &str, req: &Requirement) -> super::Validation {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        jobs.retain(|_, (_, used)| now.duration_since(*used) < self.ttl);
        let (memory, used) = jobs
            .entry(job_id)
            .or_insert_with(|| (ValidatorMemory::new(), now));
        *used = now;
        validate_requirement(item_id, req, memory)
    }

    /// How many jobs are remembered.
    pub fn jobs(&self) -> usize {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}
