//! Schema version 2: a database created by version 1 is upgraded in place
//! with its data, and the agent columns only hold values the hub can read.

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, PgConnection, SqliteConnection};
use switchyard::domain::{AgentSessionState, TaskStatus};
use switchyard::store::Backend;
use uuid::Uuid;

use super::agents::registration;
use super::dispatch::first_task;
use super::{TestDb, create, new_job};

const T0: &str = "2025-01-01T00:00:00.000000Z";

/// Runs `sql` with `ids` bound in order, outside the store.
async fn try_exec(t: &TestDb, sql: &str, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match t.backend {
        Backend::Postgres => {
            let mut c = PgConnection::connect(&t.url).await?;
            let mut q = sqlx::query(sql);
            for id in ids {
                q = q.bind(*id);
            }
            q.execute(&mut c).await?;
            c.close().await
        }
        Backend::Sqlite => {
            let mut c = SqliteConnection::connect(&t.url).await?;
            let mut q = sqlx::query(sql);
            for id in ids {
                q = q.bind(*id);
            }
            q.execute(&mut c).await?;
            c.close().await
        }
    }
}

/// The migrations of this build up to `version`, from the repository.
async fn migrator_up_to(backend: Backend, version: i64) -> (tempfile::TempDir, Migrator) {
    let src = format!(
        "{}/../migrations/{}",
        env!("CARGO_MANIFEST_DIR"),
        backend.as_str()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(&src).expect("migrations") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let number: i64 = name[..4].parse().expect("numbered migration");
        if number <= version {
            std::fs::copy(&path, dir.path().join(&name)).expect("copy");
        }
    }
    let migrator = Migrator::new(dir.path()).await.expect("migrator");
    (dir, migrator)
}

pub async fn version_1_data_is_upgraded(mut t: TestDb) {
    // Start again from an empty database at version 1.
    t.store.close().await;
    let fresh = match t.backend {
        Backend::Postgres => switchyard_tests::db::fresh_postgres_url().await,
        Backend::Sqlite => format!("{}.v1", t.url),
    };
    t.url = fresh;
    let (_dir, v1) = migrator_up_to(t.backend, 1).await;
    match t.backend {
        Backend::Postgres => {
            let mut c = PgConnection::connect(&t.url).await.expect("connect");
            v1.run(&mut c).await.expect("migrate to 1");
        }
        Backend::Sqlite => {
            let options = SqliteConnectOptions::from_str(&t.url)
                .expect("url")
                .create_if_missing(true);
            let mut c = SqliteConnection::connect_with(&options)
                .await
                .expect("connect");
            v1.run(&mut c).await.expect("migrate to 1");
        }
    }
    let (job, task, agent) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let inserts = [
        format!(
            "INSERT INTO jobs (id, status, pipeline, prompt, context, priority, request_hash, \
             created_by, max_attempts, created_at, updated_at) \
             VALUES ($1, 'running', '[\"a\", \"b\"]', 'p', '{{}}', 5, 'h', 'alice', 3, '{T0}', '{T0}')"
        ),
        format!(
            "INSERT INTO tasks (id, job_id, stage, capability, status, priority, attempt, \
             max_attempts, next_run_at, created_at, updated_at) \
             VALUES ($1, $2, 0, 'a', 'assigned', 5, 1, 3, '{T0}', '{T0}', '{T0}')"
        ),
        // Relies on version 1's default for labels, an array.
        format!(
            "INSERT INTO agents (id, name, version, session_state, health, created_at, updated_at) \
             VALUES ($1, 'old', '1', 'connected', 'active', '{T0}', '{T0}')"
        ),
    ];
    try_exec(&t, &inserts[0], &[job]).await.expect("job");
    try_exec(&t, &inserts[1], &[task, job]).await.expect("task");
    try_exec(&t, &inserts[2], &[agent]).await.expect("agent");

    // Opening the store applies every later migration.
    t.reopen().await;
    let s = &t.store;
    let newest = switchyard::store::migrate::known_version(&switchyard::store::migrate::SQLITE);
    assert_eq!(s.schema_status().await.expect("schema").applied, newest);
    let open = s.open_tasks().await.expect("open");
    assert_eq!(
        open.iter()
            .map(|t| (t.id, t.status, t.attempt, t.failures))
            .collect::<Vec<_>>(),
        [(task, TaskStatus::Assigned, 1, 0)]
    );
    let old = s.get_agent(agent).await.expect("get").expect("found");
    assert!(old.labels.is_empty(), "the array default became an object");
    assert_eq!(old.session_state, AgentSessionState::Connected);
}

pub async fn agent_columns_hold_only_known_values(t: TestDb) {
    let a = t
        .store
        .register_agent(registration("a", vec![]))
        .await
        .expect("register");
    let job = create(&t.store, new_job("alice")).await;
    let task = first_task(&t.store, job.id).await;
    let refused = [
        (
            "UPDATE agents SET session_state = 'asleep' WHERE id = $1",
            a.id,
        ),
        ("UPDATE agents SET health = 'offline' WHERE id = $1", a.id),
        ("UPDATE agents SET labels = '[]' WHERE id = $1", a.id),
        ("UPDATE tasks SET failures = -1 WHERE id = $1", task.id),
    ];
    for (sql, id) in refused {
        assert!(
            try_exec(&t, sql, &[id]).await.is_err(),
            "{sql} was accepted"
        );
    }
    try_exec(
        &t,
        "UPDATE agents SET session_state = 'draining', health = 'degraded' WHERE id = $1",
        &[a.id],
    )
    .await
    .expect("known values are accepted");
    let now = t.store.get_agent(a.id).await.expect("get").expect("found");
    assert_eq!(now.session_state, AgentSessionState::Draining);
}
