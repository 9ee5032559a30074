//! kill -9 of a real `switchyard serve` in the middle of a drain, on each
//! store, then a new process on the same database: every accepted job ends
//! once, no item is stored twice, no task succeeds twice.

use std::time::Duration;

use serde_json::json;
use switchyard::auth::Role;
use switchyard_agent::{Agent, CapabilitySpec, TaskContext, TaskError};
use switchyard_tests::db::{fresh_postgres_url, fresh_sqlite};
use switchyard_tests::process::ServeProcess;

const JOBS: usize = 1000;
const ITEMS_PER_JOB: i64 = 2;

/// Short timings, so work held by the killed process moves on quickly.
const FAST: &[(&str, &str)] = &[
    ("SWITCHYARD_HEARTBEAT_INTERVAL", "200ms"),
    ("SWITCHYARD_ACCEPT_TIMEOUT", "1s"),
    ("SWITCHYARD_LEASE", "3s"),
    ("SWITCHYARD_RECONNECT_GRACE", "1s"),
    ("SWITCHYARD_RETRY_INITIAL", "10ms"),
    ("SWITCHYARD_RETRY_MAX", "100ms"),
    ("SWITCHYARD_MAX_ATTEMPTS", "20"),
    ("SWITCHYARD_MONITOR_INTERVAL", "200ms"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_kill_9_mid_drain() {
    let (_dir, url) = fresh_sqlite();
    kill_9_mid_drain(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_kill_9_mid_drain() {
    kill_9_mid_drain(fresh_postgres_url().await).await;
}

async fn kill_9_mid_drain(database_url: String) {
    let mut hub = ServeProcess::start(database_url.clone(), FAST).await;
    let client = reqwest::Client::new();
    let operator = hub.token(Role::Operator, "crash-test");

    let jobs: Vec<_> = (0..JOBS)
        .map(|i| json!({"prompt": format!("job {i}"), "pipeline": ["test.crash"]}))
        .collect();
    let res = client
        .post(format!("{}/v1/jobs/batch", hub.base))
        .bearer_auth(&operator)
        .json(&json!({"jobs": jobs}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    let agent = Agent::builder(
        hub.agent_url(),
        hub.token(Role::Agent, "crash-worker"),
        "crash-worker",
    )
    .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
    .ack_timeout(Duration::from_secs(3))
    .capability(
        CapabilitySpec::new("test.crash").max_concurrency(8),
        |ctx: TaskContext, input: serde_json::Value| async move {
            for k in 0..ITEMS_PER_JOB {
                ctx.emit_item(json!({"text": format!("{} item {k}", input["prompt"])}))
                    .await;
            }
            Ok::<_, TaskError>(json!({"done": true}))
        },
    )
    .build()
    .unwrap()
    .spawn();

    // Kill once a quarter of the jobs are done: the drain is in full flow.
    let store = Db::connect(&database_url).await;
    wait_until(Duration::from_secs(60), || async {
        store.completed_jobs().await >= (JOBS / 4) as i64
    })
    .await;
    hub.kill9().await;
    let at_kill = store.completed_jobs().await;
    assert!(at_kill < JOBS as i64, "the drain ended before the kill");

    hub.restart().await;
    wait_until(Duration::from_secs(90), || async {
        store.completed_jobs().await == JOBS as i64
    })
    .await;
    agent.kill();

    assert_eq!(store.count("SELECT count(*) FROM jobs").await, JOBS as i64);
    assert_eq!(
        store.count("SELECT count(*) FROM items").await,
        JOBS as i64 * ITEMS_PER_JOB,
        "an item was stored twice (or lost)"
    );
    assert_eq!(
        store
            .count(&format!(
                "SELECT count(*) FROM (SELECT job_id FROM items GROUP BY job_id HAVING count(*) <> {ITEMS_PER_JOB}) t"
            ))
            .await,
        0,
        "a job has the wrong number of items"
    );
    let succeeded = store.count_task_succeeded().await;
    assert_eq!(
        succeeded,
        (JOBS as i64, JOBS as i64),
        "(events, distinct tasks)"
    );
}

/// Polls `check` (a read of the store's state) until it holds.
async fn wait_until<F, Fut>(timeout: Duration, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reached within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads the hub's database directly, as an auditor would.
enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Db {
    async fn connect(url: &str) -> Db {
        if url.starts_with("sqlite:") {
            Db::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap())
        } else {
            Db::Postgres(sqlx::PgPool::connect(url).await.unwrap())
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        let result = match self {
            Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        };
        // SQLite may be mid-checkpoint when the hub is killed: a busy
        // answer is a "not yet", the next poll reads again.
        result.unwrap_or(-1)
    }

    async fn completed_jobs(&self) -> i64 {
        self.count("SELECT count(*) FROM jobs WHERE status = 'completed'")
            .await
    }

    /// `task.succeeded` events, and the distinct tasks they name.
    async fn count_task_succeeded(&self) -> (i64, i64) {
        let task_id = match self {
            Db::Sqlite(_) => "json_extract(payload, '$.task_id')",
            Db::Postgres(_) => "payload->>'task_id'",
        };
        let events = self
            .count("SELECT count(*) FROM events WHERE type = 'task.succeeded'")
            .await;
        let tasks = self
            .count(&format!(
                "SELECT count(DISTINCT {task_id}) FROM events WHERE type = 'task.succeeded'"
            ))
            .await;
        (events, tasks)
    }
}
