//! `pipeline`: the reference Creator/Validator pipeline on a generated
//! document with N requirements: time to job completion.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::json;
use switchyard_agent::reference::agents::{creator_builder, validator_builder};

use super::Common;
use super::client::Client;
use super::report::Report;
use super::target::Target;
use crate::auth::Role;

/// A specification with `n` distinct, valid requirement sentences.
pub fn document(n: usize) -> String {
    let mut text = String::from("# Generated specification\n\n");
    for i in 0..n {
        text.push_str(&format!("The archive service must keep invoice batch {i} readable for ten years with a complete audit trail.\n"));
    }
    text
}

pub async fn run(target: &Target, common: &Common) -> anyhow::Result<Report> {
    let n = common.requirements;
    let mut report = Report::new("pipeline", &target.backend, json!({"requirements": n}));
    let creator = creator_builder(
        &target.ws,
        &target.token(Role::Agent, "bench-creator")?,
        "bench-creator",
    )
    .build()?
    .spawn();
    let validators: Vec<_> = (0..common.agents.max(1))
        .map(|i| {
            let name = format!("bench-validator-{i}");
            Ok::<_, anyhow::Error>(
                validator_builder(&target.ws, &target.token(Role::Agent, &name)?, &name)
                    .build()?
                    .spawn(),
            )
        })
        .collect::<Result<_, _>>()?;
    creator.wait_connected().await?;
    for v in &validators {
        v.wait_connected().await?;
    }
    let client = Client::new(target)?;
    let doc = base64::engine::general_purpose::STANDARD.encode(document(n));
    let start = Instant::now();
    let id = client
        .submit(json!({"prompt": "Extract the requirements", "document": {"content_base64": doc, "file_name": "generated.md", "content_type": "text/markdown"}}))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let job = loop {
        let job = client.job(&id).await?;
        if job["status"] != "queued" && job["status"] != "running" {
            break job;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the pipeline job did not finish within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = start.elapsed();
    report.metric("job_completion", elapsed.as_secs_f64(), "s");
    report.metric(
        "items_per_second",
        n as f64 / elapsed.as_secs_f64(),
        "items/s",
    );
    report.check("job completed", job["status"] == "completed");
    report.check(
        format!("{n} items, all integrated"),
        job["items"]["total"] == n && job["items"]["integrated"] == n,
    );
    creator.kill();
    for v in validators {
        v.kill();
    }
    Ok(report)
}
