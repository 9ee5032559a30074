//! Following a job live (`jobs watch`, `jobs create --wait`): its event
//! stream, resumed with `Last-Event-ID` after a dropped connection or a lag
//! notice, with a progress bar on a terminal, until the job ends.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::cli::client::output::text;
use crate::cli::client::sse::{self, SseEvent};
use crate::cli::client::{CliError, Client};

/// What the event stream told so far.
#[derive(Debug, Default)]
struct Watched {
    last_id: Option<String>,
    items: u64,
    done: u64,
    terminal: Option<String>,
}

impl Watched {
    /// Takes one event; `false` once the job has ended.
    fn on_event(&mut self, event: &SseEvent, bar: &ProgressBar) -> bool {
        if event.event == "lagged" {
            if let Ok(v) = serde_json::from_str::<Value>(&event.data)
                && let Some(seq) = v["last_seq"].as_i64()
            {
                self.last_id = Some(seq.to_string());
            }
            return true;
        }
        if let Some(id) = &event.id {
            self.last_id = Some(id.clone());
        }
        match event.event.as_str() {
            "item.created" => {
                self.items += 1;
                bar.set_length(self.items);
            }
            "item.integrated" | "item.rejected" | "item.failed" => {
                self.done += 1;
                bar.set_position(self.done.min(self.items));
            }
            "job.started" => bar.set_message("running"),
            "job.queued" => bar.set_message("queued"),
            "job.completed" | "job.failed" | "job.cancelled" => {
                self.terminal = Some(event.event.trim_start_matches("job.").to_owned());
                return false;
            }
            _ => {}
        }
        true
    }
}

fn progress_bar() -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(0), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} items  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("queued");
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Follows a job to its end; the outcome decides the result (and exit code).
pub async fn watch(client: &Client, id: &str) -> Result<(), CliError> {
    let bar = progress_bar();
    let mut state = Watched::default();
    let path = format!("/v1/jobs/{id}/events");
    let mut attempts = 0;
    while state.terminal.is_none() {
        let resume = state.last_id.clone();
        let stopped = sse::follow(client, &path, resume.as_deref(), |event| {
            state.on_event(&event, &bar)
        })
        .await;
        match stopped {
            Ok(_) if state.terminal.is_some() => break,
            Ok(_) => {}
            Err(e @ CliError::Hub { .. }) => {
                bar.finish_and_clear();
                return Err(e);
            }
            Err(e) if attempts >= 5 => {
                bar.finish_and_clear();
                return Err(e);
            }
            Err(_) => {}
        }
        // The stream ended early (lag notice, dropped connection): resume.
        attempts += 1;
        if attempts > 20 {
            bar.finish_and_clear();
            return Err(CliError::Io(format!(
                "the event stream of job {id} kept ending before the job did; try `switchyard jobs status {id}`"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200 * attempts.min(10))).await;
    }
    bar.finish_and_clear();
    let job = client.get(&format!("/v1/jobs/{id}")).await?;
    if client.json {
        Client::print_json(&job);
    } else {
        let items = &job["items"];
        println!(
            "job {id} {}: {} items, {} integrated, {} rejected, {} failed",
            text(&job["status"]),
            items["total"],
            items["integrated"],
            items["rejected"],
            items["failed"]
        );
    }
    let reason = job["status_reason"]
        .as_str()
        .unwrap_or("no reason given")
        .to_owned();
    match job["status"].as_str() {
        Some("failed") => Err(CliError::JobFailed {
            job_id: id.to_owned(),
            reason,
        }),
        Some("cancelled") => Err(CliError::JobCancelled {
            job_id: id.to_owned(),
            reason,
        }),
        _ => Ok(()),
    }
}
