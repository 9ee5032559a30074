//! Creating and dropping whole Postgres databases, for the benchmark tool
//! (each run gets a fresh database, like each test does).

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use super::StoreError;

/// Creates database `name` on the server of `admin_url` and returns a URL for it.
pub async fn create_postgres_database(admin_url: &str, name: &str) -> Result<String, StoreError> {
    check_name(name)?;
    let options: PgConnectOptions = admin_url.parse().map_err(StoreError::Database)?;
    let mut conn = PgConnection::connect_with(&options).await?;
    // Identifiers cannot be bound parameters; `name` is checked to be [a-z0-9_].
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let base = admin_url.split('?').next().unwrap_or(admin_url);
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    Ok(format!("{server}/{name}"))
}

/// Drops database `name` (closing other sessions on it).
pub async fn drop_postgres_database(admin_url: &str, name: &str) -> Result<(), StoreError> {
    check_name(name)?;
    let options: PgConnectOptions = admin_url.parse().map_err(StoreError::Database)?;
    let mut conn = PgConnection::connect_with(&options).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}

fn check_name(name: &str) -> Result<(), StoreError> {
    if !name.is_empty()
        && name.len() < 60
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!(
            "`{name}` is not a safe database name"
        )))
    }
}
