//! The reference Creator/Validator logic on `fixtures/sample-spec.md`, with
//! exact expected outputs (the hub's end-to-end test relies on these counts).

use std::collections::BTreeMap;

use switchyard_agent::Verdict;
use switchyard_agent::reference::{
    Priority, RejectionRule, Requirement, RequirementKind, Validation, ValidatorMemory,
    extract_requirements, split_sentences, validate_requirement,
};

const SAMPLE: &str = include_str!("fixtures/sample-spec.md");

fn sample() -> Vec<Requirement> {
    extract_requirements("Extract the requirements", SAMPLE, "sample-spec.md")
}

/// (line, modal, priority, kind, tags, citations, confidence, name)
type Expected = (
    u32,
    &'static str,
    Priority,
    RequirementKind,
    &'static [&'static str],
    &'static [&'static str],
    f64,
    &'static str,
);

use Priority::{High, Low, Medium};
use RequirementKind::{Compliance, Constraint, Functional, NonFunctional};

const EXPECTED: &[Expected] = &[
    (
        8,
        "must",
        High,
        Compliance,
        &["gobd"],
        &["§ 147 AO"],
        0.95,
        "invoices-archived-immutable-form-10",
    ),
    (
        9,
        "shall",
        High,
        Compliance,
        &["gobd"],
        &[],
        0.95,
        "archive-keep-audit-trail-change",
    ),
    (
        11,
        "müssen",
        High,
        Compliance,
        &["gobd"],
        &[],
        0.95,
        "rechnungen-unveraenderbar-aufbewahrt",
    ),
    (
        12,
        "dürfen nicht",
        High,
        Compliance,
        &["gobd"],
        &[],
        0.9,
        "buchungen-nachtraeglich-veraendert",
    ),
    (
        16,
        "must",
        High,
        Compliance,
        &["gdpr"],
        &["Art. 17 GDPR"],
        0.95,
        "personal-data-customers-erased-request",
    ),
    (
        17,
        "should",
        Medium,
        Compliance,
        &["gdpr"],
        &[],
        0.85,
        "system-record-consent-data-subject",
    ),
    (
        18,
        "may",
        Low,
        NonFunctional,
        &["security"],
        &[],
        0.7,
        "exports-encrypted-customer-supplied-key",
    ),
    (
        19,
        "sollen",
        Medium,
        Compliance,
        &["gdpr"],
        &["Art. 5 DSGVO"],
        0.85,
        "personenbezogene-daten-art-5-dsgvo",
    ),
    (
        23,
        "should",
        Medium,
        NonFunctional,
        &["performance"],
        &[],
        0.85,
        "search-page-respond-within-500",
    ),
    (
        24,
        "should",
        Medium,
        NonFunctional,
        &[],
        &[],
        0.85,
        "user-interface-user-friendly-fast",
    ),
    (
        25,
        "must",
        High,
        NonFunctional,
        &["security"],
        &[],
        0.95,
        "encrypted-rest",
    ),
    (
        26,
        "must",
        High,
        Compliance,
        &["gobd"],
        &["§ 147 AO"],
        0.95,
        "invoices-archived-immutable-form-10",
    ),
    (
        27,
        "is required to",
        High,
        NonFunctional,
        &["security"],
        &["ISO 27001"],
        0.9,
        "access-admin-console-use-two",
    ),
    (
        28,
        "must not",
        High,
        Constraint,
        &[],
        &[],
        0.95,
        "uploaded-documents-exceed-25-mb",
    ),
    (
        29,
        "may",
        Low,
        Functional,
        &[],
        &[],
        0.7,
        "administrators-export-audit-reports-pdf",
    ),
];

#[test]
fn sentences_of_the_sample() {
    let sentences = split_sentences(SAMPLE);
    let lines: Vec<u32> = sentences.iter().map(|s| s.line).collect();
    assert_eq!(
        lines,
        [
            3, 4, 8, 9, 11, 12, 16, 17, 18, 19, 23, 24, 25, 26, 27, 28, 29, 31
        ]
    );
    assert_eq!(
        sentences[3].text,
        "The archive shall keep an audit trail of every change to a booking record."
    );
    assert_eq!(
        sentences[17].text,
        "Note: see the appendix for the glossary."
    );
}

#[test]
fn extracts_exactly_the_expected_requirements() {
    let reqs = sample();
    assert_eq!(reqs.len(), EXPECTED.len());
    for (req, &(line, modal, priority, kind, tags, citations, confidence, name)) in
        reqs.iter().zip(EXPECTED)
    {
        assert_eq!(req.source.document, "sample-spec.md");
        assert_eq!(req.source.line, line, "{req:?}");
        assert_eq!(req.modal, modal, "line {line}");
        assert_eq!(req.priority, priority, "line {line}");
        assert_eq!(req.kind, kind, "line {line}");
        assert_eq!(req.tags, tags, "line {line}");
        assert_eq!(req.citations, citations, "line {line}");
        assert_eq!(req.confidence, confidence, "line {line}");
        assert_eq!(req.name, name, "line {line}");
    }
    assert_eq!(
        reqs[0].text,
        "Invoices must be archived in an immutable form for 10 years according to § 147 AO."
    );
}

fn count<K: Ord>(keys: impl IntoIterator<Item = K>) -> BTreeMap<K, usize> {
    let mut counts = BTreeMap::new();
    for k in keys {
        *counts.entry(k).or_default() += 1;
    }
    counts
}

#[test]
fn counts_by_priority_kind_and_tag() {
    let reqs = sample();
    assert_eq!(
        count(reqs.iter().map(|r| r.priority.as_str())),
        BTreeMap::from([("high", 9), ("low", 2), ("medium", 4)])
    );
    assert_eq!(
        count(reqs.iter().map(|r| r.kind.as_str())),
        BTreeMap::from([
            ("compliance", 8),
            ("constraint", 1),
            ("functional", 1),
            ("non-functional", 5)
        ])
    );
    assert_eq!(
        count(reqs.iter().flat_map(|r| r.tags.iter().map(String::as_str))),
        BTreeMap::from([
            ("gdpr", 3),
            ("gobd", 5),
            ("performance", 1),
            ("security", 3)
        ])
    );
}

#[test]
fn item_data_has_the_documented_shape() {
    let data = serde_json::to_value(&sample()[4]).unwrap();
    assert_eq!(
        data,
        serde_json::json!({
            "text": "Personal data of customers must be erased on request according to Art. 17 GDPR.",
            "name": "personal-data-customers-erased-request",
            "kind": "compliance",
            "source": {"document": "sample-spec.md", "line": 16},
            "tags": ["gdpr"],
            "priority": "high",
            "citations": ["Art. 17 GDPR"],
            "confidence": 0.95,
            "modal": "must"
        })
    );
    let back: Requirement = serde_json::from_value(data).unwrap();
    assert_eq!(back, sample()[4]);
}

#[test]
fn validates_the_sample_exactly() {
    let reqs = sample();
    let mut memory = ValidatorMemory::new();
    let results: Vec<Validation> = reqs
        .iter()
        .enumerate()
        .map(|(i, r)| validate_requirement(&format!("item-{i}"), r, &mut memory))
        .collect();
    let rejected: Vec<(u32, RejectionRule, &str)> = reqs
        .iter()
        .zip(&results)
        .filter_map(|(r, v)| Some((r.source.line, v.rule()?, v.reason()?)))
        .collect();
    assert_eq!(
        rejected,
        [
            (
                24,
                RejectionRule::TooVague,
                "too vague: `user-friendly`, `fast` without a number, `etc.`"
            ),
            (
                25,
                RejectionRule::MissingSubject,
                "missing subject: the sentence starts with the modal verb `must`"
            ),
            (
                26,
                RejectionRule::Duplicate,
                "duplicate: the same requirement as item item-0"
            ),
        ]
    );
    assert_eq!(
        results
            .iter()
            .filter(|v| v.verdict() == Verdict::Accepted)
            .count(),
        12
    );
    let accepted = || {
        reqs.iter()
            .zip(&results)
            .filter(|(_, v)| **v == Validation::Accepted)
            .map(|(r, _)| r)
    };
    assert_eq!(
        count(accepted().map(|r| r.priority.as_str())),
        BTreeMap::from([("high", 7), ("low", 2), ("medium", 3)])
    );
    assert_eq!(
        count(accepted().flat_map(|r| r.tags.iter().map(String::as_str))),
        BTreeMap::from([
            ("gdpr", 3),
            ("gobd", 4),
            ("performance", 1),
            ("security", 2)
        ])
    );
    // A retried task validating the same item again gets the same answer.
    assert_eq!(
        validate_requirement("item-0", &reqs[0], &mut memory),
        Validation::Accepted
    );
    assert_eq!(
        validate_requirement("item-11", &reqs[11], &mut memory).rule(),
        Some(RejectionRule::Duplicate)
    );
    assert_eq!(memory.len(), 14);
}

#[test]
fn prompt_naming_gobd_or_gdpr_narrows_the_extraction() {
    let gobd = extract_requirements("Find the GoBD requirements", SAMPLE, "s.md");
    assert_eq!(
        gobd.iter().map(|r| r.source.line).collect::<Vec<_>>(),
        [8, 9, 11, 12, 26]
    );
    let gdpr = extract_requirements("Alles zur DSGVO", SAMPLE, "s.md");
    assert_eq!(
        gdpr.iter().map(|r| r.source.line).collect::<Vec<_>>(),
        [16, 17, 19]
    );
    assert_eq!(
        extract_requirements("GoBD and GDPR", SAMPLE, "s.md").len(),
        8
    );
}

#[test]
fn markdown_structure_and_abbreviations() {
    let doc = "Title\n=====\n\n\
               Intro text, e.g. this. Art. 6 (1) lit. a DSGVO applies here.\n\
               ```\nThe code must not count.\n```\n\
               | The table must | not count |\n\
               1. First item must hold\n   over two lines.\n\
               2) Second item may differ!\n\
               > Quoted text should count (see [the spec](http://x.y/z)).\n\
               Should we ask?\n\
               Costs are listed etc. The next one must be counted too.\n";
    let sentences = split_sentences(doc);
    let texts: Vec<(&str, u32)> = sentences
        .iter()
        .map(|s| (s.text.as_str(), s.line))
        .collect();
    assert_eq!(
        texts,
        [
            ("Intro text, e.g. this.", 4),
            ("Art. 6 (1) lit. a DSGVO applies here.", 4),
            ("First item must hold over two lines.", 9),
            ("Second item may differ!", 11),
            ("Quoted text should count (see the spec).", 12),
            ("Should we ask?", 13),
            ("Costs are listed etc.", 14),
            ("The next one must be counted too.", 14),
        ]
    );
    let reqs = extract_requirements("", doc, "d.md");
    let found: Vec<(&str, &str)> = reqs
        .iter()
        .map(|r| (r.text.as_str(), r.modal.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("First item must hold over two lines.", "must"),
            ("Second item may differ!", "may"),
            ("Quoted text should count (see the spec).", "should"),
            ("The next one must be counted too.", "must"),
        ]
    );
}

#[test]
fn citations_and_modal_variants() {
    let doc = "Belege sind nach § 147 Abs. 1 Nr. 4 AO und § 257 HGB aufzubewahren, das muss gelten.\n\n\
               The processor has to honour Art. 6(1) GDPR and ISO/IEC 27001:2022 controls.\n\n\
               Der Export darf keine Kundendaten enthalten.\n\n\
               Exports are required for every month.";
    let reqs = extract_requirements("", doc, "d.md");
    let summary: Vec<(&str, Priority, Vec<String>, Vec<String>)> = reqs
        .iter()
        .map(|r| {
            (
                r.modal.as_str(),
                r.priority,
                r.citations.clone(),
                r.tags.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "muss",
                High,
                vec!["§ 147 Abs. 1 Nr. 4 AO".into(), "§ 257 HGB".into()],
                vec!["gobd".into()]
            ),
            (
                "has to",
                High,
                vec!["Art. 6(1) GDPR".into(), "ISO/IEC 27001:2022".into()],
                vec!["gdpr".into(), "security".into()]
            ),
            ("darf keine", High, vec![], vec![]),
            ("required", High, vec![], vec![]),
        ]
    );
}

#[test]
fn validator_rules() {
    let req = |text: &str| Requirement {
        text: text.into(),
        ..Requirement::default()
    };
    let mut m = ValidatorMemory::new();
    let mut check = |text: &str| validate_requirement("x", &req(text), &mut m);
    assert_eq!(check("").rule(), Some(RejectionRule::Empty));
    assert_eq!(
        check("It must work.").reason(),
        Some("too vague: only 3 words (at least 5 needed)")
    );
    assert_eq!(
        check("Search results must be fast, as appropriate.").reason(),
        Some("too vague: `fast` without a number, `as appropriate`")
    );
    assert_eq!(
        check("Search results must be fast: at most 200 ms.").rule(),
        None
    );
    assert_eq!(
        check("Soll nachvollziehbar protokolliert werden.").rule(),
        Some(RejectionRule::MissingSubject)
    );
}
