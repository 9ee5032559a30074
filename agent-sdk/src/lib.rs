//! `switchyard-agent`: the wire protocol of the Switchyard hub and the Rust SDK
//! for writing agents.
//!
//! An agent holds one authenticated WebSocket session with the hub, declares
//! its capabilities, and gets tasks pushed to it. The SDK does the protocol:
//! `hello`/`welcome`, heartbeats, `accept`/`decline`, items, `complete`/`fail`
//! and waiting for their `ack`, cancellation, draining, and reconnecting with
//! exponential backoff while resuming running tasks. You write handlers:
//! `async fn(TaskContext, Input) -> Result<Output, TaskError>`.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use serde::{Deserialize, Serialize};
//! use serde_json::json;
//! use switchyard_agent::{Agent, AgentHealth, CapabilitySpec, Pricing, TaskContext, TaskError, Usage};
//!
//! #[derive(Deserialize)]
//! struct ExtractInput {
//!     prompt: String,
//! }
//!
//! #[derive(Serialize)]
//! struct ExtractOutput {
//!     requirements: usize,
//! }
//!
//! async fn extract(ctx: TaskContext, input: ExtractInput) -> Result<ExtractOutput, TaskError> {
//!     let mut n = 0;
//!     for sentence in input.prompt.split('.').filter(|s| s.contains("must")) {
//!         if ctx.is_cancelled() {
//!             return Err(TaskError::retryable("cancelled"));
//!         }
//!         // Items become the inputs of the next pipeline stage once the
//!         // attempt completes.
//!         ctx.emit_item(json!({ "text": sentence.trim() })).await;
//!         n += 1;
//!     }
//!     ctx.progress(Some(100.0), Some("done".into())).await;
//!     ctx.report_usage(Usage { requests: 1, ..Usage::default() });
//!     if n == 0 {
//!         return Err(TaskError::fatal("no requirement in the prompt"));
//!     }
//!     Ok(ExtractOutput { requirements: n })
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let token = std::env::var("SWITCHYARD_TOKEN")?; // role `agent`, sub `creator-1`
//!     let agent = Agent::builder("ws://127.0.0.1:8000/v1/agents/connect", token, "creator-1")
//!         .version("0.1.0")
//!         .label("zone", "eu")
//!         .capability(
//!             CapabilitySpec::new("requirements.extract")
//!                 .max_concurrency(4)
//!                 .input_schema(json!({"type": "object", "required": ["prompt"]}))
//!                 .output_schema(json!({"type": "object", "required": ["requirements"]}))
//!                 .pricing(Pricing { currency: "USD".into(), per_request: 0.01, ..Pricing::default() }),
//!             extract,
//!         )
//!         .reconnect_backoff(Duration::from_millis(100), Duration::from_secs(5))
//!         .build()?;
//!
//!     // Either run it in the background and control it through the handle ...
//!     let handle = agent.spawn();
//!     let agent_id = handle.wait_connected().await?; // fails at once on a refused token
//!     println!("connected as {agent_id}");
//!     handle.set_health(AgentHealth::Degraded);
//!     handle.drain().await; // finish running tasks, then close
//!
//!     // ... or, in a binary, run until SIGINT/SIGTERM and then drain.
//!     agent.run_until_signal().await?;
//!     Ok(())
//! }
//! ```
//!
//! Modules: [`protocol`] (the message types, shared with the hub),
//! [`agent`] (the builder), [`handle`] (controlling a running agent),
//! [`context`] (what a handler gets),
//! [`error`], [`connection`] (URL rules, permanent error codes), and
//! [`mod@reference`] (the deterministic Creator/Validator pipeline and its
//! agents). `docs/protocol.md` in the repository describes the protocol for
//! agents in other languages.
//!
//! Transport: `ws://` only for now (no TLS feature is compiled in); see
//! [`connection`].

#![warn(missing_docs)]

pub mod agent;
pub mod connection;
pub mod context;
pub mod error;
pub mod handle;
// The protocol types document their meaning; field-level docs are in
// docs/protocol.md.
#[allow(missing_docs)]
pub mod protocol;
pub mod reference;
mod runner;

pub use agent::{Agent, AgentBuilder, CapabilitySpec};
pub use context::TaskContext;
pub use error::{AgentError, TaskError};
pub use handle::AgentHandle;
pub use protocol::{AgentHealth, Pricing, Usage, Verdict};
pub use runner::{TASK_GONE_ERRORS, TRANSIENT_ERRORS};
/// The token type of [`TaskContext::cancelled`], re-exported from `tokio-util`.
pub use tokio_util::sync::CancellationToken;
