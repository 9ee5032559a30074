//! Strategies shared by the property tests (compiled for tests only).
//!
//! Inputs are built to reach the parsers' edges: NUL and other control
//! characters, non-ASCII text, huge and negative numbers, deep nesting.

use proptest::prelude::*;
use serde_json::Value;

/// Text with the characters parsers trip on.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        "[a-z0-9._-]{0,12}",
        prop::collection::vec(
            prop_oneof![
                Just('\0'),
                Just('"'),
                Just('\\'),
                Just('é'),
                Just('\u{1F600}'),
                any::<char>()
            ],
            0..8
        )
        .prop_map(|c| c.into_iter().collect()),
    ]
}

/// Any JSON value, a few levels deep.
pub fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
