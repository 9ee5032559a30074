//! A raw protocol client: speaks the agent protocol frame by frame, so tests
//! can send exactly what a buggy or malicious agent would.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchyard::auth::Role;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::TestApp;

pub struct RawAgent {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What the hub said, frame by frame.
#[derive(Debug)]
pub enum Heard {
    Json(Value),
    Closed(Option<(u16, String)>),
}

impl RawAgent {
    /// Opens the socket with a token for `name` (no hello yet).
    pub async fn connect(app: &TestApp, name: &str) -> RawAgent {
        Self::connect_with_token(app, &app.token_for(Role::Agent, name))
            .await
            .expect("websocket upgrade")
    }

    pub async fn connect_with_token(
        app: &TestApp,
        token: &str,
    ) -> Result<RawAgent, tokio_tungstenite::tungstenite::Error> {
        let url = app.base.replace("http://", "ws://") + "/v1/agents/connect";
        let mut request = url.into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(RawAgent { ws })
    }

    /// Connects and says hello with one capability; returns the welcome.
    pub async fn hello(
        app: &TestApp,
        name: &str,
        capability: &str,
        max_concurrency: u32,
        resume: Value,
    ) -> (RawAgent, Value) {
        let mut agent = Self::connect(app, name).await;
        agent
            .send(json!({"type": "hello", "protocol": 1, "name": name, "version": "raw",
                "capabilities": [{"name": capability, "max_concurrency": max_concurrency}], "resume": resume}))
            .await;
        let welcome = agent.expect_type("welcome").await;
        (agent, welcome)
    }

    pub async fn send(&mut self, message: Value) {
        self.ws
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("send");
    }

    /// The next JSON frame or close, within 10 s.
    pub async fn next(&mut self) -> Heard {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.ws.next()).await {
                Err(_) => panic!("nothing heard from the hub within 10 s"),
                Ok(None) => return Heard::Closed(None),
                Ok(Some(Err(_))) => return Heard::Closed(None),
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Heard::Json(serde_json::from_str(&text).expect("hub sends JSON"));
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Heard::Closed(
                        frame.map(|CloseFrame { code, reason }| {
                            (u16::from(code), reason.to_string())
                        }),
                    );
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Skips frames until one of `kind` arrives.
    pub async fn expect_type(&mut self, kind: &str) -> Value {
        loop {
            match self.next().await {
                Heard::Json(v) if v["type"] == kind => return v,
                Heard::Json(v) if v["type"] == "error" && kind != "error" => {
                    panic!("expected `{kind}`, got error {v}")
                }
                Heard::Json(_) => continue,
                Heard::Closed(c) => panic!("closed while waiting for `{kind}`: {c:?}"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
