//! Typed errors: [`AgentError`] for the agent as a whole, [`TaskError`] for
//! one handler invocation.

use std::fmt;

/// Why an agent could not be built, could not connect, or stopped.
///
/// Cloneable so that every [`AgentHandle`](crate::AgentHandle) clone can
/// observe the same outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// [`AgentBuilder::build`](crate::AgentBuilder::build) was called without
    /// any [`capability`](crate::AgentBuilder::capability).
    #[error("the agent declares no capabilities: add at least one with `.capability(...)`")]
    NoCapabilities,
    /// Two capabilities share one name.
    #[error("capability `{0}` is declared twice")]
    DuplicateCapability(String),
    /// A builder argument is not usable (empty name, zero concurrency, ...).
    #[error("invalid agent configuration: {0}")]
    InvalidConfig(String),
    /// The hub URL cannot be used.
    #[error("invalid hub URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The token cannot be sent as an HTTP header value.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The hub refused the credentials when upgrading to a WebSocket (HTTP
    /// 401 or 403). The agent stops instead of retrying with a bad token.
    #[error(
        "the hub refused the agent's token (HTTP {status}){}; an agent needs a token of role `agent` whose `sub` is its name",
        fmt_body(.body)
    )]
    Unauthorized {
        /// The HTTP status of the refused upgrade.
        status: u16,
        /// The response body, when the hub sent one (usually JSON).
        body: Option<String>,
    },
    /// The hub answered `hello` with an `error` frame whose code is permanent
    /// (see [`PERMANENT_HELLO_ERRORS`](crate::connection::PERMANENT_HELLO_ERRORS)):
    /// retrying the same `hello` cannot succeed, so the agent stops.
    #[error("the hub refused the agent's hello: {code}: {message}")]
    Refused {
        /// The machine-readable code of the `error` frame.
        code: String,
        /// The hub's explanation.
        message: String,
    },
    /// Connecting or talking to the hub failed; the agent retries these by
    /// itself, so they are only seen in logs and in
    /// [`AgentHandle::last_error`](crate::AgentHandle::last_error).
    #[error("connection to the hub failed: {0}")]
    Connection(String),
    /// The hub broke the protocol (e.g. no `welcome` in time); retried like
    /// [`AgentError::Connection`].
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The agent was stopped ([`AgentHandle::kill`](crate::AgentHandle::kill)
    /// or [`AgentHandle::drain`](crate::AgentHandle::drain)) before the awaited
    /// event happened.
    #[error("the agent is stopped")]
    Stopped,
}

fn fmt_body(body: &Option<String>) -> String {
    match body {
        Some(b) if !b.trim().is_empty() => format!(": {}", b.trim()),
        _ => String::new(),
    }
}

impl AgentError {
    /// Whether the agent gives up on this error instead of reconnecting.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, AgentError::Connection(_) | AgentError::Protocol(_))
    }
}

/// The error a task handler returns: the attempt is reported to the hub with
/// `fail`, and `retryable` decides whether the hub tries again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    message: String,
    retryable: bool,
}

impl TaskError {
    /// A failure worth retrying (a timeout, an unavailable upstream, ...):
    /// the hub schedules another attempt with backoff, up to its
    /// `max_attempts`.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure that another attempt cannot fix (invalid input, ...): the
    /// hub fails the task at once.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }

    /// The message sent to the hub as `fail.error`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the hub may retry the task (`fail.retryable`).
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.retryable { "retryable" } else { "fatal" };
        write!(f, "{kind} task error: {}", self.message)
    }
}

impl std::error::Error for TaskError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_error_kinds() {
        let e = TaskError::retryable("upstream timed out");
        assert!(e.is_retryable());
        assert_eq!(e.message(), "upstream timed out");
        assert_eq!(e.to_string(), "retryable task error: upstream timed out");
        assert!(!TaskError::fatal("bad input").is_retryable());
    }

    #[test]
    fn agent_error_messages() {
        let e = AgentError::Unauthorized {
            status: 401,
            body: Some(r#"{"error":"unauthorized"}"#.into()),
        };
        assert_eq!(
            e.to_string(),
            "the hub refused the agent's token (HTTP 401): {\"error\":\"unauthorized\"}; \
             an agent needs a token of role `agent` whose `sub` is its name"
        );
        assert!(e.is_permanent());
        assert!(!AgentError::Connection("refused".into()).is_permanent());
    }
}
