//! The agent: [`Agent::builder`] declares who it is and what it can do,
//! [`Agent::spawn`] runs it, [`AgentHandle`] controls it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::connection::normalize_url;
use crate::context::TaskContext;
use crate::error::{AgentError, TaskError};
use crate::handle::{AgentHandle, Shared, Status};
use crate::protocol::{AgentHealth, Capability, Pricing};
use crate::runner;

pub(crate) type HandlerFuture =
    Pin<Box<dyn Future<Output = Result<serde_json::Value, TaskError>> + Send + 'static>>;
pub(crate) type Handler =
    Arc<dyn Fn(TaskContext, serde_json::Value) -> HandlerFuture + Send + Sync>;

/// A capability to declare in `hello`: name, version, JSON Schemas of input
/// and output, pricing, and how many tasks of it the agent runs at once.
#[derive(Debug, Clone, PartialEq)]
pub struct CapabilitySpec(Capability);

impl CapabilitySpec {
    /// A capability named `name` (e.g. `requirements.extract`), one task at a
    /// time, accepting any input (`{}` schemas), free.
    pub fn new(name: impl Into<String>) -> Self {
        Self(Capability {
            name: name.into(),
            version: String::new(),
            input_schema: serde_json::json!({}),
            output_schema: serde_json::json!({}),
            pricing: Pricing::default(),
            max_concurrency: 1,
        })
    }

    /// The capability's own version string.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.0.version = version.into();
        self
    }

    /// How many tasks of this capability the agent runs at once (at least 1).
    pub fn max_concurrency(mut self, n: u32) -> Self {
        self.0.max_concurrency = n;
        self
    }

    /// The JSON Schema a task's input must match (checked by the hub).
    pub fn input_schema(mut self, schema: serde_json::Value) -> Self {
        self.0.input_schema = schema;
        self
    }

    /// The JSON Schema the handler's output must match (checked by the hub).
    pub fn output_schema(mut self, schema: serde_json::Value) -> Self {
        self.0.output_schema = schema;
        self
    }

    /// What a task costs, for the hub's cost reports.
    pub fn pricing(mut self, pricing: Pricing) -> Self {
        self.0.pricing = pricing;
        self
    }

    /// The capability's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The capability as sent in `hello`.
    pub fn as_capability(&self) -> &Capability {
        &self.0
    }
}

/// Everything an agent is configured with; shared by its runs.
pub(crate) struct Config {
    pub(crate) url: String,
    /// Other nodes of the hub's cluster to try, after `url`.
    pub(crate) fallback_urls: Vec<String>,
    pub(crate) token: String,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) capabilities: Vec<Capability>,
    pub(crate) handlers: HashMap<String, (Handler, usize)>,
    pub(crate) heartbeat_override: Option<Duration>,
    pub(crate) backoff: (Duration, Duration),
    pub(crate) ack_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) auto_extend_leases: bool,
}

/// Builds an [`Agent`]; start with [`Agent::builder`].
pub struct AgentBuilder {
    config: Config,
    problems: Vec<AgentError>,
}

impl fmt::Debug for AgentBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentBuilder")
            .field("url", &self.config.url)
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

impl AgentBuilder {
    /// The agent's own version string, sent in `hello` (default: the SDK's
    /// version).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.config.version = version.into();
        self
    }

    /// A label sent in `hello` (e.g. `zone=eu`); a repeated key replaces the
    /// earlier value.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.labels.insert(key.into(), value.into());
        self
    }

    /// Declares a capability and the handler that runs its tasks.
    ///
    /// The task input is deserialized into `I`; when that fails the attempt is
    /// reported with `fail` (retryable = false) naming the serde error. The
    /// handler's `Ok(output)` is serialized into `complete.output`; its
    /// `Err(TaskError)` becomes `fail`. Each call runs in its own tokio task:
    /// a panic is reported as `fail` (retryable = true, "handler panicked:
    /// ...") and the agent carries on.
    pub fn capability<I, O, F, Fut>(mut self, spec: CapabilitySpec, handler: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(TaskContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, TaskError>> + Send + 'static,
    {
        let cap = spec.0;
        if cap.name.trim().is_empty() {
            self.problems.push(AgentError::InvalidConfig(
                "a capability name is empty".into(),
            ));
        }
        if cap.max_concurrency == 0 {
            self.problems.push(AgentError::InvalidConfig(format!(
                "capability `{}`: max_concurrency must be at least 1",
                cap.name
            )));
        }
        if self.config.handlers.contains_key(&cap.name) {
            self.problems
                .push(AgentError::DuplicateCapability(cap.name.clone()));
        }
        let handler = Arc::new(handler);
        let erased: Handler = Arc::new(move |ctx: TaskContext, input: serde_json::Value| {
            let handler = Arc::clone(&handler);
            Box::pin(async move {
                let input: I = serde_json::from_value(input)
                    .map_err(|e| TaskError::fatal(format!("invalid task input: {e}")))?;
                let output = handler(ctx, input).await?;
                serde_json::to_value(output)
                    .map_err(|e| TaskError::fatal(format!("cannot serialize the task output: {e}")))
            }) as HandlerFuture
        });
        let limit = usize::try_from(cap.max_concurrency).unwrap_or(usize::MAX);
        self.config
            .handlers
            .insert(cap.name.clone(), (erased, limit));
        self.config.capabilities.push(cap);
        self
    }

    /// Sends heartbeats at this interval instead of the hub's
    /// `welcome.heartbeat_interval_ms` (`None`, the default, uses the hub's).
    pub fn heartbeat_interval_override(mut self, interval: Option<Duration>) -> Self {
        self.config.heartbeat_override = interval;
        self
    }

    /// Another node of the hub's cluster (repeatable): when the current one
    /// cannot be reached or the connection breaks, the agent tries the next
    /// URL of its list. The hub also names its cluster's live nodes in
    /// `welcome` and `shutdown`; the agent adds those by itself, so one URL
    /// is enough once it has connected.
    pub fn fallback_url(mut self, url: impl Into<String>) -> Self {
        self.config.fallback_urls.push(url.into());
        self
    }

    /// Reconnect delays: exponential from `min` to `max`, with jitter
    /// (default 100 ms to 5 s). Reset after every successful `welcome`.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config.backoff = (min, max);
        self
    }

    /// How long to wait for the hub's `ack` of a `complete`/`fail` before
    /// the connection is considered broken and re-established (the result is
    /// then re-sent if the hub still lists the task in `welcome.resumed`).
    /// Default 30 s.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.config.ack_timeout = timeout;
        self
    }

    /// How long the WebSocket upgrade, and then the `welcome`, may each take.
    /// Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// When on, the agent sends an empty `progress` for every running task
    /// about three times per lease, so a task's lease never runs out while
    /// its handler runs and the agent is connected. Off by default: then a
    /// handler that runs longer than the lease must call
    /// [`TaskContext::progress`], and a hung handler loses its task when its
    /// lease runs out.
    pub fn auto_extend_leases(mut self, on: bool) -> Self {
        self.config.auto_extend_leases = on;
        self
    }

    /// Checks the configuration. Errors: no capabilities, a duplicate or
    /// invalid capability, an unusable URL (not `ws://`/`http://`), a token
    /// that cannot be sent in a header, an empty name, `min > max` backoff.
    pub fn build(self) -> Result<Agent, AgentError> {
        let mut config = self.config;
        if let Some(problem) = self.problems.into_iter().next() {
            return Err(problem);
        }
        if config.capabilities.is_empty() {
            return Err(AgentError::NoCapabilities);
        }
        if config.name.trim().is_empty() {
            return Err(AgentError::InvalidConfig(
                "the agent name is empty (it must equal the token's `sub`)".into(),
            ));
        }
        let (min, max) = config.backoff;
        if min.is_zero() || min > max {
            return Err(AgentError::InvalidConfig(format!(
                "reconnect backoff needs 0 < min <= max, got {min:?}..{max:?}"
            )));
        }
        config.url = normalize_url(&config.url)?;
        crate::connection::build_request(&config.url, &config.token)?;
        config.fallback_urls = config
            .fallback_urls
            .iter()
            .map(|u| normalize_url(u))
            .collect::<Result<_, _>>()?;
        Ok(Agent {
            config: Arc::new(config),
        })
    }
}

/// A configured agent. [`spawn`](Agent::spawn) it (tests, embedding) or
/// [`run_until_signal`](Agent::run_until_signal) (a binary).
///
/// Cheap to clone; every `spawn` is an independent run (its own connection
/// and tasks), as if the process had been started again.
#[derive(Clone)]
pub struct Agent {
    config: Arc<Config>,
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("url", &self.config.url)
            .field("name", &self.config.name)
            .field(
                "capabilities",
                &self.config.handlers.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Starts building an agent that connects to `url` (e.g.
    /// `ws://127.0.0.1:8000/v1/agents/connect`; a URL without a path gets
    /// `/v1/agents/connect`, `http://` is taken as `ws://`) with the bearer
    /// `token` of role `agent`, under `name`, which must equal the token's
    /// `sub`.
    pub fn builder(
        url: impl Into<String>,
        token: impl Into<String>,
        name: impl Into<String>,
    ) -> AgentBuilder {
        AgentBuilder {
            config: Config {
                url: url.into(),
                fallback_urls: Vec::new(),
                token: token.into(),
                name: name.into(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                labels: BTreeMap::new(),
                capabilities: Vec::new(),
                handlers: HashMap::new(),
                heartbeat_override: None,
                backoff: (Duration::from_millis(100), Duration::from_secs(5)),
                ack_timeout: Duration::from_secs(30),
                connect_timeout: Duration::from_secs(10),
                auto_extend_leases: false,
            },
            problems: Vec::new(),
        }
    }

    /// The agent's name (the token's `sub`).
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The URL the agent connects to, after normalisation.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// Runs the agent in a tokio task: it connects, reconnects forever with
    /// backoff, and resumes its running tasks, until stopped through the
    /// handle. Must be called inside a tokio runtime. Dropping the handle
    /// does not stop the agent.
    pub fn spawn(&self) -> AgentHandle {
        let (status, _) = watch::channel(Status::default());
        let (control, control_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            status,
            health: Mutex::new(AgentHealth::Active),
            control,
            kill: CancellationToken::new(),
            killed: AtomicBool::new(false),
        });
        let task = tokio::spawn(runner::run(
            Arc::clone(&self.config),
            Arc::clone(&shared),
            control_rx,
        ));
        AgentHandle {
            shared,
            abort: task.abort_handle(),
        }
    }

    /// Runs the agent until SIGINT or SIGTERM, then drains it (running tasks
    /// finish and are acknowledged). A second signal during the drain stops
    /// at once. Returns the error that stopped the agent, if any (e.g. a
    /// refused token).
    pub async fn run_until_signal(self) -> Result<(), AgentError> {
        let handle = self.spawn();
        tokio::select! {
            result = handle.join() => return result,
            _ = shutdown_signal() => {}
        }
        tracing::info!(agent = %self.config.name, "signal received: draining (signal again to stop at once)");
        tokio::select! {
            _ = handle.drain() => {}
            _ = shutdown_signal() => handle.kill(),
        }
        handle.join().await
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
