//! A real webhook receiver for the tests: an axum server on 127.0.0.1 that
//! verifies every request with an independent implementation of the
//! Standard Webhooks specification (the `standardwebhooks` crate), answers as
//! its script says, and keeps what it accepted, de-duplicated by `webhook-id`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How to answer one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Decides the answer from the request's number (0-based, over the receiver's life).
pub type Script = Box<dyn Fn(usize) -> Reply + Send + Sync>;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub msg_id: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub at: Instant,
    /// Per configured secret: did the request verify with it?
    pub verified: Vec<Result<(), String>>,
    pub answered: u16,
}

#[derive(Default)]
struct Shared {
    secrets: Mutex<Vec<String>>,
    script: Mutex<Option<Script>>,
    log: Mutex<Vec<Received>>,
    changed: Notify,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let secrets = shared.secrets.lock().unwrap().clone();
    let verified = secrets
        .iter()
        .map(|s| {
            standardwebhooks::Webhook::new(s)
                .map_err(|e| e.to_string())?
                .verify(&body, &headers)
                .map_err(|e| e.to_string())
        })
        .collect();
    let reply = {
        let mut log = shared.log.lock().unwrap();
        let reply = match shared.script.lock().unwrap().as_ref() {
            Some(script) => script(log.len()),
            None => Reply::status(200),
        };
        log.push(Received {
            msg_id: headers
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            headers,
            at: Instant::now(),
            verified,
            answered: reply.status,
        });
        reply
    };
    shared.changed.notify_waiters();
    tokio::time::sleep(reply.delay).await;
    let mut response = StatusCode::from_u16(reply.status)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response();
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_str(&value).unwrap());
    }
    response
}

async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let app = Router::new()
        .route("/hook", post(handle))
        .with_state(shared);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (tx, task)
}

impl Receiver {
    /// A receiver answering 200 to everything.
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let server = serve(listener, shared.clone()).await;
        Receiver {
            addr,
            shared,
            server: Some(server),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Every request must verify with each of these secrets.
    pub fn set_secrets(&self, secrets: &[&str]) {
        *self.shared.secrets.lock().unwrap() = secrets.iter().map(|s| s.to_string()).collect();
    }

    pub fn set_script(&self, script: impl Fn(usize) -> Reply + Send + Sync + 'static) {
        *self.shared.script.lock().unwrap() = Some(Box::new(script));
    }

    /// Stops listening; the port stays this receiver's to `resume` on.
    pub async fn stop(&mut self) {
        if let Some((tx, task)) = self.server.take() {
            let _ = tx.send(());
            task.await.unwrap();
        }
    }

    /// Listens again on the same address.
    pub async fn resume(&mut self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    eprintln!("rebinding {}: {e}", self.addr);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.server = Some(serve(listener, self.shared.clone()).await);
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Received> {
        self.shared.log.lock().unwrap().clone()
    }

    /// What was accepted (answered 2xx), by `webhook-id`: the first body of each.
    pub fn accepted(&self) -> BTreeMap<String, Received> {
        let mut out = BTreeMap::new();
        for r in self.log() {
            if (200..300).contains(&r.answered) {
                out.entry(r.msg_id.clone()).or_insert(r);
            }
        }
        out
    }

    /// Waits until `check` holds for the log, or panics after `timeout`.
    pub async fn wait_until(&self, timeout: Duration, check: impl Fn(&[Received]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if check(&self.log()) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let log = self.log();
                let ids: Vec<(&str, u16)> = log
                    .iter()
                    .map(|r| (r.msg_id.as_str(), r.answered))
                    .collect();
                panic!(
                    "the receiver did not get what was expected within {timeout:?}; it got {} requests: {ids:?}",
                    log.len()
                );
            }
        }
    }

    /// Waits until `n` distinct messages were accepted.
    pub async fn wait_for_accepted(&self, n: usize, timeout: Duration) {
        let shared = self.shared.clone();
        self.wait_until(timeout, move |_| {
            let log = shared.log.lock().unwrap();
            let mut ids: Vec<&str> = log
                .iter()
                .filter(|r| (200..300).contains(&r.answered))
                .map(|r| r.msg_id.as_str())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len() >= n
        })
        .await;
    }
}
