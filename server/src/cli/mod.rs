//! The `switchyard` command line: `serve` runs the hub, `token issue` signs tokens.

mod agents;
pub mod client;
mod dev;
mod doctor;
mod jobs;
mod serve;
mod token;
mod webhooks;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::ConfigOverrides;

/// Switchyard: a push-based coordination hub for software agents.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the hub (SQLite in the data directory unless --database-url says otherwise).
    Serve(ServeArgs),
    /// Start the hub together with the reference Creator and Validator agents.
    Dev(ServeArgs),
    /// Measure throughput, latency, sessions, failover and the reference pipeline.
    Bench(crate::bench::BenchArgs),
    /// Check a setup without starting the hub: configuration, data
    /// directory, signing secret, store and schema, listen address.
    Doctor(DoctorArgs),
    /// Manage access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Submit, follow and inspect jobs on a running hub (see docs/cli.md).
    Jobs(ClientCommand<jobs::JobsCommand>),
    /// List, drain and check agents on a running hub.
    Agents(ClientCommand<agents::AgentsCommand>),
    /// Print a shell completion script, e.g. `switchyard completions bash >
    /// /etc/bash_completion.d/switchyard`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Manage webhook subscriptions on a running hub.
    Webhooks(ClientCommand<webhooks::WebhooksCommand>),
}

/// A client subcommand with the flags saying which hub and which token.
#[derive(Debug, Args)]
pub struct ClientCommand<C: Subcommand> {
    #[command(flatten)]
    pub client: client::ClientArgs,
    #[command(subcommand)]
    pub command: C,
}

/// Ends a client command: errors print as one line and exit with their code.
fn client_exit(result: Result<(), client::CliError>) -> anyhow::Result<()> {
    if let Err(e) = result {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        eprintln!("error: {e}");
        std::process::exit(i32::from(e.exit_code()));
    }
    Ok(())
}

/// Flags shared by everything that reads the hub's configuration.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Configuration file (TOML); default ./switchyard.toml when present.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the generated JWT secret and the default SQLite database live [env: SWITCHYARD_DATA_DIR].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Address to listen on [env: SWITCHYARD_LISTEN] [default: 127.0.0.1:8000].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// postgres://... or sqlite://PATH [env: DATABASE_URL] [default: sqlite in the data directory].
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Log format: pretty or json [env: SWITCHYARD_LOG_FORMAT].
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Also connect to every enabled webhook subscription's target.
    #[arg(long)]
    pub webhooks: bool,
    /// Print the checks as JSON: `{"ok": bool, "checks": [{"name", "ok", "says"}]}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a token signed with the hub's key.
    Issue(TokenIssueArgs),
}

#[derive(Debug, Clone, Args)]
pub struct TokenIssueArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// admin, operator, viewer or agent.
    #[arg(long)]
    pub role: String,
    /// Who the token is for (for agents: the agent's name).
    #[arg(long)]
    pub sub: String,
    /// How long it is valid, e.g. 24h, 30m, 7days.
    #[arg(long, default_value = "24h")]
    pub ttl: String,
    /// Print `{"token", "sub", "role", "expires_at"}` instead of the bare token.
    #[arg(long)]
    pub json: bool,
}

impl ServeArgs {
    pub fn overrides(&self) -> ConfigOverrides {
        ConfigOverrides {
            listen: self.listen.clone(),
            database_url: self.database_url.clone(),
            data_dir: self.config.data_dir.clone(),
            log_format: self.log_format.clone(),
        }
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Dev(args) => dev::run(args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Bench(args) => {
            if crate::bench::run(args).await? {
                Ok(())
            } else {
                anyhow::bail!(
                    "the benchmark's own checks failed (lost or duplicated work); see above"
                )
            }
        }
        Command::Token(TokenCommand::Issue(args)) => token::issue(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "switchyard",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Jobs(a) => client_exit(match client::Client::from_args(&a.client) {
            Ok(c) => jobs::run(&c, a.command).await,
            Err(e) => Err(e),
        }),
        Command::Agents(a) => client_exit(match client::Client::from_args(&a.client) {
            Ok(c) => agents::run(&c, a.command).await,
            Err(e) => Err(e),
        }),
        Command::Webhooks(a) => client_exit(match client::Client::from_args(&a.client) {
            Ok(c) => webhooks::run(&c, a.command).await,
            Err(e) => Err(e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// A subcommand flag that shares its name with an inherited global flag
    /// is silently read as the global one: `webhooks create --url X` once
    /// sent the admin token to X. No subcommand may reuse a global's name.
    #[test]
    fn no_subcommand_flag_shadows_a_global_flag() {
        fn walk(cmd: &clap::Command, inherited: &[String], path: &str, clashes: &mut Vec<String>) {
            let mut globals = inherited.to_vec();
            for arg in cmd.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if arg.is_global_set() {
                    globals.push(long.to_owned());
                } else if inherited.iter().any(|g| g == long) {
                    clashes.push(format!("{path} --{long}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(
                    sub,
                    &globals,
                    &format!("{path} {}", sub.get_name()),
                    clashes,
                );
            }
        }
        let mut clashes = Vec::new();
        walk(&Cli::command(), &[], "switchyard", &mut clashes);
        assert!(clashes.is_empty(), "flags shadowing a global: {clashes:?}");
    }
}
