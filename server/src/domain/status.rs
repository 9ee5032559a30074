//! Every status enum of the hub, defined and documented in one place.
//!
//! Each enum has exactly one string form (`as_str`), used on the wire, in the
//! database and as a metrics label; `FromStr` parses that same form and rejects
//! anything else with a message that lists the allowed values.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An unknown status string: says what was given and what is allowed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{given}` is not a valid {kind}; expected one of: {allowed}")]
pub struct UnknownStatus {
    pub kind: &'static str,
    pub given: String,
    pub allowed: String,
}

macro_rules! status_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
        terminal: [$($term:ident),*]
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in lifecycle order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The one string form of this status.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// True when no further transition is possible.
            pub const fn is_terminal(self) -> bool {
                false $(|| matches!(self, $name::$term))*
            }

            /// The non-terminal values.
            pub fn active() -> Vec<$name> {
                Self::ALL.iter().copied().filter(|s| !s.is_terminal()).collect()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownStatus {
                        kind: $kind,
                        given: s.to_owned(),
                        allowed: [$($text),+].join(", "),
                    }),
                }
            }
        }
    };
}

status_enum! {
    /// Lifecycle of a job: `waiting` (on its dependencies) or `queued` →
    /// `running` → `completed` | `failed` | `cancelled`.
    JobStatus, "job status" {
        /// Waits for the jobs it depends on to complete.
        Waiting => "waiting",
        /// Accepted; its first task waits for an agent.
        Queued => "queued",
        /// At least one of its tasks has been handed to an agent.
        Running => "running",
        /// Every task finished; the outcome is in its items.
        Completed => "completed",
        /// Its first stage exhausted its retries, a dependency failed, or it timed out.
        Failed => "failed",
        /// Cancelled by a client; finished items are kept as they are.
        Cancelled => "cancelled",
    }
    terminal: [Completed, Failed, Cancelled]
}

status_enum! {
    /// Lifecycle of a task (one unit of work for one capability):
    /// `pending` → `assigned` → `running` → `succeeded` | `failed` | `cancelled`.
    TaskStatus, "task status" {
        /// Ready (or backing off until `next_run_at`), waiting for an agent.
        Pending => "pending",
        /// Pushed to an agent that has not accepted it yet.
        Assigned => "assigned",
        /// Accepted by an agent and held under a lease.
        Running => "running",
        /// Completed by an agent.
        Succeeded => "succeeded",
        /// Failed for good: not retryable, or out of attempts.
        Failed => "failed",
        /// Its job was cancelled.
        Cancelled => "cancelled",
    }
    terminal: [Succeeded, Failed, Cancelled]
}

status_enum! {
    /// Lifecycle of an item (a requirement in the reference pipeline):
    /// `pending` → `validating` → `integrated` | `rejected` | `failed`.
    ItemStatus, "item status" {
        /// Emitted by a stage, waiting for the next stage to pick it up.
        Pending => "pending",
        /// A next-stage task is working on it.
        Validating => "validating",
        /// Accepted by the last stage.
        Integrated => "integrated",
        /// Rejected by a stage, with a reason.
        Rejected => "rejected",
        /// Its task ran out of attempts.
        Failed => "failed",
    }
    terminal: [Integrated, Rejected, Failed]
}

status_enum! {
    /// The hub's view of an agent's session: `connected` → `draining` →
    /// `disconnected` (socket gone, its tasks wait a grace period for it to
    /// come back) → `offline` (missed heartbeats or grace over; its tasks are
    /// re-queued). An agent's reported health (`active`/`degraded`) is
    /// [`AgentHealth`], part of the wire protocol.
    AgentSessionState, "agent session state" {
        /// Holds a live session and takes work.
        Connected => "connected",
        /// Holds a live session, finishes its running work, takes no new work.
        Draining => "draining",
        /// Its socket closed; its tasks wait the grace period for a resume.
        Disconnected => "disconnected",
        /// Gone: missed heartbeats, or never came back within the grace period.
        Offline => "offline",
    }
    terminal: []
}

/// The reported health of an agent: `active` or `degraded` (defined with the
/// wire protocol, which carries it in every heartbeat).
pub use switchyard_agent::protocol::AgentHealth;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_forms_round_trip() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), *s);
            assert_eq!(
                serde_json::to_string(s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>().unwrap(), *s);
        }
        for s in ItemStatus::ALL {
            assert_eq!(s.as_str().parse::<ItemStatus>().unwrap(), *s);
        }
    }

    #[test]
    fn unknown_status_names_the_allowed_values() {
        let err = "done".parse::<JobStatus>().unwrap_err().to_string();
        assert!(err.contains("`done`"), "{err}");
        assert!(
            err.contains("waiting, queued, running, completed, failed, cancelled"),
            "{err}"
        );
    }

    #[test]
    fn terminal_states() {
        assert!(JobStatus::Cancelled.is_terminal());
        assert!(!JobStatus::Running.is_terminal());
        assert_eq!(
            JobStatus::active(),
            vec![JobStatus::Waiting, JobStatus::Queued, JobStatus::Running]
        );
        assert!(TaskStatus::Succeeded.is_terminal());
        assert!(ItemStatus::Rejected.is_terminal());
    }
}
