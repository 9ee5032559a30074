//! Rebuild the crate when a migration or a dashboard file changes:
//! `sqlx::migrate!` embeds the files in `../migrations` and `rust-embed` the
//! files in `../web` at compile time, and cargo does not watch added or
//! removed files by itself.
//!
//! It also stamps the build with its git commit (`SWITCHYARD_COMMIT`, the
//! `commit` label of `switchyard_build_info`), or `unknown` outside a
//! checkout.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    println!("cargo:rerun-if-changed=../web");
    for watched in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs"] {
        if std::path::Path::new(watched).exists() {
            println!("cargo:rerun-if-changed={watched}");
        }
    }
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SWITCHYARD_COMMIT={commit}");
}
