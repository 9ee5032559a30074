//! The Validator's logic: accept a requirement, or reject it with a reason.

use std::collections::HashMap;

use serde::Serialize;

use super::Requirement;
use super::text::{Match, find, words};
use crate::protocol::Verdict;

/// Which rule rejected a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionRule {
    /// The text is empty.
    Empty,
    /// The sentence starts with its modal verb: "Must be encrypted."
    MissingSubject,
    /// Fewer than 5 words, or vague terms ("etc.", "user-friendly", "fast"
    /// without a number, ...).
    TooVague,
    /// The same normalised text was seen before in the same job, under
    /// another item id.
    Duplicate,
}

/// The outcome of validating one requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Validation {
    /// The requirement passes.
    Accepted,
    /// The requirement is rejected.
    Rejected {
        /// The rule that rejected it.
        rule: RejectionRule,
        /// Why, for people: e.g. "too vague: `etc.`".
        reason: String,
    },
}

impl Validation {
    /// The verdict to send in `complete`.
    pub fn verdict(&self) -> Verdict {
        match self {
            Validation::Accepted => Verdict::Accepted,
            Validation::Rejected { .. } => Verdict::Rejected,
        }
    }

    /// The rejection reason, if rejected.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Validation::Accepted => None,
            Validation::Rejected { reason, .. } => Some(reason),
        }
    }

    /// The rule that rejected it, if rejected.
    pub fn rule(&self) -> Option<RejectionRule> {
        match self {
            Validation::Accepted => None,
            Validation::Rejected { rule, .. } => Some(*rule),
        }
    }
}

/// What the validator has seen of one job: normalised texts and the item id
/// that brought each first. Keyed by item id so that validating the same
/// item again (a retried task) gives the same answer.
#[derive(Debug, Clone, Default)]
pub struct ValidatorMemory {
    seen: HashMap<String, String>,
}

impl ValidatorMemory {
    /// An empty memory (one per job).
    pub fn new() -> Self {
        Self::default()
    }

    /// How many distinct texts were seen.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing was seen yet.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Fewer words than this is too vague.
pub const MIN_WORDS: usize = 5;

/// Modal verbs that, as a sentence's first word, show its subject is missing.
const MODAL_STARTS: &[&str] = &[
    "must", "shall", "should", "may", "has", "have", "needs", "need", "required", "muss", "müssen",
    "soll", "sollen", "sollte", "sollten", "darf", "dürfen",
];

/// Vague wherever they appear: (words, how the reason shows them).
const VAGUE: &[(&[&str], &str)] = &[
    (&["etc"], "etc."),
    (&["and", "so", "on"], "and so on"),
    (&["as", "appropriate"], "as appropriate"),
    (&["where", "appropriate"], "where appropriate"),
    (&["as", "needed"], "as needed"),
    (&["if", "necessary"], "if necessary"),
    (&["user", "friendly"], "user-friendly"),
    (&["easy", "to", "use"], "easy to use"),
    (&["intuitive"], "intuitive"),
    (&["as", "soon", "as", "possible"], "as soon as possible"),
    (&["best", "possible"], "best possible"),
    (&["usw"], "usw."),
    (&["benutzerfreundlich"], "benutzerfreundlich"),
    (&["gegebenenfalls"], "gegebenenfalls"),
    (&["ggf"], "ggf."),
];

/// Vague unless the sentence has a number.
const VAGUE_WITHOUT_NUMBER: &[&str] = &[
    "fast",
    "quick",
    "quickly",
    "rapid",
    "efficient",
    "performant",
    "timely",
    "schnell",
    "zeitnah",
];

/// Validates one requirement of a job, `item_id` naming its item. Rules, in
/// order: the text is not empty; the sentence does not start with its modal
/// verb (missing subject); it has at least [`MIN_WORDS`] words and no vague
/// terms; its normalised text (lower-case words) was not seen before in this
/// job under another item id (duplicate). Every text is remembered in
/// `memory`, accepted or not.
pub fn validate_requirement(
    item_id: &str,
    req: &Requirement,
    memory: &mut ValidatorMemory,
) -> Validation {
    let words = words(&req.text);
    let reject = |rule, reason: String| Validation::Rejected { rule, reason };
    if words.is_empty() {
        return reject(
            RejectionRule::Empty,
            "empty: the requirement has no text".into(),
        );
    }
    let first = memory
        .seen
        .entry(words.join(" "))
        .or_insert_with(|| item_id.to_owned())
        .clone();
    if MODAL_STARTS.contains(&words[0].as_str()) {
        return reject(
            RejectionRule::MissingSubject,
            format!(
                "missing subject: the sentence starts with the modal verb `{}`",
                words[0]
            ),
        );
    }
    if words.len() < MIN_WORDS {
        return reject(
            RejectionRule::TooVague,
            format!(
                "too vague: only {} words (at least {MIN_WORDS} needed)",
                words.len()
            ),
        );
    }
    let has_number = words.iter().any(|w| w.chars().any(|c| c.is_ascii_digit()));
    let mut vague: Vec<(usize, String)> = VAGUE
        .iter()
        .filter_map(|(phrase, shown)| {
            Some((find(&words, phrase, Match::Exact)?, format!("`{shown}`")))
        })
        .collect();
    if !has_number {
        vague.extend(VAGUE_WITHOUT_NUMBER.iter().filter_map(|w| {
            Some((
                find(&words, &[w], Match::Exact)?,
                format!("`{w}` without a number"),
            ))
        }));
    }
    if !vague.is_empty() {
        vague.sort();
        let terms: Vec<String> = vague.into_iter().map(|(_, t)| t).collect();
        return reject(
            RejectionRule::TooVague,
            format!("too vague: {}", terms.join(", ")),
        );
    }
    if first != item_id {
        return reject(
            RejectionRule::Duplicate,
            format!("duplicate: the same requirement as item {first}"),
        );
    }
    Validation::Accepted
}
