//! The hub under test: a `switchyard serve` child process on a fresh
//! database (so its CPU and memory are its own), or an existing hub (`--url`).

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::auth::{JwtKeys, Role};
use crate::store::{Backend, provision};

/// The secret the bench gives the child hub, so it can sign its own tokens.
const BENCH_SECRET: &str = "switchyard-bench-secret-0123456789abcdefghij";

/// A hub to drive.
pub struct Target {
    pub base: String,
    pub ws: String,
    keys: Option<JwtKeys>,
    /// The admin token of a remote hub.
    token: Option<String>,
    child: Option<Child>,
    pub pid: Option<u32>,
    pub backend: String,
    /// The local hub's database, for exact-count checks.
    pub database_url: Option<String>,
    _data_dir: Option<tempfile::TempDir>,
    drop_db: Option<(String, String)>,
}

/// How the local hub is set up.
pub struct LocalOptions {
    pub backend: Backend,
    pub database_url: Option<String>,
    /// Extra `SWITCHYARD_*` settings for the scenario.
    pub env: Vec<(String, String)>,
}

impl Target {
    /// An existing hub; `token` must be an admin token, and `jwt_secret` the
    /// hub's secret, which signs the agents' tokens.
    pub fn remote(url: &str, token: String, jwt_secret: String) -> Target {
        let base = url.trim_end_matches('/').to_owned();
        let ws = base.replacen("http", "ws", 1) + "/v1/agents/connect";
        Target {
            base,
            ws,
            keys: Some(JwtKeys::new(jwt_secret.as_bytes(), None)),
            token: Some(token),
            child: None,
            pid: None,
            backend: "remote".into(),
            database_url: None,
            _data_dir: None,
            drop_db: None,
        }
    }

    /// Starts `switchyard serve` as a child process on a fresh database.
    pub async fn local(options: LocalOptions) -> anyhow::Result<Target> {
        let data_dir = tempfile::tempdir().context("creating a temporary data directory")?;
        let (database_url, drop_db) = match options.backend {
            Backend::Sqlite => (
                format!("sqlite://{}", data_dir.path().join("bench.db").display()),
                None,
            ),
            Backend::Postgres => {
                let admin = options
                    .database_url
                    .clone()
                    .or_else(|| std::env::var("DATABASE_URL").ok())
                    .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
                let name = format!("sy_bench_{}", uuid::Uuid::new_v4().simple());
                let url = provision::create_postgres_database(&admin, &name)
                    .await
                    .with_context(|| {
                        format!(
                            "creating a benchmark database on {}",
                            crate::config::settings::redact_url(&admin)
                        )
                    })?;
                (url, Some((admin, name)))
            }
        };
        let mut target =
            Target::node(options.backend, &database_url, data_dir, &options.env).await?;
        target.drop_db = drop_db;
        Ok(target)
    }

    /// Starts `switchyard serve` as a child process on an existing database
    /// (a node of a cluster, when several share it); the database is not
    /// dropped at shutdown.
    pub async fn node(
        backend: Backend,
        database_url: &str,
        data_dir: tempfile::TempDir,
        env: &[(String, String)],
    ) -> anyhow::Result<Target> {
        let port = free_port()?;
        let exe = std::env::current_exe().context("locating the switchyard binary")?;
        let mut command = Command::new(exe);
        command
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                database_url,
            ])
            .arg("--data-dir")
            .arg(data_dir.path())
            .env("SWITCHYARD_JWT_SECRET", BENCH_SECRET)
            .env("SWITCHYARD_RATE_LIMIT_PER_SECOND", "0")
            .env("SWITCHYARD_LOG_FILTER", "warn")
            .env("SWITCHYARD_POOL_SIZE", "16")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let child = command.spawn().context("starting the hub under test")?;
        let pid = child.id();
        let base = format!("http://127.0.0.1:{port}");
        let target = Target {
            ws: format!("ws://127.0.0.1:{port}/v1/agents/connect"),
            base,
            keys: Some(JwtKeys::new(BENCH_SECRET.as_bytes(), None)),
            token: None,
            child: Some(child),
            pid,
            backend: backend.as_str().into(),
            database_url: Some(database_url.to_owned()),
            _data_dir: Some(data_dir),
            drop_db: None,
        };
        target.wait_ready().await?;
        Ok(target)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(res) = client.get(format!("{}/ready", self.base)).send().await
                && res.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the hub under test did not become ready within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The admin token given for a remote hub; otherwise a token for
    /// `role`/`sub` signed with the hub's secret.
    pub fn token(&self, role: Role, sub: &str) -> anyhow::Result<String> {
        match (&self.token, &self.keys) {
            (Some(token), _) if role != Role::Agent => Ok(token.clone()),
            (_, Some(keys)) => Ok(keys.issue(sub, role, Duration::from_secs(24 * 3600))?),
            (_, None) => bail!("the bench has no key to sign an agent token with"),
        }
    }

    /// CPU seconds used by the hub process so far (local hubs on Linux).
    pub fn hub_cpu_seconds(&self) -> Option<f64> {
        self.pid.and_then(process_cpu_seconds)
    }

    /// Resident memory of the hub process in bytes (local hubs on Linux).
    pub fn hub_rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// Stops the hub and drops its database.
    pub async fn shutdown(mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                // SIGTERM: a graceful stop, like an operator would.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        if let Some((admin, name)) = self.drop_db.take()
            && let Err(e) = provision::drop_postgres_database(&admin, &name).await
        {
            eprintln!("warning: could not drop benchmark database {name}: {e}");
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// utime + stime of a process, in seconds.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may contain spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// CPU seconds of every local `postgres` process (the database server's share).
pub fn postgres_cpu_seconds() -> Option<f64> {
    let mut total = 0.0;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "postgres"
            && let Some(cpu) = process_cpu_seconds(pid)
        {
            total += cpu;
            found = true;
        }
    }
    found.then_some(total)
}
