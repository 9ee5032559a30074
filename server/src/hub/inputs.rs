//! First-stage inputs held in memory between a job's creation and its
//! task's push.
//!
//! The create handlers build the input of a job's first task anyway (to
//! check it against the agents' input schemas before storing the job), so
//! the dispatcher keeps it and pushes the task without reading it back from
//! the store: one store round trip fewer on the path from submit to handler.
//! The budget bounds the memory: beyond it (a large backlog, large
//! contexts, documents) inputs are read from the store when their task is
//! handed out, as they are after a restart.

use std::collections::HashMap;

use uuid::Uuid;

/// Bytes of inputs held at most (approximate, see [`approx_size`]).
const BUDGET: usize = 16 << 20;

/// Larger inputs (documents) are never held.
const MAX_ONE: usize = 64 << 10;

/// Inputs by task id, within [`BUDGET`].
#[derive(Default)]
pub(crate) struct InputCache {
    held: HashMap<Uuid, (serde_json::Value, usize)>,
    bytes: usize,
}

impl InputCache {
    /// Holds `input` for `task` if the budget allows. The dispatcher takes
    /// it back when it hands the task out, or drops it when it forgets the
    /// task (cancelled, finished elsewhere).
    pub fn offer(&mut self, task: Uuid, input: serde_json::Value) {
        let size = approx_size(&input);
        if size > MAX_ONE || self.bytes + size > BUDGET {
            return;
        }
        self.bytes += size;
        if let Some((_, old)) = self.held.insert(task, (input, size)) {
            self.bytes -= old;
        }
    }

    /// The input of `task`, if held; it is not held any more.
    pub fn take(&mut self, task: Uuid) -> Option<serde_json::Value> {
        let (input, size) = self.held.remove(&task)?;
        self.bytes -= size;
        Some(input)
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Roughly what a JSON value occupies in memory.
fn approx_size(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 16,
        Value::String(s) => 24 + s.len(),
        Value::Array(items) => 24 + items.iter().map(approx_size).sum::<usize>(),
        Value::Object(fields) => {
            48 + fields
                .iter()
                .map(|(k, v)| 24 + k.len() + approx_size(v))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn holds_within_the_budget_and_forgets_what_it_gives_back() {
        let mut cache = InputCache::default();
        let task = Uuid::now_v7();
        cache.offer(task, json!({"prompt": "p"}));
        assert!(cache.bytes() > 0);
        assert_eq!(cache.take(task), Some(json!({"prompt": "p"})));
        assert_eq!(cache.take(task), None);
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn large_inputs_are_never_held() {
        let mut cache = InputCache::default();
        let task = Uuid::now_v7();
        cache.offer(task, json!("x".repeat(MAX_ONE)));
        assert_eq!(cache.take(task), None);
    }

    #[test]
    fn a_spent_budget_holds_nothing_more_until_inputs_are_taken() {
        let mut cache = InputCache::default();
        let big = json!("x".repeat(MAX_ONE / 2));
        let held: Vec<Uuid> = (0..BUDGET / (MAX_ONE / 2))
            .map(|_| Uuid::now_v7())
            .collect();
        for id in &held {
            cache.offer(*id, big.clone());
        }
        let late = Uuid::now_v7();
        cache.offer(late, big.clone());
        assert_eq!(cache.take(late), None, "the budget is spent");
        assert!(cache.take(held[0]).is_some());
        cache.offer(late, big.clone());
        assert_eq!(cache.take(late), Some(big));
    }
}
