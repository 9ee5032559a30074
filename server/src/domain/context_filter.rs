//! Filters on a job's `context`: `GET /v1/jobs?context.customer=acme`.
//!
//! The orchestrator stores whatever JSON object it likes as a job's context
//! (customer, order, document kind) and later wants "every job of customer
//! acme". A filter names a key path (nested keys joined with dots) and a
//! value as it arrives in a query string, i.e. as text. It matches a job
//! whose context holds, at that path, the same string, or, when the text
//! reads as one, the same number or boolean (`context.n=42` matches both
//! `{"n": 42}` and `{"n": "42"}`). Arrays and objects are never equal to a
//! filter value, and a missing key never matches.
//!
//! The rule is parsed once here; the store's drivers only spell the match
//! (Postgres: JSON containment, which a GIN index serves; SQLite: the
//! JSON text at the path).

use serde_json::{Map, Value};

/// At most this many context filters in one query: each is a condition the
/// database evaluates per job.
pub const MAX_CONTEXT_FILTERS: usize = 8;

/// One `context.<path>=<value>` filter.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextFilter {
    /// The keys from the context's root, outermost first.
    pub path: Vec<String>,
    /// The JSON values the filter accepts at `path`: the text as a string,
    /// then the number or boolean it reads as, if any.
    pub candidates: Vec<Value>,
}

impl ContextFilter {
    /// Parses a filter from its dotted key (without the `context.` prefix)
    /// and its raw value. The error says what is wrong with the key.
    pub fn parse(key: &str, value: &str) -> Result<Self, String> {
        if key.is_empty() {
            return Err(
                "`context.` needs a key after the dot, e.g. `context.customer=acme`".into(),
            );
        }
        let path: Vec<String> = key.split('.').map(str::to_owned).collect();
        if path.iter().any(String::is_empty) {
            return Err(format!(
                "context key `{key}` has an empty part; nested keys are joined by single dots, e.g. `context.order.id=7`"
            ));
        }
        if let Some(bad) = path.iter().find(|p| p.contains('"') || p.contains('\\')) {
            return Err(format!(
                "context key part `{bad}` contains a quote or backslash, which filters do not support"
            ));
        }
        let mut candidates = vec![Value::String(value.to_owned())];
        match value {
            "true" => candidates.push(Value::Bool(true)),
            "false" => candidates.push(Value::Bool(false)),
            _ => {
                if let Ok(n) = value.parse::<serde_json::Number>() {
                    candidates.push(Value::Number(n));
                }
            }
        }
        Ok(Self { path, candidates })
    }

    /// `{"a": {"b": candidate}}` for each candidate: what a context must
    /// contain to match (Postgres' `@>`).
    pub fn containments(&self) -> Vec<Value> {
        self.candidates
            .iter()
            .map(|candidate| {
                self.path
                    .iter()
                    .rev()
                    .fold(candidate.clone(), |inner, key| {
                        let mut object = Map::new();
                        object.insert(key.clone(), inner);
                        Value::Object(object)
                    })
            })
            .collect()
    }

    /// The path as a SQLite JSON path: `$."a"."b"` (parts quoted, so keys
    /// with spaces or brackets are taken literally).
    pub fn json_path(&self) -> String {
        let mut path = String::from("$");
        for part in &self.path {
            path.push_str(".\"");
            path.push_str(part);
            path.push('"');
        }
        path
    }

    /// Each candidate as compact JSON text: what SQLite's `->` yields for an
    /// equal scalar stored by serde.
    pub fn candidate_texts(&self) -> Vec<String> {
        self.candidates.iter().map(Value::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_numbers_and_booleans() {
        let f = ContextFilter::parse("customer", "acme").unwrap();
        assert_eq!(f.candidates, vec![json!("acme")]);
        let f = ContextFilter::parse("order.id", "42").unwrap();
        assert_eq!(f.path, vec!["order", "id"]);
        assert_eq!(f.candidates, vec![json!("42"), json!(42)]);
        assert_eq!(
            f.containments(),
            vec![json!({"order": {"id": "42"}}), json!({"order": {"id": 42}})]
        );
        assert_eq!(f.json_path(), r#"$."order"."id""#);
        assert_eq!(f.candidate_texts(), vec![r#""42""#, "42"]);
        let f = ContextFilter::parse("urgent", "true").unwrap();
        assert_eq!(f.candidates, vec![json!("true"), json!(true)]);
        let f = ContextFilter::parse("ratio", "0.5").unwrap();
        assert_eq!(f.candidates, vec![json!("0.5"), json!(0.5)]);
        let f = ContextFilter::parse("name", "Zoë \"Z\"").unwrap();
        assert_eq!(f.candidate_texts(), vec![r#""Zoë \"Z\"""#]);
    }

    #[test]
    fn bad_keys_say_why() {
        assert!(
            ContextFilter::parse("", "x")
                .unwrap_err()
                .contains("needs a key")
        );
        assert!(
            ContextFilter::parse("a..b", "x")
                .unwrap_err()
                .contains("empty part")
        );
        assert!(
            ContextFilter::parse("a.", "x")
                .unwrap_err()
                .contains("empty part")
        );
        assert!(
            ContextFilter::parse("a\"b", "x")
                .unwrap_err()
                .contains("quote")
        );
    }
}
