//! Compiled JSON Schemas of declared capabilities.
//!
//! Schemas are compiled once when an agent registers. The registry keeps, per
//! capability, the input schemas declared by the agents seen since start-up,
//! so a job whose first-stage input matches none of them is refused at submit
//! time (422) instead of failing later.

use std::sync::Arc;

use dashmap::DashMap;
use jsonschema::Validator;

/// Compiles a schema; `{}` and `true` accept anything and compile to `None`.
pub fn compile(schema: &serde_json::Value) -> Result<Option<Arc<Validator>>, String> {
    let accepts_all = schema.as_object().is_some_and(|o| o.is_empty())
        || schema == &serde_json::Value::Bool(true);
    if accepts_all {
        return Ok(None);
    }
    jsonschema::validator_for(schema)
        .map(|v| Some(Arc::new(v)))
        .map_err(|e| e.to_string())
}

/// Validates `instance`, returning the first problem with its location.
pub fn check(validator: &Validator, instance: &serde_json::Value) -> Result<(), String> {
    validator.validate(instance).map_err(|e| {
        let path = e.instance_path.to_string();
        if path.is_empty() {
            e.to_string()
        } else {
            format!("{path}: {e}")
        }
    })
}

/// Input schemas by capability name, keyed by agent name so a reconnecting
/// agent replaces its own entry.
#[derive(Default)]
pub struct SchemaRegistry {
    inputs: DashMap<String, Vec<DeclaredSchema>>,
}

/// An agent's name and its compiled schema (`None` accepts anything).
type DeclaredSchema = (String, Option<Arc<Validator>>);

impl SchemaRegistry {
    pub fn register(&self, capability: &str, agent: &str, validator: Option<Arc<Validator>>) {
        let mut entry = self.inputs.entry(capability.to_owned()).or_default();
        entry.retain(|(name, _)| name != agent);
        entry.push((agent.to_owned(), validator));
    }

    /// `Ok` when the capability is unknown or some declared schema accepts the
    /// input; else every agent's complaint.
    pub fn check_input(&self, capability: &str, input: &serde_json::Value) -> Result<(), String> {
        let Some(entry) = self.inputs.get(capability) else {
            return Ok(());
        };
        let mut problems = Vec::new();
        for (agent, validator) in entry.iter() {
            match validator {
                None => return Ok(()),
                Some(v) => match check(v, input) {
                    Ok(()) => return Ok(()),
                    Err(e) => problems.push(format!("{agent}: {e}")),
                },
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(format!(
            "the input does not match the input schema of `{capability}` declared by any registered agent ({})",
            problems.join("; ")
        ))
    }
}
