//! The agent the peer benchmark harness (`peer-bench`, peers
//! `switchyard-*-sdk`) runs as its worker: this SDK with a no-op handler,
//! the way graphile-worker and BullMQ are measured with their own workers.
//!
//! Contract (the harness's README): env `SY_WS_URL`, `SY_AGENT_TOKEN`,
//! `SY_AGENT_NAME`, `SY_CAPABILITY`, `CONCURRENCY`, `REPORT_PORT`. It writes
//! `READY <pid>` to `127.0.0.1:$REPORT_PORT` once welcomed, then for every
//! task `R <id> <t_start_ns> <t_end_ns>` (`id` = the input's `context.id`,
//! CLOCK_MONOTONIC ns, `t_start` read on the handler's first line). SIGTERM
//! drains: running tasks finish and are acknowledged, then it exits 0.

use std::process::ExitCode;

use switchyard_agent::{Agent, CapabilitySpec, TaskContext, TaskError};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// CLOCK_MONOTONIC in nanoseconds, as the harness's other workers read it.
fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set (see the peer-bench README)"))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peer_bench_agent: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let url = env("SY_WS_URL")?;
    let token = env("SY_AGENT_TOKEN")?;
    let name = env("SY_AGENT_NAME")?;
    let capability = env("SY_CAPABILITY")?;
    let slots: u32 = env("CONCURRENCY")?
        .parse()
        .map_err(|e| format!("CONCURRENCY: {e}"))?;
    let port = env("REPORT_PORT")?;

    let mut report = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .map_err(|e| format!("connecting to the report port {port}: {e}"))?;
    report.set_nodelay(true).ok();
    let (lines, mut queued) = mpsc::unbounded_channel::<String>();

    let agent = Agent::builder(url, token, name)
        .capability(
            CapabilitySpec::new(capability).max_concurrency(slots),
            move |_ctx: TaskContext, input: serde_json::Value| {
                let start = monotonic_ns();
                let id = input["context"]["id"].as_i64().unwrap_or(-1);
                let _ = lines.send(format!("R {id} {start} {}\n", monotonic_ns()));
                async { Ok::<_, TaskError>(serde_json::Value::Null) }
            },
        )
        .build()
        .map_err(|e| e.to_string())?;
    let handle = agent.spawn();
    handle.wait_connected().await.map_err(|e| e.to_string())?;
    report
        .write_all(format!("READY {}\n", std::process::id()).as_bytes())
        .await
        .map_err(|e| e.to_string())?;

    // Reports go out in whatever batches they queue up in.
    let writer = tokio::spawn(async move {
        let mut buf = String::new();
        while let Some(line) = queued.recv().await {
            buf.push_str(&line);
            while let Ok(more) = queued.try_recv() {
                buf.push_str(&more);
            }
            if report.write_all(buf.as_bytes()).await.is_err() {
                return;
            }
            buf.clear();
        }
        let _ = report.flush().await;
    });

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        result = handle.join() => result.map_err(|e| e.to_string())?,
        _ = term.recv() => {
            handle.drain().await;
            handle.join().await.map_err(|e| e.to_string())?;
        }
    }
    drop(agent);
    let _ = writer.await;
    Ok(())
}
