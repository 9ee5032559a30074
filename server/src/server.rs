//! Starting and stopping the hub.
//!
//! [`Server::start`] opens the store (running migrations), loads the signing keys,
//! binds the listener and serves until the [`CancellationToken`] fires; then it
//! stops accepting, gives in-flight requests `shutdown_grace` to finish and
//! closes the store. The integration tests use the same entry point on port 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::secret::{SecretSource, load_or_generate};
use crate::auth::{JwtKeys, Role};
use crate::config::settings::redact_url;
use crate::config::{Live, Loaded, RawConfig, Settings};
use crate::events::EventBus;
use crate::hub::HubHandle;
use crate::reload::Reloader;
use crate::state::AppState;
use crate::store::{self, Backend, StoreError};

/// Why the hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}: {error}")]
    DataDir { path: String, error: std::io::Error },
    #[error("cannot open the store at {url}: {}", .error.explain_open(.url))]
    Store { url: String, error: StoreError },
    #[error(
        "another switchyard hub is using the SQLite database {path}: SQLite runs one hub at a time; stop the other hub, or use Postgres (database_url = \"postgres://…\") to run several nodes"
    )]
    SqliteInUse { path: String },
    #[error("cannot lock the SQLite database {path}: {error}")]
    SqliteLock { path: String, error: std::io::Error },
    #[error("cannot load the JWT secret: {0}")]
    Secret(std::io::Error),
    #[error("cannot build the webhook HTTP client: {0}")]
    WebhookClient(reqwest::Error),
    #[error("cannot load the JWT public key {path}: {message}")]
    PublicKey { path: String, message: String },
    #[error(
        "cannot listen on {addr}: {error}; is another process using it? choose another with --listen"
    )]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// A running hub.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    /// Set when the secret was generated on this start: a first admin token.
    pub first_admin_token: Option<String>,
    pub shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    /// Opens everything and starts serving in a background task. A hub
    /// started from settings alone has nothing to reload; see
    /// [`Server::start_loaded`].
    pub async fn start(settings: Settings) -> Result<Server, StartError> {
        Self::start_with(settings, Reloader::new(None, RawConfig::default())).await
    }

    /// Starts a hub that reloads from where `loaded` was read.
    pub async fn start_loaded(loaded: Loaded) -> Result<Server, StartError> {
        let reloader = Reloader::new(Some(loaded.source), loaded.raw);
        Self::start_with(loaded.settings, reloader).await
    }

    async fn start_with(settings: Settings, reloader: Reloader) -> Result<Server, StartError> {
        // Install the metrics recorder before anything records: a metric
        // recorded before it exists would be lost.
        crate::http::metrics::handle();
        std::fs::create_dir_all(&settings.data_dir).map_err(|error| StartError::DataDir {
            path: settings.data_dir.display().to_string(),
            error,
        })?;
        // Held until the hub has stopped: a second hub on the same SQLite
        // file is refused rather than sharing it.
        let sqlite_lock = match settings.store {
            Backend::Sqlite => sqlite_lock(&settings.database_url)?,
            Backend::Postgres => None,
        };
        let store = store::open(&settings.database_url, settings.pool_size)
            .await
            .map_err(|error| StartError::Store {
                url: redact_url(&settings.database_url),
                error,
            })?;
        // Where the event pump starts, read before anything below can append
        // an event (the dispatcher recovers work at once): every event
        // committed after this is published on the bus. Read later, by the
        // pump itself, the first events of a busy start were never published,
        // and a stream that was waiting for them waited for ever.
        let published = store
            .last_event_seq()
            .await
            .map_err(|error| StartError::Store {
                url: redact_url(&settings.database_url),
                error,
            })?;

        let (secret, source) = load_or_generate(settings.jwt_secret.as_deref(), &settings.data_dir)
            .map_err(StartError::Secret)?;
        let public_key = match &settings.jwt_public_key {
            None => None,
            Some(pk) => {
                let pem = std::fs::read(&pk.path).map_err(|e| StartError::PublicKey {
                    path: pk.path.display().to_string(),
                    message: e.to_string(),
                })?;
                let key = JwtKeys::read_public_key(&pem, pk.algorithm).map_err(|message| {
                    StartError::PublicKey {
                        path: pk.path.display().to_string(),
                        message,
                    }
                })?;
                Some((pk.algorithm, key))
            }
        };
        let keys = JwtKeys::new(secret.as_bytes(), public_key);
        let first_admin_token = match source {
            SecretSource::Generated(_) => keys
                .issue("admin", Role::Admin, Duration::from_secs(30 * 24 * 3600))
                .ok(),
            _ => None,
        };

        let listener = listen(settings.listen).map_err(|error| StartError::Bind {
            addr: settings.listen,
            error,
        })?;
        let addr = listener.local_addr().map_err(|error| StartError::Bind {
            addr: settings.listen,
            error,
        })?;

        let shutdown = CancellationToken::new();
        // A node's name is where it listens; on every interface, the
        // machine's host name stands for the address.
        let name = if addr.ip().is_unspecified() {
            let host = rustix::system::uname();
            format!("{}:{}", host.nodename().to_string_lossy(), addr.port())
        } else {
            addr.to_string()
        };
        let url = settings
            .advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{name}"));
        let node = crate::cluster::Node::new(url, name, store.backend() == Backend::Sqlite);
        // Registered (and the monitor lease tried) before anything that
        // runs only on the leader starts.
        crate::cluster::beat(&store, &node, settings.node_timeout).await;
        // Every background task of the hub; shutdown waits for them all
        // before it closes the store.
        let tasks = TaskTracker::new();
        let bus = EventBus::new(settings.events.bus_capacity);
        let hub_settings = settings.hub.clone();
        let live = Live::new(settings);
        crate::webhooks::spawn(store.clone(), live.clone(), &tasks, shutdown.clone())
            .map_err(StartError::WebhookClient)?;
        let (hub, dispatcher) =
            HubHandle::start(store.clone(), hub_settings, shutdown.clone(), node.clone());
        bus.start_at(published);
        tasks.spawn(crate::events::pump::run(
            store.clone(),
            bus.clone(),
            published,
            shutdown.clone(),
        ));
        tasks.spawn(crate::events::retention::run(
            store.clone(),
            live.clone(),
            node.clone(),
            shutdown.clone(),
        ));
        tasks.spawn({
            let store = store.clone();
            let shutdown = shutdown.clone();
            async move { store.follow_peers(shutdown).await }
        });
        tasks.spawn(crate::cluster::run(
            store.clone(),
            node.clone(),
            live.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(upkeep(shutdown.clone()));
        let state = AppState {
            store,
            settings: live,
            reloader: Arc::new(reloader),
            keys: Arc::new(keys),
            hub,
            bus,
            node,
            shutdown: shutdown.clone(),
        };
        tasks.spawn(crate::report::monitor::run(state.clone(), shutdown.clone()));
        tasks.spawn(crate::cluster::discover::run(
            state.store.clone(),
            state.hub.clone(),
            state.node.clone(),
            shutdown.clone(),
        ));
        tasks.close();
        let task = tokio::spawn(serve(
            listener,
            state.clone(),
            shutdown.clone(),
            dispatcher,
            tasks,
            sqlite_lock,
        ));
        tracing::info!(%addr, store = state.store.backend().as_str(), "switchyard is listening");
        Ok(Server {
            addr,
            state,
            first_admin_token,
            shutdown,
            task,
        })
    }

    /// Waits until the hub has stopped (after [`Server::shutdown`] fires).
    pub async fn wait(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the server task ended abnormally");
        }
    }

    /// Stops the hub and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.wait().await;
    }
}

async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    dispatcher: JoinHandle<()>,
    tasks: TaskTracker,
    sqlite_lock: Option<std::fs::File>,
) {
    let grace = state.settings.get().shutdown_grace;
    let app = crate::http::router(state.clone());

    let graceful = shutdown.clone();
    // Small frames (agent messages, events) must not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { graceful.cancelled().await });
    let mut server = std::pin::pin!(server.into_future());

    tokio::select! {
        result = &mut server => {
            if let Err(e) = result { tracing::error!(error = %e, "server error"); }
        }
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace = ?grace, "in-flight requests did not finish within the shutdown grace; closing them");
        }
    }
    // The dispatcher tells agents the hub is going away and saves their state.
    if tokio::time::timeout(Duration::from_secs(5), dispatcher)
        .await
        .is_err()
    {
        tracing::warn!("the dispatcher did not stop within 5 s");
    }
    // The pump, retention, webhooks and the monitor have seen `shutdown`;
    // the store closes only once none of them can still use it.
    if tokio::time::timeout(Duration::from_secs(5), tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = tasks.len(),
            "background tasks did not stop within 5 s"
        );
    }
    state.store.close().await;
    drop(sqlite_lock);
    tracing::info!("switchyard stopped");
}

/// An exclusive lock on `<database file>.lock`, or why not; `None` for an
/// in-memory database.
fn sqlite_lock(database_url: &str) -> Result<Option<std::fs::File>, StartError> {
    use std::str::FromStr;
    let path = match sqlx::sqlite::SqliteConnectOptions::from_str(database_url) {
        Ok(options) => options.get_filename().to_path_buf(),
        Err(_) => std::path::PathBuf::from(database_url),
    };
    let shown = path.display().to_string();
    if shown.is_empty() || shown == ":memory:" {
        return Ok(None);
    }
    let mut lock_path = path.into_os_string();
    lock_path.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|error| StartError::SqliteLock {
            path: shown.clone(),
            error,
        })?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(StartError::SqliteInUse { path: shown }),
        Err(e) => Err(StartError::SqliteLock {
            path: shown,
            error: e.into(),
        }),
    }
}

/// Connections waiting to be accepted (the kernel caps it at
/// `net.core.somaxconn`).
const BACKLOG: u32 = 4096;

/// The listening socket, with a backlog for a reconnect storm: with the
/// usual 1024 (or 128), a node's death sends thousands of agents at once,
/// the SYNs beyond the backlog are dropped, and those agents only retry
/// after TCP's one-second retransmit.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Histograms need periodic upkeep to stay bounded.
async fn upkeep(shutdown: CancellationToken) {
    let handle = crate::http::metrics::handle();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => handle.run_upkeep(),
            () = shutdown.cancelled() => return,
        }
    }
}
