//! `spawn_app()`: boots the real hub (same entry point as `switchyard serve`)
//! on 127.0.0.1:0 against a fresh database, and a client to talk to it.

use std::time::Duration;

use reqwest::{Client, RequestBuilder, Response};
use serde_json::Value;
use switchyard::Server;
use switchyard::auth::{JwtKeys, Role};
use switchyard::config::{RawConfig, Source};
use tempfile::TempDir;

/// The HS256 secret every test hub uses, so tests can mint their own tokens.
pub const TEST_SECRET: &str = "switchyard-test-secret-0123456789abcdef";

pub use switchyard::store::Backend;

/// A running hub and everything needed to talk to it, restart it, or inspect its store.
pub struct TestApp {
    pub hub: Option<Server>,
    pub base: String,
    pub client: Client,
    pub backend: Backend,
    pub database_url: String,
    pub data_dir: TempDir,
    /// The raw configuration it was started with (reused by `restart`).
    pub raw: RawConfig,
    pub keys: JwtKeys,
    /// The temp dir holding the SQLite file, kept alive with the app.
    _sqlite_dir: Option<TempDir>,
}

/// A hub with the test defaults.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// A hub with the test defaults changed by `configure`.
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut RawConfig)) -> TestApp {
    let (database_url, sqlite_dir) = match backend {
        Backend::Sqlite => {
            let (dir, url) = crate::db::fresh_sqlite();
            (url, Some(dir))
        }
        Backend::Postgres => (crate::db::fresh_postgres_url().await, None),
    };
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut raw = RawConfig {
        listen: "127.0.0.1:0".into(),
        database_url: database_url.clone(),
        data_dir: data_dir.path().to_path_buf(),
        pool_size: 5,
        jwt_secret: TEST_SECRET.into(),
        log_filter: "warn".into(),
        rate_limit_per_second: 0,
        shutdown_grace: "2s".into(),
        ..RawConfig::default()
    };
    configure(&mut raw);
    let hub = start(raw.clone()).await;
    TestApp {
        base: format!("http://{}", hub.addr),
        hub: Some(hub),
        client: Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client"),
        backend,
        database_url,
        data_dir,
        raw,
        keys: JwtKeys::new(TEST_SECRET.as_bytes(), None),
        _sqlite_dir: sqlite_dir,
    }
}

/// The file a test hub re-reads on reload, in its data directory: the
/// test's configuration is the base, this file goes over it.
pub const RELOAD_FILE: &str = "switchyard.toml";

async fn start(raw: RawConfig) -> Server {
    init_logging();
    let file = raw.data_dir.join(RELOAD_FILE);
    let loaded = Source::fixed(raw, Some(file))
        .load()
        .expect("test configuration is valid");
    Server::start_loaded(loaded).await.expect("the hub starts")
}

fn init_logging() {
    let filter = std::env::var("TEST_LOG").unwrap_or_else(|_| "off".into());
    // The subscriber is global: a test process installs it once and keeps it.
    if let Ok(telemetry) =
        switchyard::telemetry::init(switchyard::config::LogFormat::Pretty, &filter, None)
    {
        std::mem::forget(telemetry);
    }
}

impl TestApp {
    /// A token for `role` with subject `sub`, valid one hour.
    pub fn token_for(&self, role: Role, sub: &str) -> String {
        self.keys
            .issue(sub, role, Duration::from_secs(3600))
            .expect("sign token")
    }

    /// A token for `role` whose subject is the role's name.
    pub fn token(&self, role: Role) -> String {
        self.token_for(role, role.as_str())
    }

    /// Writes the file the hub re-reads on reload (see [`RELOAD_FILE`]).
    pub fn write_config(&self, toml: &str) {
        std::fs::write(self.data_dir.path().join(RELOAD_FILE), toml)
            .expect("write the config file");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request as `admin`.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.as_role(Role::Admin, method, path)
    }

    pub fn as_role(&self, role: Role, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(self.token(role))
    }

    /// Creates a job as operator from a JSON body and returns the response body; panics unless 201.
    pub async fn create_job(&self, body: Value) -> Value {
        let res = self
            .as_role(Role::Operator, reqwest::Method::POST, "/v1/jobs")
            .json(&body)
            .send()
            .await
            .expect("request");
        let (status, body) = json(res).await;
        assert_eq!(status, 201, "create job: {body}");
        body
    }

    /// Stops the hub (graceful shutdown) and starts a new one on the same database and data dir.
    pub async fn restart(&mut self) {
        if let Some(hub) = self.hub.take() {
            hub.stop().await;
        }
        let hub = start(self.raw.clone()).await;
        self.base = format!("http://{}", hub.addr);
        self.hub = Some(hub);
    }

    /// Polls a job until it has `status` (or panics after `timeout`), returning it.
    pub async fn wait_for_job(&self, job_id: &str, status: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let res = self
                .as_role(
                    Role::Viewer,
                    reqwest::Method::GET,
                    &format!("/v1/jobs/{job_id}"),
                )
                .send()
                .await
                .expect("request");
            let (_, job) = json(res).await;
            if job["status"] == status {
                return job;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("job {job_id} did not reach `{status}` within {timeout:?}; it is {job}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until `check` holds for the agent named `name` in `GET /v1/agents`.
    pub async fn wait_for_agent(
        &self,
        name: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let res = self
                .as_role(Role::Viewer, reqwest::Method::GET, "/v1/agents")
                .send()
                .await
                .expect("request");
            let (_, list) = json(res).await;
            if let Some(agent) = list["agents"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["name"] == name))
                && check(agent)
            {
                return agent.clone();
            }
            if tokio::time::Instant::now() > deadline {
                panic!("agent {name} did not reach the expected state within {timeout:?}: {list}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The WebSocket URL agents connect to.
    pub fn agent_url(&self) -> String {
        self.base.replace("http://", "ws://") + "/v1/agents/connect"
    }

    /// The running hub's store.
    pub fn store(&self) -> switchyard::store::DynStore {
        self.hub.as_ref().expect("hub running").state.store.clone()
    }
}

/// Status and JSON body of a response (Value::Null when the body is not JSON).
pub async fn json(res: Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}
