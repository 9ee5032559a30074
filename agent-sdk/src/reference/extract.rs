//! The Creator's logic: sentences with a modal verb become requirements.

use std::sync::LazyLock;

use regex::Regex;

use super::sentences::{Sentence, split_sentences};
use super::text::{Match, collapse_whitespace, contains_any, find, slug_word, words};
use super::{Priority, Requirement, RequirementKind, SourceRef};

/// One modal verb: its words (consecutive), optionally a word that must come
/// later in the sentence (German `darf ... nicht`).
struct Modal {
    words: &'static [&'static str],
    later: &'static [&'static str],
    priority: Priority,
    confidence: f64,
}

const fn modal(words: &'static [&'static str], priority: Priority, confidence: f64) -> Modal {
    Modal {
        words,
        later: &[],
        priority,
        confidence,
    }
}

/// In order of precedence: the first that occurs decides.
#[rustfmt::skip]
const MODALS: &[Modal] = &[
    modal(&["must", "not"], Priority::High, 0.95),
    modal(&["must"], Priority::High, 0.95),
    modal(&["shall", "not"], Priority::High, 0.95),
    modal(&["shall"], Priority::High, 0.95),
    modal(&["is", "required", "to"], Priority::High, 0.9),
    modal(&["are", "required", "to"], Priority::High, 0.9),
    modal(&["has", "to"], Priority::High, 0.85),
    modal(&["have", "to"], Priority::High, 0.85),
    modal(&["needs", "to"], Priority::High, 0.8),
    modal(&["required"], Priority::High, 0.8),
    modal(&["muss"], Priority::High, 0.95),
    modal(&["müssen"], Priority::High, 0.95),
    Modal { words: &["darf"], later: NEGATIONS, priority: Priority::High, confidence: 0.9 },
    Modal { words: &["dürfen"], later: NEGATIONS, priority: Priority::High, confidence: 0.9 },
    modal(&["erforderlich"], Priority::High, 0.8),
    modal(&["should", "not"], Priority::Medium, 0.85),
    modal(&["should"], Priority::Medium, 0.85),
    modal(&["soll"], Priority::Medium, 0.85),
    modal(&["sollen"], Priority::Medium, 0.85),
    modal(&["sollte"], Priority::Medium, 0.8),
    modal(&["sollten"], Priority::Medium, 0.8),
    modal(&["may", "not"], Priority::High, 0.75),
    modal(&["may"], Priority::Low, 0.7),
    modal(&["darf"], Priority::Low, 0.7),
    modal(&["dürfen"], Priority::Low, 0.7),
];

/// German negations that make `darf`/`dürfen` a prohibition.
const NEGATIONS: &[&str] = &["nicht", "kein", "keine", "keinen"];

/// The modal verb of a sentence: its label, priority and confidence.
pub(crate) fn find_modal(words: &[String]) -> Option<(String, Priority, f64)> {
    MODALS.iter().find_map(|m| {
        let at = find(words, m.words, Match::Exact)?;
        let mut label = m.words.join(" ");
        if !m.later.is_empty() {
            let negation = words[at + m.words.len()..]
                .iter()
                .find(|w| m.later.contains(&w.as_str()))?;
            label = format!("{label} {negation}");
        }
        Some((label, m.priority, m.confidence))
    })
}

type Phrases = &'static [&'static [&'static str]];

/// Tag name and its keywords (matched with [`Match::Prefix`]).
#[rustfmt::skip]
const TAGS: &[(&str, Phrases)] = &[
    ("gobd", &[
        &["gobd"], &["aufbewahr"], &["retention"], &["retain"], &["archiv"], &["invoice"],
        &["rechnung"], &["audit", "trail"], &["unveränderbar"], &["unveränderlich"], &["immutable"],
        &["10", "years"], &["ten", "years"], &["10", "jahre"], &["zehn", "jahre"], &["bookkeeping"],
        &["buchführung"], &["buchung"], &["ao"], &["hgb"],
    ]),
    ("gdpr", &[
        &["gdpr"], &["dsgvo"], &["bdsg"], &["personal", "data"], &["personenbezogen"], &["consent"],
        &["einwilligung"], &["erase"], &["erasure"], &["deletion"], &["löschung"], &["data", "subject"],
        &["betroffene", "person"], &["privacy"], &["datenschutz"], &["pseudonym"], &["anonymi"],
        &["right", "to", "be", "forgotten"],
    ]),
    ("security", &[
        &["security"], &["secure"], &["encrypt"], &["verschlüssel"], &["tls"], &["authenticat"],
        &["authoriz"], &["authoris"], &["password"], &["passwort"], &["access", "control"],
        &["two", "factor"], &["2fa"], &["mfa"], &["iso", "27001"], &["vulnerab"], &["sicherheit"],
    ]),
    ("performance", &[
        &["performance"], &["latency"], &["response", "time"], &["respond", "within"],
        &["antwortzeit"], &["throughput"], &["millisecond"], &["ms"], &["seconds"], &["sekunde"],
        &["concurrent"],
    ]),
    ("availability", &[
        &["availability"], &["uptime"], &["verfügbarkeit"], &["failover"], &["backup"],
        &["disaster", "recovery"],
    ]),
];

/// Marks a non-functional requirement besides the tags.
#[rustfmt::skip]
const USABILITY: Phrases = &[
    &["user", "friendly"], &["usability"], &["usable"], &["benutzerfreundlich"], &["accessib"],
    &["barrierefrei"], &["maintainab"], &["scalab"], &["reliab"],
];

/// Marks a constraint.
#[rustfmt::skip]
const CONSTRAINT: Phrases = &[
    &["at", "most"], &["at", "least"], &["no", "more", "than"], &["maximum"], &["minimum"],
    &["exceed"], &["limited", "to"], &["only"], &["exclusively"], &["höchstens"], &["mindestens"],
    &["nur"], &["maximal"],
];

/// Words left out of a requirement's name.
#[rustfmt::skip]
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "of", "to", "for", "in", "on", "at", "by", "with", "be", "is",
    "are", "was", "been", "it", "its", "this", "that", "these", "those", "all", "any", "each",
    "every", "from", "as", "into", "per", "must", "shall", "should", "may", "not", "has", "have",
    "needs", "need", "required", "der", "die", "das", "den", "dem", "des", "ein", "eine", "einen",
    "einem", "einer", "und", "oder", "zu", "für", "mit", "von", "im", "am", "muss", "müssen",
    "soll", "sollen", "sollte", "sollten", "darf", "dürfen", "nicht", "werden", "wird", "sein",
    "ist", "sind", "nach", "gemäß",
];

static CITATIONS: LazyLock<[Regex; 3]> = LazyLock::new(|| {
    [
        r"§§?\s*\d+[a-z]?(?:\s*(?:Abs\.|Absatz)\s*\d+)?(?:\s*(?:S\.|Satz)\s*\d+)?(?:\s*Nr\.\s*\d+)?\s+[A-Z][A-Za-z]*[A-Z]\b",
        r"\b(?:Art\.|Artikel|Article)\s*\d+(?:\s*\(\d+\))*(?:\s*(?:Abs\.|para\.)\s*\d+)?(?:\s*lit\.\s*[a-z])?\s+(?:EU-)?(?:GDPR|DSGVO|BDSG)\b",
        r"\bISO(?:/IEC)?\s*\d{4,5}(?:-\d+)?(?::\d{4})?",
    ]
    .map(|re| Regex::new(re).unwrap())
});

/// Legal and standard references in `text`, in order of appearance.
pub(crate) fn citations(text: &str) -> Vec<String> {
    let mut found: Vec<(usize, String)> = CITATIONS
        .iter()
        .flat_map(|re| re.find_iter(text))
        .map(|m| (m.start(), collapse_whitespace(m.as_str())))
        .collect();
    found.sort();
    let mut out: Vec<String> = Vec::new();
    for (_, c) in found {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// Extracts one [`Requirement`] per sentence of `document` that contains a
/// modal verb (questions are skipped). `source_name` names the document in
/// each requirement's `source`.
///
/// A `prompt` that names GoBD or GDPR/DSGVO keeps only the requirements with
/// the named tag(s) (e.g. "Find the GoBD requirements"); any other prompt
/// keeps all.
pub fn extract_requirements(prompt: &str, document: &str, source_name: &str) -> Vec<Requirement> {
    let prompt_words = words(prompt);
    let mut focus: Vec<&str> = Vec::new();
    if prompt_words.iter().any(|w| w == "gobd") {
        focus.push("gobd");
    }
    if prompt_words.iter().any(|w| w == "gdpr" || w == "dsgvo") {
        focus.push("gdpr");
    }
    split_sentences(document)
        .into_iter()
        .filter(|s| !s.text.ends_with('?'))
        .filter_map(|s| requirement(s, source_name))
        .filter(|r| focus.is_empty() || r.tags.iter().any(|t| focus.contains(&t.as_str())))
        .collect()
}

fn requirement(sentence: Sentence, source_name: &str) -> Option<Requirement> {
    let words = words(&sentence.text);
    let (modal, priority, confidence) = find_modal(&words)?;
    let citations = citations(&sentence.text);
    let mut tags: Vec<String> = Vec::new();
    for (tag, keywords) in TAGS {
        let cited = citations.iter().any(|c| match *tag {
            "gobd" => c.ends_with(" AO") || c.ends_with(" HGB"),
            "gdpr" => c.ends_with("GDPR") || c.ends_with("DSGVO") || c.ends_with("BDSG"),
            "security" => c.starts_with("ISO"),
            _ => false,
        });
        if cited || contains_any(&words, keywords, Match::Prefix) {
            tags.push((*tag).to_owned());
        }
    }
    let has = |t: &str| tags.iter().any(|x| x == t);
    let legal = citations.iter().any(|c| !c.starts_with("ISO"));
    let kind = if has("gobd") || has("gdpr") || legal {
        RequirementKind::Compliance
    } else if has("security")
        || has("performance")
        || has("availability")
        || contains_any(&words, USABILITY, Match::Prefix)
    {
        RequirementKind::NonFunctional
    } else if contains_any(&words, CONSTRAINT, Match::Prefix) {
        RequirementKind::Constraint
    } else {
        RequirementKind::Functional
    };
    let name_words: Vec<String> = words
        .iter()
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .map(|w| slug_word(w))
        .filter(|w| !w.is_empty())
        .take(5)
        .collect();
    let name = if name_words.is_empty() {
        "requirement".to_owned()
    } else {
        name_words.join("-")
    };
    Some(Requirement {
        text: sentence.text,
        name,
        kind,
        source: SourceRef {
            document: source_name.to_owned(),
            line: sentence.line,
        },
        tags,
        priority,
        citations,
        confidence,
        modal,
    })
}
