//! Migrations: run at start-up, refuse a schema newer than this build knows.
//!
//! The SQL files in `migrations/{postgres,sqlite}` are embedded in the binary
//! (`sqlx::migrate!`), so a deployed hub carries its own schema and applies
//! what is missing when it connects. sqlx records applied versions in
//! `_sqlx_migrations`.
//!
//! A database migrated by a *newer* hub has versions this build has never
//! heard of. Running against it could silently misread data, so the store
//! refuses to start with [`StoreError::SchemaTooNew`], naming both versions.
//! That is checked before the migrator runs (so no advisory lock is taken and
//! left behind) and again when sqlx reports `VersionMissing` (a newer hub
//! migrated in between).

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{PgPool, SqlitePool};

use super::{SchemaStatus, StoreError};

/// The Postgres migrations of this build.
pub static POSTGRES: Migrator = sqlx::migrate!("../migrations/postgres");

/// The SQLite migrations of this build.
pub static SQLITE: Migrator = sqlx::migrate!("../migrations/sqlite");

/// Highest version a migrator knows (0 when it has none).
pub fn known_version(migrator: &Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// `Err(SchemaTooNew)` when the database is ahead of this build.
fn check_not_newer(applied: i64, known: i64) -> Result<(), StoreError> {
    if applied > known {
        Err(StoreError::SchemaTooNew { applied, known })
    } else {
        Ok(())
    }
}

/// Applies missing migrations to a Postgres database.
pub async fn run_postgres(pool: &PgPool) -> Result<(), StoreError> {
    let known = known_version(&POSTGRES);
    check_not_newer(applied_postgres(pool).await?, known)?;
    match POSTGRES.run(pool).await {
        Err(e @ MigrateError::VersionMissing(_)) => {
            check_not_newer(applied_postgres(pool).await?, known)?;
            Err(StoreError::Migrate(e))
        }
        other => other.map_err(StoreError::Migrate),
    }
}

/// Applies missing migrations to an SQLite database (through its one writer).
pub async fn run_sqlite(pool: &SqlitePool) -> Result<(), StoreError> {
    let known = known_version(&SQLITE);
    check_not_newer(applied_sqlite(pool).await?, known)?;
    match SQLITE.run(pool).await {
        Err(e @ MigrateError::VersionMissing(_)) => {
            check_not_newer(applied_sqlite(pool).await?, known)?;
            Err(StoreError::Migrate(e))
        }
        other => other.map_err(StoreError::Migrate),
    }
}

/// Highest successfully applied version in a Postgres database (0 when none).
pub async fn applied_postgres(pool: &PgPool) -> Result<i64, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(0);
    }
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?;
    Ok(applied.unwrap_or(0))
}

/// Highest successfully applied version in an SQLite database (0 when none).
pub async fn applied_sqlite(pool: &SqlitePool) -> Result<i64, StoreError> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
    .fetch_one(pool)
    .await?;
    if !exists {
        return Ok(0);
    }
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?;
    Ok(applied.unwrap_or(0))
}

/// What `switchyard doctor` learns from a database without changing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Where its schema stands; `None` for an SQLite file that does not
    /// exist yet (the hub creates it on start).
    pub schema: Option<SchemaStatus>,
    /// The database server's clock minus this machine's, in milliseconds
    /// (Postgres; `None` for SQLite, which runs on this machine's clock).
    pub clock_skew_ms: Option<i64>,
    /// The enabled webhook subscriptions (empty before the webhooks schema).
    pub webhooks: Vec<WebhookTarget>,
}

/// An enabled subscription's target, as `doctor` checks it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WebhookTarget {
    pub id: uuid::Uuid,
    pub url: String,
    /// Whether its signing secret is sealed (see `webhooks::sealing`).
    pub sealed: bool,
}

/// The schema version that created the `webhooks` table.
const WEBHOOKS_VERSION: i64 = 4;

/// Enabled subscriptions, read without changing anything.
const WEBHOOK_TARGETS: &str = "SELECT id, url, secret LIKE 'sealed:v1:%' AS sealed FROM webhooks WHERE enabled ORDER BY created_at";

/// Probes the database named by `database_url` (see [`Probe`]): no
/// migration runs and no file is created.
pub async fn probe(database_url: &str) -> Result<Probe, StoreError> {
    use std::str::FromStr;
    use std::time::Duration;

    const TIMEOUT: Duration = Duration::from_secs(5);
    if super::Backend::of_url(database_url) == Some(super::Backend::Postgres) {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(TIMEOUT)
            .connect(database_url)
            .await?;
        let before = chrono::Utc::now();
        let theirs: Result<i64, sqlx::Error> =
            sqlx::query_scalar("SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint")
                .fetch_one(&pool)
                .await;
        let after = chrono::Utc::now();
        let status = status_postgres(&pool).await;
        let webhooks = match &status {
            Ok(s) if s.applied >= WEBHOOKS_VERSION => {
                sqlx::query_as(WEBHOOK_TARGETS).fetch_all(&pool).await?
            }
            _ => Vec::new(),
        };
        pool.close().await;
        // Against the middle of the round trip.
        let ours = before.timestamp_millis() + (after - before).num_milliseconds() / 2;
        return Ok(Probe {
            schema: Some(status?),
            clock_skew_ms: Some(theirs? - ours),
            webhooks,
        });
    }
    let options = if database_url.starts_with("sqlite:") {
        sqlx::sqlite::SqliteConnectOptions::from_str(database_url)?
    } else {
        sqlx::sqlite::SqliteConnectOptions::new().filename(database_url)
    };
    if !options.get_filename().exists() {
        return Ok(Probe {
            schema: None,
            clock_skew_ms: None,
            webhooks: Vec::new(),
        });
    }
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(TIMEOUT)
        .connect_with(options.read_only(true))
        .await?;
    let status = status_sqlite(&pool).await;
    let webhooks = match &status {
        Ok(s) if s.applied >= WEBHOOKS_VERSION => {
            sqlx::query_as(WEBHOOK_TARGETS).fetch_all(&pool).await?
        }
        _ => Vec::new(),
    };
    pool.close().await;
    Ok(Probe {
        schema: Some(status?),
        clock_skew_ms: None,
        webhooks,
    })
}

/// Where a Postgres database stands relative to this build.
pub async fn status_postgres(pool: &PgPool) -> Result<SchemaStatus, StoreError> {
    Ok(SchemaStatus {
        applied: applied_postgres(pool).await?,
        known: known_version(&POSTGRES),
    })
}

/// Where an SQLite database stands relative to this build.
pub async fn status_sqlite(pool: &SqlitePool) -> Result<SchemaStatus, StoreError> {
    Ok(SchemaStatus {
        applied: applied_sqlite(pool).await?,
        known: known_version(&SQLITE),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both backends carry the same numbered migrations, and the version
    /// this build knows is the newest file's number.
    #[test]
    fn both_backends_know_the_newest_migration() {
        let newest = |dir: &str| {
            std::fs::read_dir(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../migrations")
                    .join(dir),
            )
            .expect("migrations folder")
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .split('_')
                    .next()?
                    .parse::<i64>()
                    .ok()
            })
            .max()
            .expect("at least one migration")
        };
        assert_eq!(known_version(&POSTGRES), newest("postgres"));
        assert_eq!(known_version(&SQLITE), newest("sqlite"));
        assert_eq!(known_version(&POSTGRES), known_version(&SQLITE));
    }
}
