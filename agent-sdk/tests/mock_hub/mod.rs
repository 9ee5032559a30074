//! A scripted stand-in for the hub's `/v1/agents/connect`: the test plays
//! the hub's side frame by frame.

#![allow(dead_code)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use switchyard_agent::protocol::{
    AgentMessage, Hello, HubMessage, TaskAssignment, TaskRef, Welcome, parse_agent_message,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use uuid::Uuid;

pub const TOKEN: &str = "good-token";
pub const AGENT_ID: Uuid = Uuid::from_u128(0xA9E47);
const WAIT: Duration = Duration::from_secs(5);

pub struct MockHub {
    listener: TcpListener,
    pub url: String,
}

pub struct Conn {
    ws: WebSocketStream<TcpStream>,
    /// The `Authorization` header of the upgrade request.
    pub auth: Option<String>,
}

impl MockHub {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/v1/agents/connect", listener.local_addr().unwrap());
        Self { listener, url }
    }

    /// Accepts the next connection; refuses it with 401 unless it carries
    /// `Bearer TOKEN` (then returns `None`).
    #[allow(clippy::result_large_err)] // tungstenite's callback signature
    pub async fn accept(&self) -> Option<Conn> {
        let (stream, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .expect("the agent did not connect in time")
            .unwrap();
        let mut auth = None;
        let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            assert_eq!(req.uri().path(), "/v1/agents/connect");
            auth = req
                .headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            if auth.as_deref() == Some(&format!("Bearer {TOKEN}")) {
                Ok(resp)
            } else {
                let mut refused = ErrorResponse::new(Some(r#"{"error":"unauthorized"}"#.into()));
                *refused.status_mut() = StatusCode::UNAUTHORIZED;
                Err(refused)
            }
        };
        match tokio_tungstenite::accept_hdr_async(stream, callback).await {
            Ok(ws) => Some(Conn { ws, auth }),
            Err(_) => None,
        }
    }

    /// Accepts a connection, reads `hello`, answers `welcome`.
    pub async fn accept_welcome(&self, resumed: Vec<TaskRef>) -> (Conn, Hello) {
        let mut conn = self.accept().await.expect("refused");
        let hello = conn.hello().await;
        conn.welcome(resumed).await;
        (conn, hello)
    }

    /// Whether another connection attempt arrives within `within`.
    pub async fn connects_within(&self, within: Duration) -> bool {
        tokio::time::timeout(within, self.listener.accept())
            .await
            .is_ok()
    }
}

impl Conn {
    pub async fn send(&mut self, msg: HubMessage) {
        let text = serde_json::to_string(&msg).unwrap();
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// The next message including heartbeats; `None` once the socket closed.
    pub async fn recv_any(&mut self) -> Option<AgentMessage> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("no frame from the agent in time");
            match frame {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Text(text))) => return Some(parse_agent_message(&text).unwrap()),
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next message that is not a heartbeat.
    pub async fn recv(&mut self) -> AgentMessage {
        loop {
            match self
                .recv_any()
                .await
                .expect("the agent closed the connection")
            {
                AgentMessage::Heartbeat(_) => {}
                other => return other,
            }
        }
    }

    /// Skips heartbeats until the socket closes; returns whether a close
    /// frame came first (a graceful close) and the non-heartbeat messages seen.
    pub async fn until_closed(&mut self) -> (bool, Vec<AgentMessage>) {
        let mut seen = Vec::new();
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("the agent did not close in time");
            match frame {
                Some(Ok(Message::Close(_))) => return (true, seen),
                None | Some(Err(_)) => return (false, seen),
                Some(Ok(Message::Text(text))) => match parse_agent_message(&text).unwrap() {
                    AgentMessage::Heartbeat(_) => {}
                    other => seen.push(other),
                },
                Some(Ok(_)) => {}
            }
        }
    }

    /// Asserts that nothing but heartbeats arrives for `during`.
    pub async fn quiet_for(&mut self, during: Duration) {
        let deadline = tokio::time::Instant::now() + during;
        while let Ok(frame) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            if let Some(Ok(Message::Text(text))) = frame {
                let msg = parse_agent_message(&text).unwrap();
                assert!(
                    matches!(msg, AgentMessage::Heartbeat(_)),
                    "unexpected {msg:?}"
                );
            } else {
                return;
            }
        }
    }

    pub async fn hello(&mut self) -> Hello {
        match self.recv_any().await.expect("closed before hello") {
            AgentMessage::Hello(h) => h,
            other => panic!("expected hello, got {other:?}"),
        }
    }

    pub async fn welcome(&mut self, resumed: Vec<TaskRef>) {
        self.send(HubMessage::Welcome(Welcome {
            protocol: 1,
            agent_id: AGENT_ID,
            session_id: Uuid::now_v7(),
            heartbeat_interval_ms: 100,
            lease_ms: 30_000,
            accept_timeout_ms: 5_000,
            resumed,
            hubs: Vec::new(),
        }))
        .await;
    }

    pub async fn push(
        &mut self,
        task_id: u128,
        attempt: u32,
        capability: &str,
        input: serde_json::Value,
    ) {
        self.send(HubMessage::Task(task(task_id, attempt, capability, input)))
            .await;
    }

    /// Drops the socket without a close frame.
    pub fn drop_abruptly(self) {
        drop(self);
    }
}

pub fn task(
    task_id: u128,
    attempt: u32,
    capability: &str,
    input: serde_json::Value,
) -> TaskAssignment {
    TaskAssignment {
        task_id: Uuid::from_u128(task_id),
        attempt,
        job_id: Uuid::from_u128(0x70B),
        capability: capability.into(),
        stage: 0,
        input,
        accept_by: chrono::Utc::now() + chrono::Duration::seconds(5),
        correlation_id: format!("corr-{task_id}"),
    }
}

pub fn task_ref(task_id: u128, attempt: u32) -> TaskRef {
    TaskRef {
        task_id: Uuid::from_u128(task_id),
        attempt,
    }
}
