//! The domain model: what the hub talks about, independent of storage and transport.
//!
//! Every status enum lives in [`status`], defined and documented once, with the
//! string form used on the wire, in the database and in metrics.

pub mod agent;
pub mod attempt;
pub mod context_filter;
pub mod event;
pub mod item;
pub mod job;
pub mod retry;
pub mod status;
pub mod storable;
pub mod task;

pub use agent::{AgentRecord, AgentRegistration, AgentSnapshot, CapabilityRecord};
pub use attempt::{Attempt, AttemptOutcome, attempts_of};
pub use context_filter::ContextFilter;
pub use event::{Event, EventType, NewEvent};
pub use item::{Item, ItemCounts, NewItem};
pub use job::{CreateJobOutcome, Document, DocumentMeta, Job, JobFilter, JobPage, NewJob};
pub use retry::RetryPolicy;
pub use status::{AgentHealth, AgentSessionState, ItemStatus, JobStatus, TaskStatus};
pub use task::{Task, TaskCompletion, TaskFailure, TaskOutcome};
