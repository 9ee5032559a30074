//! The query of `GET /v1/jobs`: its named parameters plus any number of
//! context filters, `context.<key>=<value>` (nested keys joined with dots).
//!
//! A struct with `deny_unknown_fields` cannot also take "every parameter
//! that starts with `context.`", so this extractor splits the query first:
//! context parameters become [`ContextFilter`]s (the rule of what matches is
//! theirs), and the rest is deserialised as `T`, still refusing names it does
//! not know. `context[<key>]=<value>` (OpenAPI's deepObject style, which
//! generated clients send) means the same as `context.<key>=<value>`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::domain::ContextFilter;
use crate::domain::context_filter::MAX_CONTEXT_FILTERS;
use crate::domain::storable::NUL_PROBLEM;
use crate::http::error::ApiError;

/// `T` from the query's other parameters, and the context filters. Errors
/// have [`crate::http::extract::ApiQuery`]'s shapes.
pub struct ContextQuery<T>(pub T, pub Vec<ContextFilter>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ContextQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(parts.uri.query().unwrap_or_default())
                .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
        let mut filters = Vec::new();
        let mut rest = Vec::new();
        for (name, value) in pairs {
            if name.contains('\0') || value.contains('\0') {
                return Err(ApiError::invalid(
                    name.replace('\0', "\\u0000"),
                    NUL_PROBLEM,
                ));
            }
            match context_key(&name) {
                Some(key) => filters.push(ContextFilter::parse(key, &value).map_err(|m| {
                    ApiError::bad_request("invalid_query", format!("`{name}`: {m}"))
                })?),
                None => rest.push((name, value)),
            }
        }
        if filters.len() > MAX_CONTEXT_FILTERS {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!(
                    "{} context filters given; at most {MAX_CONTEXT_FILTERS} are allowed in one query",
                    filters.len()
                ),
            ));
        }
        let rest = serde_urlencoded::to_string(&rest)
            .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
        let query = serde_urlencoded::from_str::<T>(&rest).map_err(|e| {
            ApiError::bad_request(
                "invalid_query",
                format!("Failed to deserialize query string: {e}"),
            )
        })?;
        Ok(ContextQuery(query, filters))
    }
}

/// The dotted key of a context parameter: `context.a.b` or `context[a.b]`.
fn context_key(name: &str) -> Option<&str> {
    if let Some(key) = name.strip_prefix("context.") {
        return Some(key);
    }
    name.strip_prefix("context[")?.strip_suffix(']')
}

#[cfg(test)]
mod tests {
    use super::context_key;

    #[test]
    fn both_spellings() {
        assert_eq!(context_key("context.customer"), Some("customer"));
        assert_eq!(context_key("context[order.id]"), Some("order.id"));
        assert_eq!(context_key("context[]"), Some(""));
        assert_eq!(context_key("context"), None);
        assert_eq!(context_key("contexts.x"), None);
        assert_eq!(context_key("status"), None);
    }
}
