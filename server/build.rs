//! Rebuild the crate when a migration or a dashboard file changes:
//! `sqlx::migrate!` embeds the files in `../migrations` and `rust-embed` the
//! files in `../web` at compile time, and cargo does not watch added or
//! removed files by itself.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    println!("cargo:rerun-if-changed=../web");
}
