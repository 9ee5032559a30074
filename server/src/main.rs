//! The `switchyard` binary: the hub and its command line.

use clap::Parser;
use switchyard::cli::{Cli, run};

/// mimalloc instead of glibc's malloc: the hub makes many small, short-lived
/// allocations across threads (frames, JSON values, rows), where glibc's
/// arenas spent a fifth of the hub's CPU in the drain benchmark
/// (`docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One clear message, with its causes, never a backtrace.
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
