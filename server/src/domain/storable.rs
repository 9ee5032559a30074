//! Text the store can hold.
//!
//! Postgres cannot store U+0000 (NUL) in `text` or `jsonb`; SQLite can. A
//! NUL that reached the store made Postgres refuse the write, and the agent
//! that sent it was told to send it again, forever. So the hub refuses NUL
//! at its edges (REST bodies and queries, agent frames) with an error that
//! names the field, and behaves the same on both stores.
//!
//! JSON can only carry NUL as the escape `\u0000` (a raw control character
//! is not valid JSON), so the common case is one substring search over the
//! raw text; only a text that has the escape is walked to find the field.

use serde_json::Value;

/// What is wrong, said after the field's name.
pub const NUL_PROBLEM: &str = "contains U+0000 (NUL), which the hub cannot store; remove it, or send binary data base64-encoded";

/// Whether `raw` JSON may hold a NUL (it has the escape `\u0000`).
pub fn may_hold_nul(raw: &[u8]) -> bool {
    raw.windows(6).any(|w| w == b"\\u0000")
}

/// The path of the first string or key in `value` holding a NUL, e.g.
/// `data.text`, `capabilities[0].name` or `context` (for a key).
pub fn nul_path(value: &Value) -> Option<String> {
    fn walk(value: &Value, path: &mut String) -> bool {
        match value {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().enumerate().any(|(i, v)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = walk(v, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Value::Object(map) => map.iter().any(|(k, v)| {
                if k.contains('\0') {
                    // The key itself: name the object that holds it.
                    if path.is_empty() {
                        path.push_str(&k.replace('\0', "\\u0000"));
                    }
                    return true;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                let found = walk(v, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = String::new();
    walk(value, &mut path).then_some(path)
}

/// The path of a NUL in raw JSON text, if it holds one.
pub fn nul_path_in_json(raw: &[u8]) -> Option<String> {
    if !may_hold_nul(raw) {
        return None;
    }
    let value: Value = serde_json::from_slice(raw).ok()?;
    nul_path(&value)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_the_field_holding_a_nul() {
        let cases = [
            (json!({"prompt": "a\u{0}b"}), "prompt"),
            (json!({"data": {"text": "x\u{0}"}}), "data.text"),
            (
                json!({"jobs": [{"prompt": "ok"}, {"prompt": "\u{0}"}]}),
                "jobs[1].prompt",
            ),
            (json!({"context": {"k\u{0}": 1}}), "context"),
            (json!({"k\u{0}": 1}), "k\\u0000"),
        ];
        for (value, path) in cases {
            assert_eq!(nul_path(&value).as_deref(), Some(path), "{value}");
            let raw = value.to_string();
            assert!(may_hold_nul(raw.as_bytes()), "{raw}");
            assert_eq!(nul_path_in_json(raw.as_bytes()).as_deref(), Some(path));
        }
    }

    #[test]
    fn an_escaped_backslash_is_not_a_nul() {
        let raw = r#"{"text": "\\u0000 is how JSON spells NUL"}"#;
        assert!(may_hold_nul(raw.as_bytes()));
        assert_eq!(nul_path_in_json(raw.as_bytes()), None);
        assert_eq!(nul_path(&json!({"a": [1, "b", {"c": null}]})), None);
    }
}
