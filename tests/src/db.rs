//! Fresh databases for tests: every test gets its own, so tests never see each
//! other's rows and can run in parallel.
//!
//! Postgres databases are named `sy_test_<uuid>` on the server given by
//! `DATABASE_URL`; `scripts/test` drops leftovers from earlier runs. SQLite
//! files live in a temp dir that is deleted when the returned guard drops.

use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tempfile::TempDir;
use uuid::Uuid;

/// The server used when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// `DATABASE_URL`, or the local default.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// Creates a new, empty database on the `DATABASE_URL` server and returns its URL.
///
/// Panics with instructions when the server cannot be reached.
pub async fn fresh_postgres_url() -> String {
    let admin = admin_url();
    let connect = tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(&admin));
    let mut conn = match connect.await {
        Ok(Ok(conn)) => conn,
        Ok(Err(err)) => panic!("{}", unreachable_message(&admin, &err.to_string())),
        Err(_) => panic!("{}", unreachable_message(&admin, "timed out after 10s")),
    };
    let name = format!("sy_test_{}", Uuid::new_v4().simple());
    // Identifiers cannot be bound as parameters; `name` is our own
    // `sy_test_` + 32 hex digits, so it is safe to splice in.
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|err| panic!("CREATE DATABASE {name} on {}: {err}", redact(&admin)));
    let _ = conn.close().await;
    with_database(&admin, &name)
}

/// A temp dir and the URL of a (not yet existing) SQLite database file in it.
/// Keep the dir alive as long as the database is used.
pub fn fresh_sqlite() -> (TempDir, String) {
    let dir = tempfile::Builder::new()
        .prefix("sy_test_")
        .tempdir()
        .expect("create a temp dir");
    let url = format!("sqlite://{}", dir.path().join("switchyard.db").display());
    (dir, url)
}

/// `url` with its database (path) replaced by `name`, query string kept.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

fn unreachable_message(url: &str, err: &str) -> String {
    format!(
        "cannot reach the test PostgreSQL server at {} ({err}).\n\
         Run the tests with ./scripts/test (it finds or starts a server), or set \
         DATABASE_URL to a server where the user may CREATE DATABASE.",
        redact(url)
    )
}

/// Hides a password in a URL.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    match (rest.find('@'), rest.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &rest[..colon],
                &rest[at..]
            )
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgresql://h:1", "x"), "postgresql://h:1/x");
    }

    #[test]
    fn hides_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h:5432/db"), "postgres://u@h:5432/db");
    }
}
