//! `switchyard serve`: start the hub and run until SIGINT/SIGTERM.

use anyhow::Context;

use super::ServeArgs;
use crate::Server;
use crate::config;

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = config::load(args.config.config.as_deref(), &args.overrides())?;
    crate::telemetry::init(settings.log_format, &settings.log_filter);
    let data_dir = settings.data_dir.clone();

    let hub = Server::start(settings)
        .await
        .context("switchyard could not start")?;
    let base = format!("http://{}", hub.addr);
    if let Some(token) = &hub.first_admin_token {
        println!();
        println!(
            "A new JWT secret was generated in {}.",
            data_dir.join(crate::auth::secret::SECRET_FILE).display()
        );
        println!("Admin token (valid 30 days, shown only this once):");
        println!();
        println!("    {token}");
        println!();
        println!("Try it:   curl -H \"Authorization: Bearer $TOKEN\" {base}/v1/jobs");
        println!("More:     switchyard token issue --role operator --sub alice --ttl 24h");
        println!();
    }
    println!("switchyard listening on {base}  (API description: {base}/v1/openapi.json)");

    let shutdown = hub.shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received; finishing in-flight requests");
        shutdown.cancel();
    });
    hub.wait().await;
    Ok(())
}

pub(super) async fn wait_for_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
