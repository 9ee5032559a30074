//! Rebuild the crate when a migration or a dashboard file changes:
//! `sqlx::migrate!` embeds the files in `../migrations` and `rust-embed` the
//! files in `../web` at compile time, and cargo does not watch added or
//! removed files by itself.
//!
//! It also stamps the build with its git commit (`SWITCHYARD_COMMIT`, the
//! `commit` label of `switchyard_build_info`): the `SWITCHYARD_COMMIT` the
//! build is given (the container build's `--build-arg`), else the
//! checkout's `HEAD`, else `unknown`.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    println!("cargo:rerun-if-changed=../web");
    for watched in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs"] {
        if std::path::Path::new(watched).exists() {
            println!("cargo:rerun-if-changed={watched}");
        }
    }
    println!("cargo:rerun-if-env-changed=SWITCHYARD_COMMIT");
    let given = std::env::var("SWITCHYARD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty());
    let commit = given.or_else(|| {
        std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    });
    let commit = commit.unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SWITCHYARD_COMMIT={commit}");
}
