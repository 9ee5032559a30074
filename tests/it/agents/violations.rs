//! Peers that break the rules below the agent protocol: no `hello` while
//! answering pings, an oversized `hello`, and raw RFC 6455 violations. Each
//! gets an `error` frame and a close with the RFC's code and a reason,
//! before `hello` and after it alike.

use std::time::{Duration, Instant};

use serde_json::json;
use switchyard::auth::Role;
use switchyard_tests::raw_agent::{Heard, RawAgent};
use switchyard_tests::{Backend, TestApp, spawn_app_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;

async fn app() -> TestApp {
    spawn_app_with(Backend::Sqlite, |c| {
        c.heartbeat_interval = "100ms".into();
        c.hello_timeout = "600ms".into();
        c.max_frame_bytes = 4096;
    })
    .await
}

#[tokio::test]
async fn the_hello_deadline_is_not_extended_by_pings() {
    let app = app().await;
    let mut agent = RawAgent::connect(&app, "pinger").await;
    let started = Instant::now();
    // The client pings too, and answers the hub's pings (tungstenite does
    // that while reading): traffic flows, but no `hello` ever comes.
    let mut closed = None;
    let mut refused = false;
    while closed.is_none() {
        use futures::SinkExt;
        // Once the hub has said `hello_timeout` it closes: a ping written
        // after its close would draw a TCP reset, which can discard the
        // close frame before it is read. So stop pinging then.
        if !refused {
            let _ = agent
                .ws
                .send(tokio_tungstenite::tungstenite::Message::Ping(
                    b"still here".to_vec().into(),
                ))
                .await;
        }
        match agent.next().await {
            Heard::Json(v) => {
                assert_eq!(v["code"], "hello_timeout", "{v}");
                refused = true;
            }
            Heard::Closed(c) => closed = Some(c),
        }
    }
    assert_eq!(closed.flatten().map(|(code, _)| code), Some(1008));
    assert!(started.elapsed() < Duration::from_secs(8), "closed late");
}

#[tokio::test]
async fn an_oversized_hello_is_named_and_closed_with_1009() {
    let app = app().await;
    let mut agent = RawAgent::connect(&app, "big").await;
    agent
        .send(
            json!({"type": "hello", "protocol": 1, "name": "big", "pad": "x".repeat(10_000),
            "capabilities": [{"name": "x"}]}),
        )
        .await;
    match agent.next().await {
        Heard::Json(v) => assert_eq!(v["code"], "frame_too_large", "{v}"),
        other => panic!("expected an error frame, got {other:?}"),
    }
    match agent.next().await {
        Heard::Closed(Some((code, reason))) => {
            assert_eq!(code, 1009, "{reason}");
            assert!(reason.contains("4096"), "{reason}");
        }
        other => panic!("expected a close with a code, got {other:?}"),
    }
}

/// One client frame, masked unless `masked` is false.
fn frame(fin: bool, rsv1: bool, opcode: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode];
    let mask_bit = u8::from(masked) << 7;
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    let key = [0x12, 0x34, 0x56, 0x78];
    if masked {
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Reads server frames until a close: the text frames before it, and the
/// close's code and reason (`None` when the socket ends without one).
async fn until_close(tcp: &mut TcpStream) -> (Vec<serde_json::Value>, Option<(u16, String)>) {
    let mut texts = Vec::new();
    let read = async {
        loop {
            let mut head = [0u8; 2];
            if tcp.read_exact(&mut head).await.is_err() {
                return None;
            }
            let mut len = u64::from(head[1] & 0x7f);
            if len == 126 {
                len = u64::from(tcp.read_u16().await.ok()?);
            } else if len == 127 {
                len = tcp.read_u64().await.ok()?;
            }
            let mut payload = vec![0u8; len as usize];
            tcp.read_exact(&mut payload).await.ok()?;
            match head[0] & 0x0f {
                0x1 => texts.push(serde_json::from_slice(&payload).expect("hub sends JSON")),
                0x8 if payload.len() >= 2 => {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    return Some((code, String::from_utf8_lossy(&payload[2..]).into_owned()));
                }
                0x8 => return None,
                _ => {}
            }
        }
    };
    let closed = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the hub answers within 10 s");
    (texts, closed)
}

/// A socket past the upgrade, optionally past `hello`, as a raw TCP stream.
async fn raw_socket(app: &TestApp, name: &str, say_hello: bool) -> TcpStream {
    let mut agent = RawAgent::connect_with_token(app, &app.token_for(Role::Agent, name))
        .await
        .expect("upgrade");
    if say_hello {
        agent
            .send(json!({"type": "hello", "protocol": 1, "name": name,
                "capabilities": [{"name": "test.echo"}]}))
            .await;
        agent.expect_type("welcome").await;
    }
    match agent.ws.into_inner() {
        MaybeTlsStream::Plain(tcp) => tcp,
        _ => panic!("plain TCP expected"),
    }
}

#[tokio::test]
async fn protocol_violations_get_the_rfc_6455_close_code_and_a_reason() {
    let app = app().await;
    let text_in_fragment = [
        frame(false, false, 0x1, true, b"{\"type\":"),
        frame(true, false, 0x1, true, b"\"heartbeat\"}"),
    ]
    .concat();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "invalid UTF-8",
            frame(true, false, 0x1, true, &[0xff, 0xfe, 0xfd]),
            1007,
        ),
        ("opcode 0x3", frame(true, false, 0x3, true, b"x"), 1002),
        ("RSV1 set", frame(true, true, 0x1, true, b"{}"), 1002),
        ("unmasked", frame(true, false, 0x1, false, b"{}"), 1002),
        (
            "fragmented ping",
            frame(false, false, 0x9, true, b"p"),
            1002,
        ),
        (
            "continuation without start",
            frame(true, false, 0x0, true, b"x"),
            1002,
        ),
        ("text inside a fragmented message", text_in_fragment, 1002),
        (
            "control frame over 125 bytes",
            frame(true, false, 0x9, true, &[7; 200]),
            1002,
        ),
    ];
    for say_hello in [false, true] {
        for (i, (name, bytes, code)) in cases.iter().enumerate() {
            let agent = format!("v{i}-{say_hello}");
            let mut tcp = raw_socket(&app, &agent, say_hello).await;
            tcp.write_all(bytes).await.unwrap();
            let (texts, closed) = until_close(&mut tcp).await;
            let what = format!("{name} (after hello: {say_hello})");
            let (got, reason) = closed.unwrap_or_else(|| panic!("{what}: closed without a code"));
            assert_eq!(got, *code, "{what}: {reason}");
            assert!(!reason.is_empty(), "{what}: no reason");
            let error = texts
                .iter()
                .find(|t| t["type"] == "error")
                .unwrap_or_else(|| panic!("{what}: no error frame in {texts:?}"));
            assert_eq!(error["code"], "invalid_message", "{what}: {error}");
        }
    }
}
