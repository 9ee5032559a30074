//! Events out: the event log (request ids, retention), the SSE endpoints and
//! the WebSocket stream, against the real hub with real clients. Jobs are
//! driven frame by frame by a [`RawAgent`] on a one-stage pipeline.

/// Like `backend_tests!`, but every hub gets the [`fast`] configuration.
macro_rules! fast_backend_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let app = switchyard_tests::spawn_app_with(switchyard_tests::Backend::Sqlite, super::super::fast).await;
                super::$name(app).await;
            }
        )+ }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let app = switchyard_tests::spawn_app_with(switchyard_tests::Backend::Postgres, super::super::fast).await;
                super::$name(app).await;
            }
        )+ }
    };
}

mod filters;
mod lagged;
mod retention;
mod sse;
mod stream;

use serde_json::{Value, json};
use switchyard::auth::Role;
use switchyard::config::RawConfig;
use switchyard_tests::TestApp;
use switchyard_tests::raw_agent::RawAgent;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

/// Short timers, a one-stage pipeline, fast keep-alives.
pub fn fast(c: &mut RawConfig) {
    // Raw agents send no heartbeats: give them a minute.
    c.heartbeat_interval = "1s".into();
    c.heartbeat_misses = 60;
    // Generous: on a loaded machine a test may take seconds between receiving
    // a task and accepting it, and a timeout would (rightly) take it back.
    c.accept_timeout = "60s".into();
    c.lease = "60s".into();
    c.default_pipeline = vec!["test.echo".into()];
    c.stream_keepalive = "100ms".into();
}

/// Every stored event of a job (or of all jobs), as the API renders them.
pub async fn stored_events(app: &TestApp, job_id: Option<Uuid>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .store()
            .list_events(job_id, after, 1000)
            .await
            .expect("list events");
        let full = page.len() == 1000;
        for event in page {
            after = event.seq;
            out.push(serde_json::to_value(&event).expect("event JSON"));
        }
        if !full {
            return out;
        }
    }
}

/// The `type`s of events, in order.
pub fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The `seq`s of events, in order.
pub fn seqs(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e["seq"].as_i64().unwrap_or(-1))
        .collect()
}

/// An echo agent holding one task, driven frame by frame.
pub struct Worker {
    pub agent: RawAgent,
    pub task_id: Value,
    pub attempt: u64,
}

impl Worker {
    /// Connects `name` for `test.echo` and waits for its first task.
    pub async fn connect(app: &TestApp, name: &str) -> RawAgent {
        RawAgent::hello(app, name, "test.echo", 1, json!([]))
            .await
            .0
    }

    /// The next task pushed to `agent`.
    pub async fn take(mut agent: RawAgent) -> Worker {
        let task = agent.expect_type("task").await;
        Worker {
            task_id: task["task_id"].clone(),
            attempt: task["attempt"].as_u64().expect("attempt"),
            agent,
        }
    }

    pub async fn accept(&mut self) {
        let m = json!({"type": "accept", "task_id": self.task_id, "attempt": self.attempt});
        self.agent.send(m).await;
    }

    pub async fn progress(&mut self, message: &str) {
        let m = json!({"type": "progress", "task_id": self.task_id, "attempt": self.attempt,
            "percent": 50.0, "message": message});
        self.agent.send(m).await;
    }

    pub async fn item(&mut self, text: &str) {
        let m = json!({"type": "item", "task_id": self.task_id, "attempt": self.attempt,
            "item_id": Uuid::now_v7(), "data": {"text": text}});
        self.agent.send(m).await;
    }

    /// Completes the task and waits for the hub's ack.
    pub async fn complete(&mut self) {
        let m = json!({"type": "complete", "task_id": self.task_id, "attempt": self.attempt,
            "output": {"ok": true}});
        self.agent.send(m).await;
        let ack = self.agent.expect_type("ack").await;
        assert_eq!(ack["of"], "complete", "{ack}");
    }
}

/// Creates a job from `body` as operator with an `x-request-id`; returns its id.
pub async fn create_job(app: &TestApp, body: Value, request_id: &str) -> Uuid {
    let res = app
        .as_role(Role::Operator, reqwest::Method::POST, "/v1/jobs")
        .header("x-request-id", request_id)
        .json(&body)
        .send()
        .await
        .expect("request");
    let (status, job) = switchyard_tests::app::json(res).await;
    assert_eq!(status, 201, "{job}");
    job["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("job id")
}

/// Cancels a job as an admin (it must not have finished).
pub async fn cancel(app: &TestApp, job: Uuid) {
    let res = app
        .admin(reqwest::Method::DELETE, &format!("/v1/jobs/{job}"))
        .send()
        .await
        .expect("cancel");
    assert_eq!(res.status().as_u16(), 200);
}

/// A test client of `GET /v1/stream`.
pub struct StreamClient {
    pub ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// Event frames that arrived while waiting for another kind of frame
    /// (a `subscribed` reply, say): `next` returns them first, in order.
    pub held: std::collections::VecDeque<Value>,
}

/// What the stream said.
#[derive(Debug)]
pub enum Said {
    Json(Value),
    Closed(Option<u16>),
}

impl
    From<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    > for StreamClient
{
    fn from(
        ws: tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    ) -> Self {
        StreamClient {
            ws,
            held: std::collections::VecDeque::new(),
        }
    }
}

impl StreamClient {
    /// The stream URL, with `?ticket=` when given.
    pub fn url(app: &TestApp, ticket: Option<&str>) -> String {
        let base = app.base.replace("http://", "ws://") + "/v1/stream";
        match ticket {
            Some(t) => format!("{base}?ticket={t}"),
            None => base,
        }
    }

    /// A fresh ticket for `role`.
    pub async fn ticket(app: &TestApp, role: Role) -> String {
        let res = app
            .as_role(role, reqwest::Method::POST, "/v1/stream/tickets")
            .send()
            .await
            .expect("request");
        let (status, body) = switchyard_tests::app::json(res).await;
        assert_eq!(status, 201, "{body}");
        body["ticket"].as_str().expect("ticket").to_owned()
    }

    /// Connects with a fresh viewer ticket.
    pub async fn connect(app: &TestApp) -> StreamClient {
        let ticket = Self::ticket(app, Role::Viewer).await;
        let (ws, _) = tokio_tungstenite::connect_async(Self::url(app, Some(&ticket)))
            .await
            .expect("upgrade");
        StreamClient::from(ws)
    }

    pub async fn send(&mut self, message: Value) {
        use futures::SinkExt;
        self.ws
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send");
    }

    pub async fn subscribe(&mut self, id: &str, topic: &str, after: Option<i64>) -> Value {
        let mut m = json!({"type": "subscribe", "id": id, "topic": topic});
        if let Some(after) = after {
            m["after"] = json!(after);
        }
        self.send(m).await;
        let subscribed = self.expect("subscribed").await;
        assert_eq!(subscribed["id"], id, "{subscribed}");
        assert_eq!(subscribed["topic"], topic, "{subscribed}");
        subscribed
    }

    /// The next JSON frame or close, within 10 s.
    pub async fn next(&mut self) -> Said {
        use futures::StreamExt;
        if let Some(frame) = self.held.pop_front() {
            return Said::Json(frame);
        }
        let wait = std::time::Duration::from_secs(10);
        loop {
            match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) => panic!("nothing from the stream within 10 s"),
                Ok(None) => return Said::Closed(None),
                Ok(Some(Err(e))) => {
                    eprintln!("stream client error: {e}");
                    return Said::Closed(None);
                }
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Said::Json(serde_json::from_str(&text).expect("JSON frame"));
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Said::Closed(frame.map(|f| u16::from(f.code)));
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Skips frames until one of type `kind`; event frames skipped on the
    /// way are held for the next reader.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let mut skipped = std::collections::VecDeque::new();
        let found = self.expect_keeping(kind, &mut skipped).await;
        skipped.append(&mut self.held);
        self.held = skipped;
        found
    }

    async fn expect_keeping(
        &mut self,
        kind: &str,
        skipped: &mut std::collections::VecDeque<Value>,
    ) -> Value {
        loop {
            match self.next().await {
                Said::Json(v) if v["type"] == kind => return v,
                Said::Json(v) if v["type"] == "error" => panic!("expected `{kind}`, got {v}"),
                // Events are kept for whoever reads events next.
                Said::Json(v) if v["type"] == "event" => skipped.push_back(v),
                Said::Json(_) => continue,
                Said::Closed(code) => panic!("closed ({code:?}) while waiting for `{kind}`"),
            }
        }
    }

    /// The events of subscription `id` until one with `seq >= until`
    /// (frames of other subscriptions and snapshots are skipped).
    pub async fn events_until(&mut self, id: &str, until: i64) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let frame = self.expect("event").await;
            if frame["id"] != id {
                continue;
            }
            let event = frame["event"].clone();
            let seq = event["seq"].as_i64().expect("seq");
            events.push(event);
            if seq >= until {
                return events;
            }
        }
    }
}
