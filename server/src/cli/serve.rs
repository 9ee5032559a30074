//! `switchyard serve`: start the hub and run until SIGINT/SIGTERM.

use anyhow::Context;

use super::ServeArgs;
use crate::Server;
use crate::config;

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let loaded = config::Source::cli(args.config.config.as_deref(), &args.overrides()).load()?;
    let settings = &loaded.settings;
    let _telemetry = crate::telemetry::init(
        settings.log_format,
        &settings.log_filter,
        settings.otlp_endpoint.as_deref(),
    )?;
    let data_dir = settings.data_dir.clone();

    // SIGHUP's default action ends the process: listen for it before the
    // banner tells anyone the hub is up.
    #[cfg(unix)]
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());

    let hub = Server::start_loaded(loaded)
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

    #[cfg(unix)]
    tokio::spawn(reload_on_hangup(hangup, hub.state.clone()));
    let shutdown = hub.shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received; finishing in-flight requests");
        shutdown.cancel();
    });
    hub.wait().await;
    Ok(())
}

/// SIGHUP re-reads the configuration (see [`crate::reload`]); the outcome
/// is logged either way.
#[cfg(unix)]
async fn reload_on_hangup(
    hangup: std::io::Result<tokio::signal::unix::Signal>,
    state: crate::state::AppState,
) {
    let Ok(mut hangup) = hangup else {
        tracing::warn!(
            "cannot listen for SIGHUP; use POST /v1/admin/reload to reload the configuration"
        );
        return;
    };
    loop {
        tokio::select! {
            received = hangup.recv() => {
                if received.is_none() { return; }
                tracing::info!("SIGHUP received; reloading the configuration");
                // Refusals are logged by the reload itself.
                let _ = state.reloader.reload(&state);
            }
            () = state.shutdown.cancelled() => return,
        }
    }
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
