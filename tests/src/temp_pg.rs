//! A throwaway PostgreSQL cluster of the test's own, for tests that stop
//! and restart the database under a running hub. It never touches the
//! shared server in `DATABASE_URL`.
//!
//! Uses Debian's `initdb`/`pg_ctl` (`SWITCHYARD_TEST_PG_BINDIR`, else the
//! newest `/usr/lib/postgresql/*/bin`, else `PATH`); `scripts/test`
//! installs them when missing. As root the cluster belongs to the
//! `postgres` system user, as initdb refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

pub struct TempPostgres {
    bindir: PathBuf,
    dir: TempDir,
    pub port: u16,
}

impl TempPostgres {
    /// initdb and start a cluster on a free loopback port.
    pub fn start() -> TempPostgres {
        let bindir = bindir().unwrap_or_else(|| {
            panic!(
                "initdb/pg_ctl not found: install Debian's `postgresql` package \
                 (./scripts/test does) or set SWITCHYARD_TEST_PG_BINDIR"
            )
        });
        let dir = tempfile::Builder::new()
            .prefix("sy_test_pg_")
            .tempdir_in("/tmp")
            .expect("temp dir");
        if is_root() {
            run(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = TempPostgres { bindir, dir, port };
        run(&mut cluster.as_pg_user(&[
            "initdb",
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "-D",
            &cluster.data().display().to_string(),
        ]));
        cluster.pg_ctl_start();
        cluster
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown: sessions are disconnected).
    pub fn stop(&self) {
        let data = self.data().display().to_string();
        run(&mut self.as_pg_user(&["pg_ctl", "-D", &data, "-m", "fast", "-w", "stop"]));
    }

    /// Starts it again on the same port.
    pub fn pg_ctl_start(&self) {
        let data = self.data().display().to_string();
        let socket = self.dir.path().display().to_string();
        let options = format!(
            "-p {} -k {socket} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port
        );
        let log = self.dir.path().join("log").display().to_string();
        run(&mut self.as_pg_user(&[
            "pg_ctl", "-D", &data, "-o", &options, "-l", &log, "-w", "start",
        ]));
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn as_pg_user(&self, args: &[&str]) -> Command {
        let program = self.bindir.join(args[0]);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.args(&args[1..]).current_dir("/");
        command
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let _ = self
            .as_pg_user(&["pg_ctl", "-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn run(command: &mut Command) {
    let out = command.output().expect("run a PostgreSQL tool");
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn bindir() -> Option<PathBuf> {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Ok(dir) = std::env::var("SWITCHYARD_TEST_PG_BINDIR") {
        return Some(PathBuf::from(dir)).filter(|d| has_tools(d));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| has_tools(d))
        .collect();
    versions.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(newest) = versions.pop() {
        return Some(newest);
    }
    std::env::var_os("PATH").and_then(|path| std::env::split_paths(&path).find(|d| has_tools(d)))
}
