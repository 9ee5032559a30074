//! Slow consumers: a WebSocket client and an SSE client that stop reading
//! are cut off with `lagged` and their resume position, while a fast
//! WebSocket client and a fast SSE client receive every event and the hub
//! keeps serving. The bus and the per-connection buffer are configured
//! small, and the slow clients' sockets have tiny receive buffers, so a few
//! megabytes of events are enough to fill everything between hub and client.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard::auth::Role;
use switchyard_tests::sse::{SseStream, parse_all};
use switchyard_tests::{Backend, TestApp, spawn_app_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::MaybeTlsStream;

use super::{Said, StreamClient, Worker, create_job, fast, stored_events};

/// Events produced; each carries 32 KiB, ~10 MB in all: more than the
/// kernel buffers of a connection that is not read (4 MB at most here).
const EVENTS: usize = 300;

/// A TCP connection to the hub whose receive buffer is tiny.
async fn tiny_socket(app: &TestApp) -> TcpStream {
    let addr = app.hub.as_ref().expect("hub").addr;
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(addr).await.expect("connect")
}

/// Reads a chunked HTTP response body until its last chunk.
async fn read_chunked_body(stream: &mut TcpStream, mut raw: Vec<u8>) -> String {
    let mut buf = vec![0_u8; 64 * 1024];
    loop {
        if let Some(body) = dechunk(&raw) {
            return String::from_utf8_lossy(&body).into_owned();
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("the SSE body arrives")
            .expect("read");
        assert!(n > 0, "connection closed before the last chunk");
        raw.extend_from_slice(&buf[..n]);
    }
}

/// The body of a complete chunked response (after the head), or `None`
/// when the last chunk has not arrived yet.
fn dechunk(raw: &[u8]) -> Option<Vec<u8>> {
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut rest = &raw[find(raw, b"\r\n\r\n")? + 4..];
    let mut body = Vec::new();
    loop {
        let line = find(rest, b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line]).ok()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        let start = line + 2;
        if rest.len() < start + size + 2 {
            return None;
        }
        body.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumers_are_cut_off_with_their_position_while_others_get_everything() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        fast(c);
        c.event_bus_capacity = 16;
        c.stream_buffer = 4;
    })
    .await;
    let agent = Worker::connect(&app, "echo-1").await;
    let job = create_job(&app, json!({"prompt": "p"}), "r1").await;
    let mut worker = Worker::take(agent).await;
    worker.accept().await;
    // Wait for task.started, so that only progress events follow.
    while stored_events(&app, Some(job)).await.len() < 5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Fast consumers.
    let mut fast_ws = StreamClient::connect(&app).await;
    let start = fast_ws.subscribe("all", "*", None).await["latest_seq"]
        .as_i64()
        .expect("latest_seq");
    let mut fast_sse = SseStream::open(&app, "/v1/events", None).await;

    // Slow consumers: subscribed, then they stop reading.
    let ticket = StreamClient::ticket(&app, Role::Viewer).await;
    let (ws, _) = tokio_tungstenite::client_async(
        StreamClient::url(&app, Some(&ticket)),
        MaybeTlsStream::Plain(tiny_socket(&app).await),
    )
    .await
    .expect("upgrade");
    let mut slow_ws = StreamClient::from(ws);
    slow_ws.subscribe("all", "*", None).await;
    let mut slow_sse = tiny_socket(&app).await;
    let head = format!(
        "GET /v1/events HTTP/1.1\r\nhost: hub\r\naccept: text/event-stream\r\nauthorization: Bearer {}\r\n\r\n",
        app.token(Role::Viewer)
    );
    slow_sse.write_all(head.as_bytes()).await.expect("write");
    let mut sse_raw = vec![0_u8; 1024];
    let n = slow_sse.read(&mut sse_raw).await.expect("response head");
    sse_raw.truncate(n);
    assert!(
        sse_raw.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&sse_raw)
    );

    // Big events, one at a time, as fast as the fast consumers take them.
    let pad = "x".repeat(32 * 1024);
    let mut last = start;
    for n in 0..EVENTS {
        worker.progress(&format!("{n} {pad}")).await;
        let frame = fast_ws.expect("event").await;
        let seq = frame["event"]["seq"].as_i64().expect("seq");
        assert_eq!(frame["event"]["type"], "task.progress");
        assert!(seq > last);
        last = seq;
        let sse = fast_sse.next().await.expect("event");
        assert_eq!(sse.seq(), seq);
    }
    let health = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status().as_u16(), 200, "the hub keeps serving");

    let expected: Vec<Value> = stored_events(&app, None)
        .await
        .into_iter()
        .filter(|e| e["seq"].as_i64() > Some(start))
        .collect();
    assert_eq!(expected.len(), EVENTS);
    let prefix = |upto: i64| -> Vec<Value> {
        expected
            .iter()
            .filter(|e| e["seq"].as_i64() <= Some(upto))
            .cloned()
            .collect()
    };

    // The slow WebSocket client now reads: a gap-free prefix, `lagged` with
    // the seq of the last event it got, then a 1008 close.
    let mut got = Vec::new();
    let lagged = loop {
        match slow_ws.next().await {
            Said::Json(v) if v["type"] == "event" => got.push(v["event"].clone()),
            Said::Json(v) if v["type"] == "lagged" => break v,
            other => panic!("unexpected {other:?} after {} events", got.len()),
        }
    };
    assert!(matches!(slow_ws.next().await, Said::Closed(Some(1008))));
    let resume = lagged["last_seq"].as_i64().expect("last_seq");
    assert!(resume < last, "it fell behind: {resume} vs {last}");
    assert!(
        lagged["message"]
            .as_str()
            .is_some_and(|m| m.contains(&resume.to_string())),
        "{lagged}"
    );
    assert_eq!(
        got,
        prefix(resume),
        "everything up to its position, in order"
    );
    // It resumes from there and gets exactly the rest.
    let mut resumed = StreamClient::connect(&app).await;
    resumed.subscribe("all", "*", Some(resume)).await;
    got.extend(resumed.events_until("all", last).await);
    assert_eq!(got, expected);

    // The slow SSE client: the same, as `event: lagged` and the end of the stream.
    let body = read_chunked_body(&mut slow_sse, sse_raw).await;
    let events = parse_all(&body);
    let (lag, events) = events.split_last().expect("events");
    assert_eq!(lag.event, "lagged", "{lag:?}");
    let resume = lag.json()["last_seq"].as_i64().expect("last_seq");
    assert!(resume < last, "it fell behind: {resume} vs {last}");
    let got: Vec<Value> = events.iter().map(|e| e.json()).collect();
    assert_eq!(got, prefix(resume));
    let mut rest = SseStream::open(&app, &format!("/v1/events?after={resume}"), None).await;
    let mut all = got;
    while all.len() < expected.len() {
        all.push(rest.next().await.expect("event").json());
    }
    assert_eq!(all, expected);

    // The fast consumers are still connected and live.
    worker.item("one").await;
    worker.complete().await;
    let done = fast_ws.expect("event").await;
    assert_eq!(done["event"]["type"], "task.succeeded");
    assert_eq!(
        fast_sse.next().await.expect("event").event,
        "task.succeeded"
    );
}
