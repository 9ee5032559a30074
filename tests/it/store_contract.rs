//! The store contract: one suite of scenarios that every `Store` backend must
//! pass, with exact expected values. `contract!` instantiates each scenario
//! once per backend (`store_contract::sqlite::<name>`,
//! `store_contract::postgres::<name>`), each on a fresh database.
//!
//! Scenarios are plain `async fn(TestDb)`; `TestDb` holds the open
//! [`DynStore`] plus the URL, so durability tests can close and reopen the
//! same database and schema tests can poke at it with raw SQL.

mod agents;
mod browse;
mod context;
mod dispatch;
mod dispatch_races;
mod failures;
mod group_commit;
mod items_events;
mod jobs;
mod lifecycle;
mod races;
mod schema;
mod tasks;

use serde_json::json;
use sqlx::{Connection, PgConnection, SqliteConnection};
use switchyard::domain::{CreateJobOutcome, Document, DocumentMeta, Job, NewJob};
use switchyard::store::{self, Backend, DynStore, StoreError};
use switchyard_tests::db;
use tempfile::TempDir;
use uuid::Uuid;

/// Instantiates scenarios (`module::name`) for both backends.
macro_rules! contract {
    ($($module:ident :: $name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$module::$name(super::TestDb::sqlite().await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$module::$name(super::TestDb::postgres().await).await;
                }
            )+
        }
    };
}

contract!(
    jobs::create_and_get_round_trip,
    jobs::idempotency_replays_or_refuses,
    jobs::concurrent_identical_creates_store_one_job,
    jobs::unknown_dependencies_store_nothing,
    jobs::unfinished_dependency_makes_job_wait,
    jobs::list_jobs_filters_and_pages,
    context::list_jobs_by_context,
    browse::counts_and_text_and_date_filters,
    browse::history_pages_newest_first_and_tasks_show_attempts,
    lifecycle::cancel_cancels_tasks_and_appends_events,
    lifecycle::transition_sets_times_and_names_conflicts,
    races::cancel_racing_completion_has_one_winner,
    races::cancel_racing_start_always_ends_cancelled,
    races::double_start_has_one_winner,
    items_events::items_count_filter_and_page,
    items_events::events_are_ordered_and_typed,
    lifecycle::everything_survives_close_and_reopen,
    lifecycle::newer_schema_is_refused,
    agents::register_keeps_the_id_by_name_and_replaces_capabilities,
    agents::concurrent_registrations_share_a_batch_and_keep_one_id_per_name,
    agents::snapshots_persist_without_events,
    dispatch::two_stage_job_runs_to_completion,
    dispatch::last_stage_items_are_integrated_at_once,
    dispatch::stale_attempts_are_conflicts_and_change_nothing,
    tasks::requeue_does_not_count_a_failure,
    tasks::duplicate_item_ids_are_stored_once,
    tasks::open_tasks_are_exactly_the_unfinished_ones,
    failures::retries_until_max_attempts_then_fails_the_job_and_its_dependents,
    failures::a_later_stage_failure_fails_the_item_and_the_job_completes,
    failures::waiting_jobs_are_released_or_failed_with_their_dependencies,
    dispatch_races::completion_racing_a_hub_failure_has_one_winner,
    dispatch_races::last_tasks_finishing_together_complete_the_job_once,
    dispatch_races::dependencies_finishing_together_release_once,
    group_commit::queued_transitions_apply_in_call_order,
    group_commit::a_database_error_fails_only_its_own_op,
    schema::version_1_data_is_upgraded,
    schema::agent_columns_hold_only_known_values,
);

/// A fresh database and the store opened on it.
pub struct TestDb {
    pub store: DynStore,
    pub url: String,
    pub backend: Backend,
    _dir: Option<TempDir>,
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let (dir, url) = db::fresh_sqlite();
        TestDb {
            store: open(&url).await,
            url,
            backend: Backend::Sqlite,
            _dir: Some(dir),
        }
    }

    async fn postgres() -> TestDb {
        let url = db::fresh_postgres_url().await;
        TestDb {
            store: open(&url).await,
            url,
            backend: Backend::Postgres,
            _dir: None,
        }
    }

    /// Closes the store and opens the same database again.
    pub async fn reopen(&mut self) {
        self.store.close().await;
        self.store = open(&self.url).await;
    }

    /// Runs one statement outside the store.
    pub async fn exec(&self, sql: &'static str) {
        match self.backend {
            Backend::Postgres => {
                let mut c = PgConnection::connect(&self.url).await.expect("connect");
                sqlx::query(sql).execute(&mut c).await.expect(sql);
                c.close().await.expect("close");
            }
            Backend::Sqlite => {
                let mut c = SqliteConnection::connect(&self.url).await.expect("connect");
                sqlx::query(sql).execute(&mut c).await.expect(sql);
                c.close().await.expect("close");
            }
        }
    }

    /// Runs one statement with one bound text parameter and one bound id
    /// parameter, outside the store (to set up states no store method makes yet).
    pub async fn exec_text_id(&self, sql: &'static str, text: &str, id: Uuid) {
        match self.backend {
            Backend::Postgres => {
                let mut c = PgConnection::connect(&self.url).await.expect("connect");
                sqlx::query(sql)
                    .bind(text)
                    .bind(id)
                    .execute(&mut c)
                    .await
                    .expect(sql);
                c.close().await.expect("close");
            }
            Backend::Sqlite => {
                let mut c = SqliteConnection::connect(&self.url).await.expect("connect");
                sqlx::query(sql)
                    .bind(text)
                    .bind(id)
                    .execute(&mut c)
                    .await
                    .expect(sql);
                c.close().await.expect("close");
            }
        }
    }

    /// Records a migration this build does not know, as a newer hub would.
    pub async fn record_future_migration(&self, version: i64) {
        const SQL: &str = "INSERT INTO _sqlx_migrations \
            (version, description, success, checksum, execution_time) \
            VALUES ($1, 'from a newer switchyard', TRUE, $2, 0)";
        match self.backend {
            Backend::Postgres => {
                let mut c = PgConnection::connect(&self.url).await.expect("connect");
                sqlx::query(SQL)
                    .bind(version)
                    .bind(vec![0_u8; 48])
                    .execute(&mut c)
                    .await
                    .expect("insert");
                c.close().await.expect("close");
            }
            Backend::Sqlite => {
                let mut c = SqliteConnection::connect(&self.url).await.expect("connect");
                sqlx::query(SQL)
                    .bind(version)
                    .bind(vec![0_u8; 48])
                    .execute(&mut c)
                    .await
                    .expect("insert");
                c.close().await.expect("close");
            }
        }
    }
}

async fn open(url: &str) -> DynStore {
    store::open(url, 4)
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"))
}

/// A valid job with the reference pipeline and no extras.
pub fn new_job(created_by: &str) -> NewJob {
    NewJob {
        id: Uuid::now_v7(),
        pipeline: vec![
            "requirements.extract".into(),
            "requirements.validate".into(),
        ],
        prompt: "Extract the requirements".into(),
        context: json!({"customer": "acme", "nested": {"n": 1, "list": [true, null]}}),
        priority: 5,
        labels: vec![],
        depends_on: vec![],
        idempotency_key: None,
        request_hash: "hash-1".into(),
        created_by: created_by.into(),
        document: None,
        max_attempts: 3,
    }
}

/// A document with bytes that are not valid UTF-8.
pub fn document() -> Document {
    let bytes: Vec<u8> = (0..=255_u8).chain([0, 0, 255]).collect();
    Document {
        meta: DocumentMeta {
            file_name: "spec.pdf".into(),
            content_type: "application/pdf".into(),
            size: bytes.len() as i64,
            sha256: "ab".repeat(32),
        },
        bytes,
    }
}

/// Creates a job that must be new.
pub async fn create(store: &DynStore, job: NewJob) -> Job {
    match store.create_job(job).await {
        Ok(CreateJobOutcome::Created(job)) => job,
        other => panic!("expected Created, got {other:?}"),
    }
}

/// The message of a conflict; panics on anything else.
pub fn conflict<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Conflict { message }) => message,
        other => panic!("expected Conflict, got {other:?}"),
    }
}

/// The event types of a job, in order.
pub async fn event_types(store: &DynStore, job_id: Uuid) -> Vec<String> {
    let events = store
        .list_events(Some(job_id), 0, 1000)
        .await
        .expect("list events");
    events.into_iter().map(|e| e.kind).collect()
}

/// SQLite accepts `sqlite://path`, `sqlite:path`, a plain path (creating
/// missing folders) and `sqlite::memory:`; files are put in WAL mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_accepts_urls_paths_and_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (i, prefix) in ["sqlite://", "sqlite:", ""].into_iter().enumerate() {
        let path = dir.path().join(format!("nested/{i}/switchyard.db"));
        let url = format!("{prefix}{}", path.display());
        let s = open(&url).await;
        let job = create(&s, new_job("alice")).await;
        s.close().await;
        let s = open(&url).await;
        assert_eq!(s.get_job(job.id).await.expect("get"), Some(job), "{url}");
        s.close().await;
        let mut c = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("connect");
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut c)
            .await
            .expect("pragma");
        assert_eq!(mode, "wal", "{url}");
    }
    let s = open("sqlite::memory:").await;
    let job = create(&s, new_job("alice")).await;
    assert_eq!(s.get_job(job.id).await.expect("get"), Some(job.clone()));
    assert_eq!(s.list_tasks(job.id).await.expect("tasks").len(), 1);
}
