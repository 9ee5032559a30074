//! A Server-Sent Events client for tests: opens a stream with a real HTTP
//! client and parses it event by event (`id`, `event`, `data`), counting
//! keep-alive comments.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::Value;
use switchyard::auth::Role;

use crate::TestApp;

/// One event as received.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    /// The `event:` field (`message` when absent).
    pub event: String,
    pub data: String,
}

impl SseEvent {
    /// `data` as JSON; panics when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("data is not JSON ({e}): {self:?}"))
    }

    /// `id` as a seq; panics when absent or not a number.
    pub fn seq(&self) -> i64 {
        self.id
            .as_deref()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("event without a numeric id: {self:?}"))
    }
}

/// An open event stream.
pub struct SseStream {
    response: reqwest::Response,
    buffer: String,
    ready: VecDeque<SseEvent>,
    /// Keep-alive comments seen so far.
    pub comments: usize,
    ended: bool,
}

/// Sends `GET path` as `role` with an optional `Last-Event-ID`; the raw
/// response (for status checks).
pub async fn request(
    app: &TestApp,
    role: Role,
    path: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    // No overall timeout: a stream lives as long as the test reads it.
    let client = reqwest::Client::new();
    let mut request = client
        .get(app.url(path))
        .bearer_auth(app.token(role))
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.expect("request")
}

impl SseStream {
    /// Opens `path` as a viewer; panics unless it is a 200 event stream.
    pub async fn open(app: &TestApp, path: &str, last_event_id: Option<i64>) -> SseStream {
        let id = last_event_id.map(|id| id.to_string());
        let response = request(app, Role::Viewer, path, id.as_deref()).await;
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
        SseStream::from_response(response)
    }

    /// Follows an answer already received (a hub that is not a
    /// [`TestApp`], e.g. a `serve` process); panics unless it is an event
    /// stream.
    pub fn from_response(response: reqwest::Response) -> SseStream {
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        SseStream {
            response,
            buffer: String::new(),
            ready: VecDeque::new(),
            comments: 0,
            ended: false,
        }
    }

    /// The next event within 10 s; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        self.next_within(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no event within 10 s"))
    }

    /// The next event, `Some(None)` at the end of the stream, `None` when
    /// nothing arrived within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Option<SseEvent>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(Some(event));
            }
            if self.ended {
                return Some(None);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?;
            match chunk {
                Ok(Some(bytes)) => {
                    self.buffer.push_str(&String::from_utf8_lossy(&bytes));
                    self.parse();
                }
                Ok(None) | Err(_) => self.ended = true,
            }
        }
    }

    /// Every event until the server ends the stream.
    pub async fn until_end(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }

    /// Events until (and including) the first of type `kind`.
    pub async fn until_type(&mut self, kind: &str) -> Vec<SseEvent> {
        let mut events = Vec::new();
        loop {
            let event = self
                .next()
                .await
                .unwrap_or_else(|| panic!("stream ended before `{kind}`: {events:?}"));
            let done = event.event == kind;
            events.push(event);
            if done {
                return events;
            }
        }
    }

    fn parse(&mut self) {
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            match parse_block(&block) {
                Some(event) => self.ready.push_back(event),
                None => self.comments += 1,
            }
        }
    }
}

/// One `\n\n`-terminated block: an event, or `None` for a comment.
pub fn parse_block(block: &str) -> Option<SseEvent> {
    let mut event = SseEvent {
        id: None,
        event: "message".into(),
        data: String::new(),
    };
    let mut fields = 0;
    for line in block.lines() {
        if line.starts_with(':') || line.is_empty() {
            continue;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        fields += 1;
        match name {
            "id" => event.id = Some(value.to_owned()),
            "event" => event.event = value.to_owned(),
            "data" => {
                if !event.data.is_empty() {
                    event.data.push('\n');
                }
                event.data.push_str(value);
            }
            _ => {}
        }
    }
    (fields > 0).then_some(event)
}

/// Every event in a complete stream body (comments skipped).
pub fn parse_all(body: &str) -> Vec<SseEvent> {
    body.split_inclusive("\n\n")
        .filter_map(parse_block)
        .collect()
}
