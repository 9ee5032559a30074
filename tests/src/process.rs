//! `switchyard serve` as a real child process, for tests that kill it.
//!
//! In-process hubs ([`crate::spawn_app`]) cannot be killed with SIGKILL:
//! crash tests need the operating system to end the hub mid-write, exactly
//! as a power cut or an OOM kill would, and a new process to start on the
//! same database.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use switchyard::auth::{JwtKeys, Role};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::app::TEST_SECRET;

/// A hub process, its database and data directory. The port stays the
/// same across restarts, so agents reconnect to the same URL.
pub struct ServeProcess {
    pub base: String,
    pub database_url: String,
    pub port: u16,
    env: Vec<(String, String)>,
    data_dir: TempDir,
    child: Option<Child>,
    keys: JwtKeys,
}

impl ServeProcess {
    /// Starts `serve` on `database_url`, with `env` (`SWITCHYARD_*`
    /// settings) on top of the test defaults, and waits until it is ready.
    pub async fn start(database_url: String, env: &[(&str, &str)]) -> ServeProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut process = ServeProcess {
            base: format!("http://127.0.0.1:{port}"),
            database_url,
            port,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            data_dir: tempfile::tempdir().expect("temp data dir"),
            child: None,
            keys: JwtKeys::new(TEST_SECRET.as_bytes(), None),
        };
        process.restart().await;
        process
    }

    /// Starts the process again (after [`ServeProcess::kill9`]) and waits
    /// until it is ready.
    pub async fn restart(&mut self) {
        let binary: PathBuf = crate::cli::binary();
        let mut command = Command::new(binary);
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--database-url", &self.database_url])
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .env("SWITCHYARD_JWT_SECRET", TEST_SECRET)
            .env("SWITCHYARD_RATE_LIMIT_PER_SECOND", "0")
            .env("SWITCHYARD_LOG_FILTER", "warn")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        self.child = Some(command.spawn().expect("start switchyard serve"));
        self.wait_ready(Duration::from_secs(30)).await;
    }

    /// Waits until `GET /ready` answers 200.
    pub async fn wait_ready(&self, timeout: Duration) {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(res) = client.get(format!("{}/ready", self.base)).send().await
                && res.status().is_success()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the hub at {} was not ready within {timeout:?}",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL: the process ends wherever it is, nothing is flushed.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("SIGKILL the hub");
            child.wait().await.expect("reap the hub");
        }
    }

    /// SIGTERM: a clean stop (what a rolling restart does); waits for the
    /// process to exit.
    pub async fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let status = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .expect("run kill");
                assert!(status.success(), "kill -TERM {pid}");
            }
            child.wait().await.expect("wait for the hub to stop");
        }
    }

    pub fn token(&self, role: Role, sub: &str) -> String {
        self.keys
            .issue(sub, role, Duration::from_secs(3600))
            .expect("sign token")
    }

    pub fn agent_url(&self) -> String {
        format!("ws://127.0.0.1:{}/v1/agents/connect", self.port)
    }
}

/// Removes the caller's `SWITCHYARD_*`, `DATABASE_URL` and `RUST_LOG` from
/// `cmd`'s environment: the process reads only what the test gives it.
pub fn without_callers_settings(cmd: &mut Command) {
    for (key, _) in std::env::vars() {
        if key.starts_with("SWITCHYARD_") || key == "DATABASE_URL" || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
}

/// `switchyard serve --config FILE` run in `dir` (its data directory),
/// with only the settings of the file and `env`; its output is read line
/// by line.
pub struct ConfiguredServe {
    pub child: Child,
    pub lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    /// `http://host:port`, from the banner it prints once it listens.
    pub base: String,
}

impl ConfiguredServe {
    /// Starts it and waits for its banner.
    pub async fn start(
        config: &std::path::Path,
        dir: &std::path::Path,
        env: &[(&str, &str)],
    ) -> ConfiguredServe {
        use tokio::io::AsyncBufReadExt;
        let mut cmd = Command::new(crate::cli::binary());
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(dir)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        without_callers_settings(&mut cmd);
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().expect("start switchyard serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let base = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read the hub's output") {
                if let Some(rest) = line.strip_prefix("switchyard listening on ") {
                    return rest.split_whitespace().next().expect("url").to_owned();
                }
            }
            panic!("the hub exited before it listened");
        })
        .await
        .expect("the hub listens");
        ConfiguredServe { child, lines, base }
    }

    /// Sends it SIGHUP.
    pub fn hangup(&self) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("run kill");
        assert!(status.success());
    }
}
