//! `switchyard jobs ...`: create (and follow), status, list, cancel, re-run,
//! watch, stuck work, retry-failed and compare, against a running hub.
//!
//! `create --wait` and `watch` follow the job's event stream
//! (`GET /v1/jobs/{id}/events`, resuming with `Last-Event-ID` after a
//! dropped connection or a lag notice) with a progress bar on a terminal,
//! and exit 0 when the job completed, 3 when it failed, 4 when it was cancelled.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

mod list;
mod status;
mod watch;

pub use list::ListArgs;
use list::list;

pub use watch::watch;

use super::client::output::{short, text};
use super::client::{CliError, Client, id_segment};

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Submit a job; with --wait, follow it until it ends.
    Create(CreateArgs),
    /// Show one job (or its progress, report, rejected or failed items).
    Status(StatusArgs),
    /// List jobs, newest first.
    List(ListArgs),
    /// Cancel a job (asks first on a terminal unless --force).
    Cancel(CancelArgs),
    /// Run a job again with the same input, as a new linked job.
    Rerun(RerunArgs),
    /// Follow a job's events until it ends.
    Watch(IdArg),
    /// Show what is stuck now, and why.
    Stuck,
    /// Re-queue a job's failed items.
    RetryFailed(IdArg),
    /// Compare the items of two versions of a job.
    Compare(CompareArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// What the pipeline should do.
    #[arg(long)]
    pub prompt: String,
    /// A document to attach (sent as multipart).
    #[arg(long, value_name = "FILE")]
    pub document: Option<PathBuf>,
    /// Capability names in order, e.g. requirements.extract,requirements.validate.
    #[arg(long, value_delimiter = ',')]
    pub pipeline: Vec<String>,
    /// 0 (lowest) to 9 (highest).
    #[arg(long)]
    pub priority: Option<i64>,
    /// A label (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// A JSON object handed to the first stage.
    #[arg(long, value_name = "JSON")]
    pub context: Option<String>,
    /// Attempts per task.
    #[arg(long)]
    pub max_attempts: Option<i64>,
    /// Submit at most once with this key.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Follow the job until it ends; the exit code tells how it ended.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The job id.
    pub id: String,
    /// Show the full report.
    #[arg(long, conflicts_with_all = ["progress", "rejected", "failed"])]
    pub report: bool,
    /// Report format: text or markdown (--json gives the JSON report).
    #[arg(long, default_value = "text", requires = "report")]
    pub format: String,
    /// Show progress and ETA.
    #[arg(long, conflicts_with_all = ["rejected", "failed"])]
    pub progress: bool,
    /// List the rejected items with their reasons.
    #[arg(long, conflicts_with = "failed")]
    pub rejected: bool,
    /// List the failed items with their last errors.
    #[arg(long)]
    pub failed: bool,
    /// How many items --rejected/--failed list (1 to 1000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The job id.
    pub id: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RerunArgs {
    /// The job to run again.
    pub id: String,
    /// Follow the new job until it ends.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// The job id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The earlier version.
    pub id: String,
    /// The later version.
    pub other_id: String,
}

/// Runs a `jobs` subcommand.
pub async fn run(client: &Client, command: JobsCommand) -> Result<(), CliError> {
    match command {
        JobsCommand::Create(args) => create(client, args).await,
        JobsCommand::Status(args) => status::status(client, args).await,
        JobsCommand::List(args) => list(client, args).await,
        JobsCommand::Cancel(args) => cancel(client, args).await,
        JobsCommand::Rerun(args) => {
            let id = id_segment("job", &args.id)?;
            let job = client.post(&format!("/v1/jobs/{id}/rerun"), None).await?;
            let new_id = text(&job["id"]);
            if !args.wait {
                if client.json {
                    Client::print_json(&job);
                } else {
                    println!("created job {new_id} (re-run of {id})");
                }
                return Ok(());
            }
            if !client.json {
                eprintln!("created job {new_id} (re-run of {id})");
            }
            watch(client, &new_id).await
        }
        JobsCommand::Watch(args) => watch(client, &id_segment("job", &args.id)?).await,
        JobsCommand::Stuck => stuck(client).await,
        JobsCommand::RetryFailed(args) => {
            let id = id_segment("job", &args.id)?;
            let body = client
                .post(&format!("/v1/jobs/{id}/retry-failed"), None)
                .await?;
            if client.json {
                Client::print_json(&body);
            } else {
                println!(
                    "re-queued {} task(s) and {} item(s) of job {id}; it is {}",
                    body["requeued_tasks"],
                    body["requeued_items"],
                    text(&body["job"]["status"])
                );
            }
            Ok(())
        }
        JobsCommand::Compare(args) => compare(client, args).await,
    }
}

async fn create(client: &Client, args: CreateArgs) -> Result<(), CliError> {
    let context: Option<Value> = match &args.context {
        None => None,
        Some(raw) => Some(
            serde_json::from_str(raw)
                .map_err(|e| CliError::Usage(format!("--context is not valid JSON: {e}")))?,
        ),
    };
    let mut request = client.request(Method::POST, "/v1/jobs");
    if let Some(key) = &args.idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    let request = match &args.document {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                CliError::Usage(format!("cannot read --document {}: {e}", path.display()))
            })?;
            let name = path.file_name().map_or_else(
                || "document".to_owned(),
                |n| n.to_string_lossy().into_owned(),
            );
            let mut form = Form::new()
                .text("prompt", args.prompt.clone())
                .part("document", Part::bytes(bytes).file_name(name));
            if !args.pipeline.is_empty() {
                form = form.text("pipeline", args.pipeline.join(","));
            }
            if !args.labels.is_empty() {
                form = form.text("labels", args.labels.join(","));
            }
            if let Some(p) = args.priority {
                form = form.text("priority", p.to_string());
            }
            if let Some(m) = args.max_attempts {
                form = form.text("max_attempts", m.to_string());
            }
            if let Some(c) = &context {
                form = form.text("context", c.to_string());
            }
            request.multipart(form)
        }
        None => {
            let mut body = json!({ "prompt": args.prompt });
            if !args.pipeline.is_empty() {
                body["pipeline"] = json!(args.pipeline);
            }
            if !args.labels.is_empty() {
                body["labels"] = json!(args.labels);
            }
            if let Some(p) = args.priority {
                body["priority"] = json!(p);
            }
            if let Some(m) = args.max_attempts {
                body["max_attempts"] = json!(m);
            }
            if let Some(c) = context {
                body["context"] = c;
            }
            request.json(&body)
        }
    };
    let job = Client::json_of(client.send(request).await?).await?;
    let id = text(&job["id"]);
    if !args.wait {
        if client.json {
            Client::print_json(&job);
        } else {
            println!("created job {id} ({})", text(&job["status"]));
        }
        return Ok(());
    }
    if !client.json {
        eprintln!("created job {id}");
    }
    watch(client, &id).await
}

async fn cancel(client: &Client, args: CancelArgs) -> Result<(), CliError> {
    let id = id_segment("job", &args.id)?;
    if !args.force {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Usage(format!(
                "refusing to cancel job {id} without --force: standard input is not a terminal, so nobody can confirm; add --force"
            )));
        }
        let job = client.get(&format!("/v1/jobs/{id}")).await?;
        eprint!(
            "Cancel job {id} ({}, \"{}\")? [y/N] ",
            text(&job["status"]),
            short(&text(&job["prompt"]), 40)
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| CliError::Io(format!("reading the answer: {e}")))?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            eprintln!("not cancelled");
            return Ok(());
        }
    }
    let job = client
        .delete(&format!("/v1/jobs/{id}"))
        .await?
        .unwrap_or(Value::Null);
    if client.json {
        Client::print_json(&job);
    } else {
        println!("job {id} {}", text(&job["status"]));
    }
    Ok(())
}

async fn stuck(client: &Client) -> Result<(), CliError> {
    let s = client.get("/v1/jobs/stuck").await?;
    if client.json {
        Client::print_json(&s);
        return Ok(());
    }
    let empty = Vec::new();
    let (tasks, items, jobs) = (
        s["tasks"].as_array().unwrap_or(&empty),
        s["items"].as_array().unwrap_or(&empty),
        s["jobs"].as_array().unwrap_or(&empty),
    );
    if tasks.is_empty() && items.is_empty() && jobs.is_empty() {
        println!("nothing is stuck");
        return Ok(());
    }
    for j in jobs {
        println!("job {}: {}", text(&j["job_id"]), text(&j["reason"]));
    }
    for t in tasks {
        println!(
            "task {} of job {}: {}",
            text(&t["task_id"]),
            text(&t["job_id"]),
            text(&t["reason"])
        );
    }
    for i in items {
        println!(
            "item {} of job {}: {}",
            text(&i["item_id"]),
            text(&i["job_id"]),
            text(&i["reason"])
        );
    }
    Ok(())
}

async fn compare(client: &Client, args: CompareArgs) -> Result<(), CliError> {
    let a = id_segment("job", &args.id)?;
    let b = id_segment("job", &args.other_id)?;
    let c = client.get(&format!("/v1/jobs/{a}/compare/{b}")).await?;
    if client.json {
        Client::print_json(&c);
        return Ok(());
    }
    let s = &c["summary"];
    println!(
        "{} added, {} removed, {} changed, {} unchanged",
        s["added"], s["removed"], s["changed"], s["unchanged"]
    );
    let label = |i: &Value| {
        i["text"]
            .as_str()
            .or(i["name"].as_str())
            .unwrap_or("-")
            .to_owned()
    };
    for i in c["added"].as_array().into_iter().flatten() {
        println!("+ {}", label(i));
    }
    for i in c["removed"].as_array().into_iter().flatten() {
        println!("- {}", label(i));
    }
    for i in c["changed"].as_array().into_iter().flatten() {
        let fields: Vec<String> = i["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| format!("{}: {} -> {}", text(&f["field"]), f["before"], f["after"]))
            .collect();
        println!("~ {} ({})", label(i), fields.join("; "));
    }
    Ok(())
}
