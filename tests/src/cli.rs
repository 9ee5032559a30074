//! Runs the `switchyard` binary as a subprocess, as a user would.
//!
//! The binary is built once per test process (`cargo build -p switchyard
//! --bin switchyard`, with the `CARGO` that runs the tests when set) into
//! the same target directory as the test binary, found from
//! `std::env::current_exe()` (`<target>/<profile>/deps/it-<hash>`).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use crate::TestApp;

static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The path of the `switchyard` binary, built on first use.
pub fn binary() -> PathBuf {
    match BINARY.get_or_init(build) {
        Ok(path) => path.clone(),
        Err(e) => panic!("{e}"),
    }
}

fn build() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // <target>/<profile>/deps/it-<hash>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| format!("unexpected test binary location {}", exe.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("no target dir above {}", profile_dir.display()))?;
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .ok_or("no workspace above the tests crate")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command
        .current_dir(&workspace)
        .args(["build", "-p", "switchyard", "--bin", "switchyard"])
        .env("CARGO_TARGET_DIR", target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        command.arg("--release");
    }
    let status = command
        .status()
        .map_err(|e| format!("running cargo build: {e}"))?;
    if !status.success() {
        return Err(format!(
            "cargo build of the switchyard binary failed: {status}"
        ));
    }
    let binary = profile_dir.join(format!("switchyard{}", std::env::consts::EXE_SUFFIX));
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!("built, but {} is missing", binary.display()))
    }
}

/// What a run printed and how it exited.
#[derive(Debug)]
pub struct CliRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// The standard output as JSON (panics with both outputs when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// Runs `switchyard args...` against `app` with `token` (through
/// `SWITCHYARD_URL`/`SWITCHYARD_TOKEN`), stdin closed, `HOME` and
/// `XDG_CONFIG_HOME` pointing at an empty directory, within 60 s.
pub async fn run(app: &TestApp, token: &str, args: &[&str]) -> CliRun {
    run_at(&app.base, token, args).await
}

/// [`run`] against the hub at `base`.
pub async fn run_at(base: &str, token: &str, args: &[&str]) -> CliRun {
    let home = tempfile::tempdir().expect("temp home");
    let mut command = tokio::process::Command::new(binary());
    command
        .args(args)
        .env("SWITCHYARD_URL", base)
        .env("SWITCHYARD_TOKEN", token)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("switchyard {args:?} did not finish within 60 s"))
        .expect("run the switchyard binary");
    CliRun {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
