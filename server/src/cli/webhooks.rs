//! `switchyard webhooks ...`: create, list and delete subscriptions, and
//! show a subscription's deliveries.

use clap::{Args, Subcommand};
use serde_json::json;

use super::client::output::{print_table, short, text, when};
use super::client::{CliError, Client, id_segment};

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Subscribe a URL to events; prints the signing secret once.
    Create(CreateWebhookArgs),
    /// Every subscription.
    List,
    /// Delete a subscription.
    Delete {
        /// The subscription id.
        id: String,
    },
    /// The delivery attempts of a subscription, newest first.
    Deliveries {
        /// The subscription id.
        id: String,
        /// How many (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, Args)]
pub struct CreateWebhookArgs {
    /// Where the hub POSTs events (http or https). Named `--target`, not
    /// `--url`: `--url` is the hub's own address, shared by every client
    /// command, and the hub's admin token goes there.
    #[arg(long, value_name = "URL")]
    pub target: String,
    /// Event types to send, comma separated (default: all).
    #[arg(long = "events", value_delimiter = ',')]
    pub events: Vec<String>,
    /// Only events of jobs carrying this label.
    #[arg(long)]
    pub label: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
}

/// Runs a `webhooks` subcommand.
pub async fn run(client: &Client, command: WebhooksCommand) -> Result<(), CliError> {
    match command {
        WebhooksCommand::Create(args) => {
            let mut body = json!({ "url": args.target });
            if !args.events.is_empty() {
                body["event_types"] = json!(args.events);
            }
            if let Some(label) = args.label {
                body["label"] = json!(label);
            }
            if let Some(description) = args.description {
                body["description"] = json!(description);
            }
            let hook = client.post("/v1/webhooks", Some(&body)).await?;
            if client.json {
                Client::print_json(&hook);
            } else {
                println!("created webhook {}", text(&hook["id"]));
                println!("signing secret (shown only now): {}", text(&hook["secret"]));
            }
            Ok(())
        }
        WebhooksCommand::List => {
            let list = client.get("/v1/webhooks").await?;
            if client.json {
                Client::print_json(&list);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list["webhooks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|w| {
                    let events: Vec<String> = w["event_types"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(text)
                        .collect();
                    vec![
                        text(&w["id"]),
                        text(&w["enabled"]),
                        short(&text(&w["url"]), 50),
                        events.join(","),
                        text(&w["label"]),
                    ]
                })
                .collect();
            print_table(&["ID", "ENABLED", "URL", "EVENTS", "LABEL"], &rows);
            Ok(())
        }
        WebhooksCommand::Delete { id } => {
            let id = id_segment("webhook", &id)?;
            client.delete(&format!("/v1/webhooks/{id}")).await?;
            if client.json {
                Client::print_json(&json!({"deleted": id}));
            } else {
                println!("deleted webhook {id}");
            }
            Ok(())
        }
        WebhooksCommand::Deliveries { id, limit } => {
            let id = id_segment("webhook", &id)?;
            let page = client
                .get(&format!(
                    "/v1/webhooks/{id}/deliveries?limit={}",
                    limit.clamp(1, 1000)
                ))
                .await?;
            if client.json {
                Client::print_json(&page);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = page["deliveries"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    vec![
                        text(&d["id"]),
                        text(&d["event_type"]),
                        text(&d["event_seq"]),
                        text(&d["status"]),
                        text(&d["attempts"]),
                        when(&d["updated_at"]),
                    ]
                })
                .collect();
            print_table(
                &["ID", "EVENT", "SEQ", "STATUS", "ATTEMPTS", "UPDATED"],
                &rows,
            );
            Ok(())
        }
    }
}
