//! Test support for the integration suite in `it/`: a real hub on port 0
//! against its own fresh database ([`app::spawn_app`]), and database helpers
//! ([`db`]).

pub mod app;
pub mod cli;
pub mod db;
pub mod process;
pub mod raw_agent;
pub mod sse;
pub mod temp_pg;

pub use app::{Backend, TestApp, spawn_app, spawn_app_with};

/// Generates one `#[tokio::test]` per backend from an `async fn(TestApp)`.
///
/// `backend_tests!(creates_a_job);` expands to `sqlite::creates_a_job` and
/// `postgres::creates_a_job`, each on a fresh database. With
/// `backend_tests!(app = super::app; creates_a_job)` each test gets its hub
/// from `app(Backend)` (a path seen from inside the generated modules)
/// instead of [`spawn_app`], for suites that need other settings.
#[macro_export]
macro_rules! backend_tests {
    (app = $app:path; $($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $app($crate::Backend::Sqlite).await;
                    super::$name(app).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $app($crate::Backend::Postgres).await;
                    super::$name(app).await;
                }
            )+
        }
    };
    ($($name:ident),+ $(,)?) => {
        $crate::backend_tests!(app = $crate::spawn_app; $($name),+);
    };
}
