//! Row shapes and row -> domain conversion, shared by both backends.
//!
//! The structs derive `sqlx::FromRow` generically, so the same struct is
//! decoded by the Postgres and the SQLite driver; stored values that do not
//! parse (an unknown status, an incomplete document row) become
//! [`StoreError::Corrupt`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::{DocumentMeta, Event, Item, ItemStatus, Job, JobStatus, Task};
use crate::store::StoreError;

/// The columns of a job row as read by [`JobRow`], joined with its document's
/// metadata (never its bytes). Use as `concat!(job_select!(), " WHERE ...")`.
macro_rules! job_select {
    () => {
        "SELECT j.id, j.status, j.status_reason, j.pipeline, j.prompt, j.context, j.priority, \
         j.idempotency_key, j.created_by, j.request_hash, j.created_at, j.updated_at, \
         j.started_at, j.finished_at, j.version, \
         d.file_name AS doc_file_name, d.content_type AS doc_content_type, \
         d.size AS doc_size, d.sha256 AS doc_sha256 \
         FROM jobs j LEFT JOIN documents d ON d.job_id = j.id"
    };
}
pub(crate) use job_select;

/// A `jobs` row joined with its document metadata.
#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    pub id: Uuid,
    pub status: String,
    pub status_reason: Option<String>,
    pub pipeline: Json<Vec<String>>,
    pub prompt: String,
    pub context: serde_json::Value,
    pub priority: i16,
    pub idempotency_key: Option<String>,
    pub created_by: String,
    pub request_hash: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub doc_file_name: Option<String>,
    pub doc_content_type: Option<String>,
    pub doc_size: Option<i64>,
    pub doc_sha256: Option<String>,
}

/// Labels and dependencies of some jobs, read in one query per page:
/// each row carries either a label or a dependency.
pub(crate) type AttachmentRow = (Uuid, Option<String>, Option<Uuid>);

/// Labels (sorted) and dependencies (sorted) per job.
#[derive(Default)]
pub(crate) struct Attachments(HashMap<Uuid, (Vec<String>, Vec<Uuid>)>);

impl Attachments {
    pub fn from_rows(rows: Vec<AttachmentRow>) -> Self {
        let mut map: HashMap<Uuid, (Vec<String>, Vec<Uuid>)> = HashMap::new();
        for (job_id, label, dep) in rows {
            let entry = map.entry(job_id).or_default();
            if let Some(label) = label {
                entry.0.push(label);
            }
            if let Some(dep) = dep {
                entry.1.push(dep);
            }
        }
        for (labels, deps) in map.values_mut() {
            labels.sort();
            deps.sort();
        }
        Attachments(map)
    }

    fn take(&mut self, job_id: Uuid) -> (Vec<String>, Vec<Uuid>) {
        self.0.remove(&job_id).unwrap_or_default()
    }
}

impl JobRow {
    pub fn into_job(self, attachments: &mut Attachments) -> Result<Job, StoreError> {
        let status = parse_status::<JobStatus>(&self.status, "job", self.id)?;
        let document = match (
            self.doc_file_name,
            self.doc_content_type,
            self.doc_size,
            self.doc_sha256,
        ) {
            (Some(file_name), Some(content_type), Some(size), Some(sha256)) => Some(DocumentMeta {
                file_name,
                content_type,
                size,
                sha256,
            }),
            (None, None, None, None) => None,
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "job {}: incomplete document row",
                    self.id
                )));
            }
        };
        let (labels, depends_on) = attachments.take(self.id);
        Ok(Job {
            id: self.id,
            status,
            status_reason: self.status_reason,
            pipeline: self.pipeline.0,
            prompt: self.prompt,
            context: self.context,
            priority: self.priority,
            labels,
            depends_on,
            idempotency_key: self.idempotency_key,
            created_by: self.created_by,
            document,
            items: None,
            created_at: self.created_at,
            updated_at: self.updated_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            version: self.version,
        })
    }
}

/// Converts a page of job rows, attaching labels and dependencies.
pub(crate) fn into_jobs(
    rows: Vec<JobRow>,
    attach: Vec<AttachmentRow>,
) -> Result<Vec<Job>, StoreError> {
    let mut attachments = Attachments::from_rows(attach);
    rows.into_iter()
        .map(|r| r.into_job(&mut attachments))
        .collect()
}

/// The columns of a task row as read by [`TaskRow`], unqualified (usable in
/// `SELECT ... FROM tasks` and in `RETURNING`).
/// Use as `concat!("SELECT ", task_columns!(), " FROM tasks WHERE ...")`.
macro_rules! task_columns {
    () => {
        "id, job_id, stage, capability, status, item_id, priority, attempt, failures, \
         max_attempts, agent_id, lease_until, next_run_at, error, created_at, updated_at"
    };
}
pub(crate) use task_columns;

/// A `tasks` row.
#[derive(sqlx::FromRow)]
pub(crate) struct TaskRow {
    pub id: Uuid,
    pub job_id: Uuid,
    pub stage: i32,
    pub capability: String,
    pub status: String,
    pub item_id: Option<Uuid>,
    pub priority: i16,
    pub attempt: i32,
    pub failures: i32,
    pub max_attempts: i32,
    pub agent_id: Option<Uuid>,
    pub lease_until: Option<DateTime<Utc>>,
    pub next_run_at: DateTime<Utc>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<TaskRow> for Task {
    type Error = StoreError;
    fn try_from(r: TaskRow) -> Result<Self, StoreError> {
        Ok(Task {
            status: parse_status(&r.status, "task", r.id)?,
            id: r.id,
            job_id: r.job_id,
            stage: r.stage,
            capability: r.capability,
            item_id: r.item_id,
            priority: r.priority,
            attempt: r.attempt,
            failures: r.failures,
            max_attempts: r.max_attempts,
            agent_id: r.agent_id,
            lease_until: r.lease_until,
            next_run_at: r.next_run_at,
            error: r.error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// An `items` row.
#[derive(sqlx::FromRow)]
pub(crate) struct ItemRow {
    pub id: Uuid,
    pub job_id: Uuid,
    pub source_task_id: Option<Uuid>,
    pub stage: i32,
    pub status: String,
    pub data: serde_json::Value,
    pub rejection_reason: Option<String>,
    pub last_error: Option<String>,
    pub retry_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<ItemRow> for Item {
    type Error = StoreError;
    fn try_from(r: ItemRow) -> Result<Self, StoreError> {
        Ok(Item {
            status: parse_status(&r.status, "item", r.id)?,
            id: r.id,
            job_id: r.job_id,
            source_task_id: r.source_task_id,
            stage: r.stage,
            data: r.data,
            rejection_reason: r.rejection_reason,
            last_error: r.last_error,
            retry_count: r.retry_count,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// An `events` row.
#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    pub seq: i64,
    pub job_id: Option<Uuid>,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// Absent from queries that do not select it (then `None`).
    #[sqlx(default)]
    pub request_id: Option<String>,
}

/// The columns of an event row as read by [`EventRow`].
/// Use as `concat!("SELECT ", event_columns!(), " FROM events WHERE ...")`.
macro_rules! event_columns {
    () => {
        "seq, job_id, type, payload, created_at, request_id"
    };
}
pub(crate) use event_columns;

impl From<EventRow> for Event {
    fn from(r: EventRow) -> Self {
        Event {
            seq: r.seq,
            job_id: r.job_id,
            kind: r.kind,
            payload: r.payload,
            created_at: r.created_at,
            request_id: r.request_id,
        }
    }
}

/// Parses a stored status; an unknown value means the row is corrupt.
pub(crate) fn parse_status<S>(text: &str, what: &str, id: Uuid) -> Result<S, StoreError>
where
    S: std::str::FromStr<Err = crate::domain::status::UnknownStatus>,
{
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("{what} {id}: {e}")))
}

/// Item counts from `(status, count)` rows.
pub(crate) fn item_counts(
    rows: Vec<(String, i64)>,
    job_id: Uuid,
) -> Result<crate::domain::ItemCounts, StoreError> {
    let mut counts = crate::domain::ItemCounts::default();
    for (status, n) in rows {
        counts.add(
            parse_status::<ItemStatus>(&status, "items of job", job_id)?,
            n,
        );
    }
    Ok(counts)
}
