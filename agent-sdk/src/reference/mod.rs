//! The reference pipeline, deterministic and without an LLM: a *Creator*
//! extracts requirements from a document ([`extract_requirements`]), a
//! *Validator* accepts or rejects each one ([`validate_requirement`]).
//! [`agents`] wraps both as runnable agents (`examples/creator.rs`,
//! `examples/validator.rs`, and the hub's `switchyard dev`).

use serde::{Deserialize, Serialize};

pub mod agents;
mod extract;
mod sentences;
mod text;
mod validate;

pub use extract::extract_requirements;
pub use sentences::{Sentence, split_sentences};
pub use validate::{MIN_WORDS, RejectionRule, Validation, ValidatorMemory, validate_requirement};

/// One requirement: the `data` of an item emitted by the Creator.
///
/// Every field but `text` has a default, so the Validator also takes items
/// of other creators that send less.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Requirement {
    /// The sentence, with Markdown markup removed and whitespace collapsed.
    pub text: String,
    /// A short slug from the sentence's first content words, e.g.
    /// `invoices-archived-immutable-form-10`.
    pub name: String,
    /// What sort of requirement it is.
    pub kind: RequirementKind,
    /// Where the sentence is.
    pub source: SourceRef,
    /// Topics found by keyword: `gobd`, `gdpr`, `security`, `performance`,
    /// `availability` (in that order).
    pub tags: Vec<String>,
    /// From the modal verb: `high` (must, shall, required, muss, darf
    /// nicht, ...), `medium` (should, soll), `low` (may, darf).
    pub priority: Priority,
    /// Legal and standard references, e.g. `§ 147 AO`, `Art. 17 GDPR`,
    /// `ISO 27001`, in order of appearance.
    pub citations: Vec<String>,
    /// 0 to 1: how clearly the modal verb marks a requirement.
    pub confidence: f64,
    /// The modal verb found, lower-case, e.g. `must`, `is required to`,
    /// `dürfen nicht`.
    pub modal: String,
}

/// Where a requirement was found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceRef {
    /// The document's name (its file name).
    pub document: String,
    /// The 1-based line where the sentence starts.
    pub line: u32,
}

/// The sort of a requirement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequirementKind {
    /// What the system does (the default).
    #[default]
    Functional,
    /// How well it does it: security, performance, availability, usability.
    NonFunctional,
    /// Required by law or regulation (GoBD, GDPR, a cited paragraph).
    Compliance,
    /// A limit: at most, at least, only, must not exceed, ...
    Constraint,
}

impl RequirementKind {
    /// The name used on the wire (`non-functional`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            RequirementKind::Functional => "functional",
            RequirementKind::NonFunctional => "non-functional",
            RequirementKind::Compliance => "compliance",
            RequirementKind::Constraint => "constraint",
        }
    }
}

/// How important a requirement is, from its modal verb.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// must, shall, required, has to, muss, darf nicht, ...
    High,
    /// should, soll, sollte.
    #[default]
    Medium,
    /// may, darf: optional.
    Low,
}

impl Priority {
    /// The name used on the wire (`high`, `medium`, `low`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }
}
