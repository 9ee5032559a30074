//! `jobs status`: a job's summary, or its report, progress, rejected or
//! failed items.

use super::StatusArgs;
use crate::cli::client::output::{short, text};
use crate::cli::client::{CliError, Client, id_segment};

pub(super) async fn status(client: &Client, args: StatusArgs) -> Result<(), CliError> {
    let id = id_segment("job", &args.id)?;
    if args.report {
        let format = if client.json {
            "json"
        } else {
            args.format.as_str()
        };
        if !matches!(format, "json" | "text" | "markdown") {
            return Err(CliError::Usage(format!(
                "--format `{format}` is not known; use text or markdown (or --json)"
            )));
        }
        let body = client
            .get_text(&format!("/v1/jobs/{id}/report?format={format}"))
            .await?;
        print!("{body}");
        if !body.ends_with('\n') {
            println!();
        }
        return Ok(());
    }
    if args.progress {
        let p = client.get(&format!("/v1/jobs/{id}/progress")).await?;
        if client.json {
            Client::print_json(&p);
            return Ok(());
        }
        println!("job {id} {}", text(&p["status"]));
        let stages = p["stages"].as_array().cloned().unwrap_or_default();
        for stage in &stages {
            let t = &stage["tasks"];
            // The API counts stages from 0; people, as in reports and the
            // dashboard, from 1.
            println!(
                "  stage {}/{} {:<28} {} tasks: {} pending, {} running, {} succeeded, {} failed",
                stage["stage"].as_i64().unwrap_or(0) + 1,
                stages.len(),
                text(&stage["capability"]),
                t["total"],
                t["pending"],
                t["assigned"].as_i64().unwrap_or(0) + t["running"].as_i64().unwrap_or(0),
                t["succeeded"],
                t["failed"]
            );
        }
        let i = &p["items"];
        println!(
            "  items {}: {} integrated, {} rejected, {} failed, {} open",
            i["total"],
            i["integrated"],
            i["rejected"],
            i["failed"],
            i["pending"].as_i64().unwrap_or(0) + i["validating"].as_i64().unwrap_or(0)
        );
        println!(
            "  rate {:.1} tasks/min; elapsed {}",
            p["rate"]["tasks_per_minute"].as_f64().unwrap_or(0.0),
            crate::report::human_duration(p["elapsed_seconds"].as_f64().unwrap_or(0.0))
        );
        match p["eta_seconds"].as_f64() {
            Some(eta) => println!(
                "  ETA {} ({})",
                crate::report::human_duration(eta),
                text(&p["eta_at"])
            ),
            None => println!("  ETA unknown: {}", text(&p["eta_reason"])),
        }
        return Ok(());
    }
    if args.rejected || args.failed {
        let which = if args.rejected { "rejected" } else { "failed" };
        let limit = args.limit.clamp(1, 1000);
        let page = client
            .get(&format!("/v1/jobs/{id}/items?status={which}&limit={limit}"))
            .await?;
        if client.json {
            Client::print_json(&page);
            return Ok(());
        }
        let items = page["items"].as_array().cloned().unwrap_or_default();
        println!("{} {which} item(s) of job {id}", items.len());
        for item in items {
            let what = item["data"]["text"]
                .as_str()
                .or(item["data"]["name"].as_str())
                .unwrap_or("-")
                .to_owned();
            let why = if args.rejected {
                text(&item["rejection_reason"])
            } else {
                text(&item["last_error"])
            };
            println!("- {what}\n  {why}");
        }
        return Ok(());
    }
    let job = client.get(&format!("/v1/jobs/{id}")).await?;
    if client.json {
        Client::print_json(&job);
        return Ok(());
    }
    println!("job       {id}");
    println!("status    {}", text(&job["status"]));
    if let Some(reason) = job["status_reason"].as_str() {
        println!("reason    {reason}");
    }
    println!("prompt    {}", short(&text(&job["prompt"]), 100));
    let pipeline: Vec<String> = job["pipeline"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    println!("pipeline  {}", pipeline.join(" -> "));
    println!("priority  {}", job["priority"]);
    println!(
        "created   {} by {}",
        text(&job["created_at"]),
        text(&job["created_by"])
    );
    if let Some(doc) = job["document"].as_object() {
        println!(
            "document  {} ({} bytes)",
            text(&doc["file_name"]),
            doc["size"]
        );
    }
    let i = &job["items"];
    println!(
        "items     {} total: {} integrated, {} rejected, {} failed, {} pending, {} validating",
        i["total"], i["integrated"], i["rejected"], i["failed"], i["pending"], i["validating"]
    );
    Ok(())
}
