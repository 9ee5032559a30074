//! `switchyard agents ...`: list agents, drain one, and the health summary.

use clap::Subcommand;
use serde_json::Value;

use super::client::output::{print_table, text};
use super::client::{CliError, Client};

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Every known agent with its live state.
    List,
    /// Stop giving an agent new work (by id or name); its running work finishes.
    Drain {
        /// The agent's id or name.
        agent: String,
    },
    /// Agents by state and health, and the ones that need attention.
    Health,
}

/// Runs an `agents` subcommand.
pub async fn run(client: &Client, command: AgentsCommand) -> Result<(), CliError> {
    match command {
        AgentsCommand::List => {
            let list = client.get("/v1/agents").await?;
            if client.json {
                Client::print_json(&list);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list["agents"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    let caps: Vec<String> = a["capabilities"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| text(&c["name"]))
                        .collect();
                    vec![
                        text(&a["id"]),
                        text(&a["name"]),
                        text(&a["session_state"]),
                        text(&a["health"]),
                        format!("{}/{}", a["in_flight"], a["capacity"]),
                        format!("{:.2}", a["trust_score"].as_f64().unwrap_or(0.0)),
                        caps.join(","),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "NAME",
                    "STATE",
                    "HEALTH",
                    "LOAD",
                    "TRUST",
                    "CAPABILITIES",
                ],
                &rows,
            );
            Ok(())
        }
        AgentsCommand::Drain { agent } => {
            let id = resolve(client, &agent).await?;
            let view = client.post(&format!("/v1/agents/{id}/drain"), None).await?;
            if client.json {
                Client::print_json(&view);
            } else {
                println!(
                    "agent {} ({id}) is {}",
                    text(&view["name"]),
                    text(&view["session_state"])
                );
            }
            Ok(())
        }
        AgentsCommand::Health => {
            let h = client.get("/v1/agents/health").await?;
            if client.json {
                Client::print_json(&h);
                return Ok(());
            }
            let counts = |v: &Value| -> String {
                v.as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            println!("{} agents: {}", h["total"], counts(&h["by_state"]));
            println!("connected by health: {}", counts(&h["by_health"]));
            for a in h["attention"].as_array().into_iter().flatten() {
                let reasons: Vec<String> = a["reasons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(text)
                    .collect();
                println!(
                    "! {} ({}): {}",
                    text(&a["name"]),
                    text(&a["session_state"]),
                    reasons.join("; ")
                );
            }
            for c in h["unserved_capabilities"].as_array().into_iter().flatten() {
                println!(
                    "! capability {}: {} task(s) queued and no connected agent offers it",
                    text(&c["capability"]),
                    c["depth"]
                );
            }
            Ok(())
        }
    }
}

/// An agent id from an id or a name.
async fn resolve(client: &Client, agent: &str) -> Result<String, CliError> {
    if let Ok(id) = uuid::Uuid::parse_str(agent.trim()) {
        return Ok(id.to_string());
    }
    let list = client.get("/v1/agents").await?;
    list["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["name"] == agent)
        .map(|a| text(&a["id"]))
        .ok_or_else(|| {
            CliError::Usage(format!(
                "no agent is named `{agent}`; see `switchyard agents list`"
            ))
        })
}
