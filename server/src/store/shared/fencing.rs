//! Fencing: which transitions an attempt of a task allows, and the conflict
//! messages when it does not. Every task transition is conditional on the
//! task's status and attempt (and the agent holding it, when given); a refused
//! one names the task, the attempt, and the task's current attempt and status.

use uuid::Uuid;

use crate::domain::{JobStatus, Task, TaskStatus};
use crate::store::StoreError;

/// What a conflict message needs to know about a task.
#[derive(sqlx::FromRow)]
pub(crate) struct TaskState {
    pub status: String,
    pub attempt: i32,
    pub agent_id: Option<Uuid>,
}

impl From<&Task> for TaskState {
    fn from(t: &Task) -> Self {
        TaskState {
            status: t.status.as_str().to_owned(),
            attempt: t.attempt,
            agent_id: t.agent_id,
        }
    }
}

/// A transition of one attempt: the task states it starts from and its name
/// in messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaskAction {
    pub from: &'static [TaskStatus],
    verb: &'static str,
}

pub(crate) const ASSIGN: TaskAction = TaskAction {
    from: &[TaskStatus::Pending],
    verb: "be assigned",
};
pub(crate) const START: TaskAction = TaskAction {
    from: &[TaskStatus::Assigned],
    verb: "start",
};
pub(crate) const PROGRESS: TaskAction = TaskAction {
    from: &[TaskStatus::Running],
    verb: "report progress",
};
pub(crate) const COMPLETE: TaskAction = TaskAction {
    from: &[TaskStatus::Running],
    verb: "complete",
};
pub(crate) const FAIL: TaskAction = TaskAction {
    from: &[TaskStatus::Assigned, TaskStatus::Running],
    verb: "fail",
};
pub(crate) const REQUEUE: TaskAction = TaskAction {
    from: &[TaskStatus::Assigned],
    verb: "be requeued",
};

impl TaskAction {
    /// The start states, for binding.
    pub fn start_states(&self) -> crate::store::driver::Texts {
        crate::store::driver::Texts::of(self.from)
    }

    /// `Ok` when `current` allows this action for `attempt` (held by `agent`,
    /// when given); else the conflict naming the task's state, or
    /// `NotFound("task")` when there is no such task.
    pub fn check(
        &self,
        id: Uuid,
        attempt: i32,
        agent: Option<Uuid>,
        current: Option<TaskState>,
    ) -> Result<(), StoreError> {
        let Some(cur) = current else {
            return Err(StoreError::NotFound("task"));
        };
        let status = cur.status.parse::<TaskStatus>().ok();
        let at = format!(
            "(the task is at attempt {}, status {})",
            cur.attempt, cur.status
        );
        // An attempt that went back to `pending` (retried, requeued) or
        // finished is over, even though the number is only bumped by the
        // next assignment.
        let over = !self.from.contains(&TaskStatus::Pending)
            && status.is_none_or(|s| s == TaskStatus::Pending || s.is_terminal());
        let message = if cur.attempt != attempt || over {
            format!("task {id} attempt {attempt} is no longer current {at}")
        } else if agent.is_some_and(|a| cur.agent_id != Some(a)) {
            format!(
                "task {id} attempt {attempt} is not held by agent {} {at}",
                agent.unwrap_or_default()
            )
        } else if !status.is_some_and(|s| self.from.contains(&s)) {
            let from: Vec<&str> = self.from.iter().map(|s| s.as_str()).collect();
            format!(
                "task {id} attempt {attempt} is {}; only {} tasks can {}",
                cur.status,
                from.join(" or "),
                self.verb
            )
        } else {
            return Ok(());
        };
        Err(StoreError::Conflict { message })
    }

    /// The error of a conditional update that changed no row, from the
    /// task's state read right after.
    pub fn conflict(
        &self,
        id: Uuid,
        attempt: i32,
        agent: Option<Uuid>,
        current: Option<TaskState>,
    ) -> StoreError {
        match self.check(id, attempt, agent, current) {
            Err(err) => err,
            Ok(()) => StoreError::Conflict {
                message: format!(
                    "task {id} attempt {attempt} changed while it was being updated; try again"
                ),
            },
        }
    }
}

/// The conflict of assigning a task whose job has finished.
pub(crate) fn job_finished_conflict(
    task_id: Uuid,
    attempt: i32,
    job_id: Uuid,
    status: JobStatus,
) -> StoreError {
    StoreError::Conflict {
        message: format!(
            "task {task_id} attempt {attempt} cannot be assigned: its job {job_id} is {status}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: &str, attempt: i32, agent: Option<Uuid>) -> Option<TaskState> {
        Some(TaskState {
            status: status.into(),
            attempt,
            agent_id: agent,
        })
    }

    fn message(result: Result<(), StoreError>) -> String {
        match result {
            Err(StoreError::Conflict { message }) => message,
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    #[test]
    fn allows_exactly_the_current_attempt_of_its_holder() {
        let (id, a, b) = (Uuid::nil(), Uuid::from_u128(1), Uuid::from_u128(2));
        assert!(
            COMPLETE
                .check(id, 2, Some(a), state("running", 2, Some(a)))
                .is_ok()
        );
        assert!(
            FAIL.check(id, 2, None, state("assigned", 2, Some(a)))
                .is_ok()
        );
        assert!(ASSIGN.check(id, 0, None, state("pending", 0, None)).is_ok());
        assert!(matches!(
            COMPLETE.check(id, 2, Some(a), None),
            Err(StoreError::NotFound("task"))
        ));
        assert_eq!(
            message(COMPLETE.check(id, 2, Some(a), state("running", 3, Some(b)))),
            format!(
                "task {id} attempt 2 is no longer current (the task is at attempt 3, status running)"
            )
        );
        assert_eq!(
            message(COMPLETE.check(id, 2, Some(a), state("pending", 2, None))),
            format!(
                "task {id} attempt 2 is no longer current (the task is at attempt 2, status pending)"
            )
        );
        assert_eq!(
            message(FAIL.check(id, 2, Some(b), state("running", 2, Some(a)))),
            format!(
                "task {id} attempt 2 is not held by agent {b} (the task is at attempt 2, status running)"
            )
        );
        assert_eq!(
            message(COMPLETE.check(id, 2, Some(a), state("assigned", 2, Some(a)))),
            format!("task {id} attempt 2 is assigned; only running tasks can complete")
        );
        assert_eq!(
            message(ASSIGN.check(id, 0, None, state("cancelled", 0, None))),
            format!("task {id} attempt 0 is cancelled; only pending tasks can be assigned")
        );
        assert!(
            COMPLETE
                .conflict(id, 2, Some(a), state("running", 2, Some(a)))
                .to_string()
                .contains("changed while it was being updated")
        );
    }
}
