//! `switchyard dev`: the hub on its embedded store plus the reference Creator
//! and Validator agents in the same process, so a newcomer sees a job run end
//! to end with one command.

use std::time::Duration;

use anyhow::Context;
use switchyard_agent::reference::agents::{creator, validator};

use super::ServeArgs;
use crate::Server;
use crate::auth::Role;
use crate::config;

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = config::load(args.config.config.as_deref(), &args.overrides())?;
    let _telemetry = crate::telemetry::init(
        settings.log_format,
        &settings.log_filter,
        settings.otlp_endpoint.as_deref(),
    )?;
    let hub = Server::start(settings)
        .await
        .context("switchyard could not start")?;
    let base = format!("http://{}", hub.addr);
    let ws = format!("ws://{}/v1/agents/connect", hub.addr);
    let keys = hub.state.keys.clone();
    let token = |sub: &str, role: Role| {
        keys.issue(sub, role, Duration::from_secs(7 * 24 * 3600))
            .context("signing a token")
    };

    let agents = [
        creator(&ws, &token("creator-1", Role::Agent)?, "creator-1")
            .context("starting the creator agent")?
            .spawn(),
        validator(&ws, &token("validator-1", Role::Agent)?, "validator-1")
            .context("starting the validator agent")?
            .spawn(),
    ];
    let admin = token("admin", Role::Admin)?;
    println!();
    println!("switchyard dev: hub on {base} with the reference agents creator-1 and validator-1");
    println!();
    println!("  dashboard: open {base}/ in a browser and paste the token below");
    println!();
    println!("  export TOKEN={admin}");
    println!();
    println!(
        "  # submit a job with a document (any text or Markdown with must/shall/should sentences)"
    );
    println!(
        "  curl -s -X POST {base}/v1/jobs -H \"Authorization: Bearer $TOKEN\" -F prompt='Extract the requirements' -F document=@spec.md"
    );
    println!("  curl -s {base}/v1/jobs/$JOB_ID -H \"Authorization: Bearer $TOKEN\"");
    println!("  curl -s {base}/v1/jobs/$JOB_ID/items -H \"Authorization: Bearer $TOKEN\"");
    println!("  curl -s {base}/v1/agents -H \"Authorization: Bearer $TOKEN\"");
    println!();

    let shutdown = hub.shutdown.clone();
    tokio::spawn(async move {
        super::serve::wait_for_signal().await;
        shutdown.cancel();
    });
    hub.wait().await;
    for agent in agents {
        agent.kill();
    }
    Ok(())
}
