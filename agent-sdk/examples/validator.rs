//! The reference Validator agent (`requirements.validate`): accepts or
//! rejects each requirement (duplicates are detected per process only).
//!
//! ```sh
//! switchyard token issue --role agent --sub validator-1   # prints a token
//! SWITCHYARD_TOKEN=... cargo run -p switchyard-agent --example validator
//! ```
//!
//! Environment: `SWITCHYARD_URL` (default
//! `ws://127.0.0.1:8000/v1/agents/connect`; `http://host:port` works too),
//! `SWITCHYARD_TOKEN` (an `agent` token whose `sub` is the agent name),
//! `SWITCHYARD_AGENT_NAME` (default `validator-1`), `RUST_LOG` (default `info`).
//! Runs until SIGINT/SIGTERM, then drains.

use std::process::ExitCode;

use switchyard_agent::reference::agents;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let url = std::env::var("SWITCHYARD_URL")
        .unwrap_or_else(|_| "ws://127.0.0.1:8000/v1/agents/connect".into());
    let name = std::env::var("SWITCHYARD_AGENT_NAME").unwrap_or_else(|_| "validator-1".into());
    let Ok(token) = std::env::var("SWITCHYARD_TOKEN") else {
        eprintln!(
            "SWITCHYARD_TOKEN is not set: issue an agent token with \
             `switchyard token issue --role agent --sub {name}`"
        );
        return ExitCode::from(2);
    };
    let agent = match agents::validator(&url, &token, &name) {
        Ok(agent) => agent,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match agent.run_until_signal().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
