//! The SDK against a scripted hub: every protocol rule the agent side owns.

mod mock_hub;

use std::time::Duration;

use mock_hub::{AGENT_ID, MockHub, TOKEN, task_ref};
use serde::{Deserialize, Serialize};
use serde_json::json;
use switchyard_agent::protocol::{Ack, AgentMessage, Cancel, ErrorMessage, HubMessage, Shutdown};
use switchyard_agent::{
    Agent, AgentError, AgentHealth, CapabilitySpec, Pricing, TaskContext, TaskError, Usage, Verdict,
};
use uuid::Uuid;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EchoInput {
    text: String,
    items: u32,
    sleep_ms: u64,
    panic: bool,
    fail: Option<String>,
    fatal: bool,
    reject: Option<String>,
}

#[derive(Debug, Serialize)]
struct EchoOutput {
    echo: String,
}

async fn echo(ctx: TaskContext, input: EchoInput) -> Result<EchoOutput, TaskError> {
    for i in 0..input.items {
        ctx.emit_item(json!({ "n": i })).await;
    }
    if input.sleep_ms > 0 {
        tokio::select! {
            _ = ctx.cancelled().cancelled_owned() => return Err(TaskError::retryable("cancelled")),
            _ = tokio::time::sleep(Duration::from_millis(input.sleep_ms)) => {}
        }
    }
    if input.panic {
        panic!("boom");
    }
    if let Some(msg) = input.fail {
        return Err(if input.fatal {
            TaskError::fatal(msg)
        } else {
            TaskError::retryable(msg)
        });
    }
    if let Some(reason) = input.reject {
        ctx.reject(reason);
        ctx.report_usage(Usage {
            tokens_in: 3,
            tokens_out: 2,
            requests: 1,
            model: Some("none".into()),
        });
    }
    Ok(EchoOutput { echo: input.text })
}

fn builder(url: &str, token: &str) -> switchyard_agent::AgentBuilder {
    Agent::builder(url, token, "creator-1")
        .version("0.1.0")
        .label("zone", "eu")
        .capability(
            CapabilitySpec::new("echo")
                .max_concurrency(2)
                .input_schema(json!({"type": "object"}))
                .pricing(Pricing {
                    currency: "USD".into(),
                    per_request: 0.5,
                    ..Pricing::default()
                }),
            echo,
        )
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(50))
}

fn agent(url: &str) -> Agent {
    builder(url, TOKEN).build().unwrap()
}

#[test]
fn build_checks_the_configuration() {
    let no_caps = Agent::builder("ws://127.0.0.1:1/", TOKEN, "a").build();
    assert_eq!(no_caps.unwrap_err(), AgentError::NoCapabilities);
    let bad_url = builder("not a url", TOKEN).build();
    assert!(
        matches!(bad_url, Err(AgentError::InvalidUrl { .. })),
        "{bad_url:?}"
    );
    let tls = builder("wss://hub/v1/agents/connect", TOKEN).build();
    assert!(matches!(tls, Err(AgentError::InvalidUrl { .. })));
    let dup = builder("ws://127.0.0.1:1/", TOKEN)
        .capability(CapabilitySpec::new("echo"), echo)
        .build();
    assert_eq!(
        dup.unwrap_err(),
        AgentError::DuplicateCapability("echo".into())
    );
    let zero = Agent::builder("ws://127.0.0.1:1/", TOKEN, "a")
        .capability(CapabilitySpec::new("x").max_concurrency(0), echo)
        .build();
    assert!(matches!(zero, Err(AgentError::InvalidConfig(_))));
    let ok = builder("http://127.0.0.1:8000", TOKEN).build().unwrap();
    assert_eq!(ok.url(), "ws://127.0.0.1:8000/v1/agents/connect");
}

#[tokio::test]
async fn hello_welcome_task_items_complete_and_drain() {
    let hub = MockHub::start().await;
    let handle = agent(&hub.url).spawn();
    let mut conn = hub.accept().await.unwrap();
    assert_eq!(conn.auth.as_deref(), Some("Bearer good-token"));
    let hello = conn.hello().await;
    assert_eq!(
        (hello.protocol, hello.name.as_str(), hello.version.as_str()),
        (1, "creator-1", "0.1.0")
    );
    assert_eq!(hello.labels["zone"], "eu");
    assert_eq!(hello.capabilities.len(), 1);
    let cap = &hello.capabilities[0];
    assert_eq!((cap.name.as_str(), cap.max_concurrency), ("echo", 2));
    assert_eq!(cap.input_schema, json!({"type": "object"}));
    assert_eq!(cap.pricing.per_request, 0.5);
    assert!(hello.resume.is_empty());
    assert_eq!(handle.agent_id(), None);
    conn.welcome(vec![]).await;
    assert_eq!(handle.wait_connected().await.unwrap(), AGENT_ID);
    assert_eq!(handle.agent_id(), Some(AGENT_ID));

    // Heartbeats come at the hub's interval (100 ms).
    let AgentMessage::Heartbeat(hb) = conn.recv_any().await.unwrap() else {
        panic!("expected a heartbeat first")
    };
    assert_eq!((hb.status, hb.load), (AgentHealth::Active, 0.0));

    conn.push(1, 1, "echo", json!({"text": "hi", "items": 2}))
        .await;
    assert_eq!(conn.recv().await, AgentMessage::Accept(task_ref(1, 1)));
    let mut item_ids = Vec::new();
    for n in 0..2 {
        let AgentMessage::Item(item) = conn.recv().await else {
            panic!()
        };
        assert_eq!((item.task_id, item.attempt), (Uuid::from_u128(1), 1));
        assert_eq!(item.data, json!({ "n": n }));
        assert_eq!(item.item_id.get_version_num(), 7);
        item_ids.push(item.item_id);
    }
    assert_ne!(item_ids[0], item_ids[1]);
    let AgentMessage::Complete(done) = conn.recv().await else {
        panic!()
    };
    assert_eq!((done.task_id, done.attempt), (Uuid::from_u128(1), 1));
    assert_eq!(done.output, json!({"echo": "hi"}));
    assert_eq!((done.verdict, done.reason), (Verdict::Accepted, None));

    // Drain waits for the ack of the complete.
    let drainer = tokio::spawn({
        let handle = handle.clone();
        async move { handle.drain().await }
    });
    assert_eq!(conn.recv().await, AgentMessage::Drain(Default::default()));
    conn.quiet_for(Duration::from_millis(150)).await;
    assert!(!drainer.is_finished());
    conn.send(ack(1, 1, "complete")).await;
    let (graceful, rest) = conn.until_closed().await;
    assert!(graceful && rest.is_empty(), "{rest:?}");
    tokio::time::timeout(Duration::from_secs(2), drainer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(handle.join().await, Ok(()));
    assert_eq!(handle.wait_connected().await, Err(AgentError::Stopped));
}

fn ack(task_id: u128, attempt: u32, of: &str) -> HubMessage {
    HubMessage::Ack(Ack {
        task_id: Uuid::from_u128(task_id),
        attempt,
        of: of.into(),
        item_id: None,
    })
}

#[tokio::test]
async fn failures_panics_bad_input_rejections_and_capacity() {
    let hub = MockHub::start().await;
    let handle = agent(&hub.url).spawn();
    let (mut conn, _) = hub.accept_welcome(vec![]).await;
    handle.wait_connected().await.unwrap();

    let mut expect_fail =
        async |id: u128, input: serde_json::Value, error: &str, retryable: bool| {
            conn.push(id, 1, "echo", input).await;
            assert_eq!(conn.recv().await, AgentMessage::Accept(task_ref(id, 1)));
            let AgentMessage::Fail(fail) = conn.recv().await else {
                panic!()
            };
            assert_eq!(
                (fail.error.as_str(), fail.retryable),
                (error, retryable),
                "{fail:?}"
            );
            conn.send(ack(id, 1, "fail")).await;
        };
    expect_fail(1, json!({"fail": "upstream down"}), "upstream down", true).await;
    expect_fail(
        2,
        json!({"fail": "nonsense", "fatal": true}),
        "nonsense",
        false,
    )
    .await;
    expect_fail(3, json!({"panic": true}), "handler panicked: boom", true).await;
    expect_fail(
        4,
        json!({"items": "many"}),
        "invalid task input: invalid type: string \"many\", expected u32",
        false,
    )
    .await;

    conn.push(5, 1, "echo", json!({"reject": "too vague"}))
        .await;
    conn.recv().await;
    let AgentMessage::Complete(done) = conn.recv().await else {
        panic!()
    };
    assert_eq!(
        (done.verdict, done.reason.as_deref()),
        (Verdict::Rejected, Some("too vague"))
    );
    assert_eq!((done.usage.tokens_in, done.usage.requests), (3, 1));

    conn.push(6, 1, "nope", json!({})).await;
    let AgentMessage::Decline(d) = conn.recv().await else {
        panic!()
    };
    assert_eq!(
        d.reason.as_deref(),
        Some("no handler for capability `nope`")
    );

    // Capacity is 2: the third concurrent task is declined.
    conn.push(7, 1, "echo", json!({"sleep_ms": 300})).await;
    conn.push(8, 1, "echo", json!({"sleep_ms": 300})).await;
    conn.push(9, 1, "echo", json!({})).await;
    assert_eq!(conn.recv().await, AgentMessage::Accept(task_ref(7, 1)));
    assert_eq!(conn.recv().await, AgentMessage::Accept(task_ref(8, 1)));
    let AgentMessage::Decline(d) = conn.recv().await else {
        panic!()
    };
    assert_eq!(
        (d.task_id, d.reason.as_deref()),
        (
            Uuid::from_u128(9),
            Some("at capacity: 2 of 2 `echo` tasks running")
        )
    );
    // A duplicate push of a running attempt is accepted again, not run twice.
    conn.push(7, 1, "echo", json!({"sleep_ms": 300})).await;
    assert_eq!(conn.recv().await, AgentMessage::Accept(task_ref(7, 1)));
    let mut completed = Vec::new();
    for _ in 0..2 {
        let AgentMessage::Complete(c) = conn.recv().await else {
            panic!()
        };
        completed.push(c.task_id.as_u128());
    }
    completed.sort();
    assert_eq!(completed, [7, 8]);
    conn.quiet_for(Duration::from_millis(100)).await;
    handle.kill();
}

#[tokio::test]
async fn every_item_precedes_the_result() {
    let hub = MockHub::start().await;
    let handle = agent(&hub.url).spawn();
    let (mut conn, _) = hub.accept_welcome(vec![]).await;
    handle.wait_connected().await.unwrap();
    for task in 1..=3 {
        conn.push(task, 1, "echo", json!({"items": 200})).await;
        assert!(matches!(conn.recv().await, AgentMessage::Accept(_)));
        for n in 0..200 {
            let AgentMessage::Item(item) = conn.recv().await else {
                panic!("item {n} of task {task} missing")
            };
            assert_eq!(item.data, json!({ "n": n }));
        }
        assert!(matches!(conn.recv().await, AgentMessage::Complete(_)));
    }
    handle.kill();
}

#[tokio::test]
async fn cancel_fires_the_token_and_sends_nothing() {
    let hub = MockHub::start().await;
    let handle = agent(&hub.url).spawn();
    let (mut conn, _) = hub.accept_welcome(vec![]).await;
    handle.wait_connected().await.unwrap();
    conn.push(1, 1, "echo", json!({"sleep_ms": 5000, "items": 1}))
        .await;
    assert!(matches!(conn.recv().await, AgentMessage::Accept(_)));
    assert!(matches!(conn.recv().await, AgentMessage::Item(_)));
    conn.send(HubMessage::Cancel(Cancel {
        task_id: Uuid::from_u128(1),
        attempt: 1,
        reason: "job cancelled".into(),
    }))
    .await;
    conn.quiet_for(Duration::from_millis(300)).await;
    // The slot is free again.
    conn.push(2, 1, "echo", json!({})).await;
    conn.push(3, 1, "echo", json!({})).await;
    assert!(matches!(conn.recv().await, AgentMessage::Accept(_)));
    assert!(matches!(
        conn.recv().await,
        AgentMessage::Accept(_) | AgentMessage::Complete(_)
    ));
    handle.kill();
}

#[tokio::test]
async fn reconnect_resumes_items_then_result_of_listed_tasks_only() {
    let hub = MockHub::start().await;
    let handle = agent(&hub.url).spawn();
    let (mut conn, _) = hub.accept_welcome(vec![]).await;
    handle.wait_connected().await.unwrap();
    conn.push(
        1,
        1,
        "echo",
        json!({"sleep_ms": 300, "items": 2, "text": "kept"}),
    )
    .await;
    conn.push(2, 3, "echo", json!({"sleep_ms": 5000, "text": "taken"}))
        .await;
    assert!(matches!(conn.recv().await, AgentMessage::Accept(_)));
    assert!(matches!(conn.recv().await, AgentMessage::Accept(_)));
    let mut first_items = Vec::new();
    for _ in 0..2 {
        let AgentMessage::Item(item) = conn.recv().await else {
            panic!()
        };
        first_items.push(item.item_id);
    }
    conn.drop_abruptly();

    // The agent reconnects and offers both tasks; the hub keeps only task 1.
    let mut conn = hub.accept().await.unwrap();
    let hello = conn.hello().await;
    let mut resume = hello.resume.clone();
    resume.sort_by_key(|t| t.task_id);
    assert_eq!(resume, vec![task_ref(1, 1), task_ref(2, 3)]);
    conn.welcome(vec![task_ref(1, 1)]).await;
    // Items first (same ids), then the result once the handler finishes.
    let mut again = Vec::new();
    for _ in 0..2 {
        let AgentMessage::Item(item) = conn.recv().await else {
            panic!()
        };
        again.push(item.item_id);
    }
    assert_eq!(again, first_items);
    let AgentMessage::Complete(done) = conn.recv().await else {
        panic!()
    };
    assert_eq!(done.output, json!({"echo": "kept"}));
    conn.send(ack(1, 1, "complete")).await;
    conn.quiet_for(Duration::from_millis(200)).await;
    handle.kill();
}

#[tokio::test]
async fn results_finished_while_offline_are_sent_after_reconnect() {
    let hub = MockHub::start().await;
    let handle = builder(&hub.url, TOKEN)
        .reconnect_backoff(Duration::from_millis(400), Duration::from_millis(400))
        .build()
        .unwrap()
        .spawn();
    let (mut conn, _) = hub.accept_welcome(vec![]).await;
    handle.wait_connected().await.unwrap();
    conn.push(1, 1, "echo", json!({"sleep_ms": 50, "items": 1}))
        .await;
    assert!(matches!(conn.recv().await, AgentMessage::Accept(_)));
    assert!(matches!(conn.recv().await, AgentMessage::Item(_)));
    conn.drop_abruptly();
    // The handler finishes while the agent waits to reconnect.
    let mut conn = hub.accept().await.unwrap();
    assert_eq!(conn.hello().await.resume, vec![task_ref(1, 1)]);
    conn.welcome(vec![task_ref(1, 1)]).await;
    assert!(matches!(conn.recv().await, AgentMessage::Item(_)));
    assert!(matches!(conn.recv().await, AgentMessage::Complete(_)));
    // No ack: the next session offers it again.
    conn.drop_abruptly();
    let mut conn = hub.accept().await.unwrap();
    assert_eq!(conn.hello().await.resume, vec![task_ref(1, 1)]);
    // Not resumed this time: dropped, nothing sent, and drain ends at once.
    conn.welcome(vec![]).await;
    handle.wait_connected().await.unwrap();
    let drainer = tokio::spawn({
        let handle = handle.clone();
        async move { handle.drain().await }
    });
    let (graceful, seen) = conn.until_closed().await;
    assert!(graceful);
    assert_eq!(seen, vec![AgentMessage::Drain(Default::default())]);
    drainer.await.unwrap();
}

#[tokio::test]
async fn missing_ack_reconnects_and_resends() {
    let hub = MockHub::start().await;
    let handle = builder(&hub.url, TOKEN)
        .ack_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .spawn();
    let (mut conn, _) = hub.accept_welcome(vec![]).await;
    handle.wait_connected().await.unwrap();
    conn.push(1, 1, "echo", json!({})).await;
    assert!(matches!(conn.recv().await, AgentMessage::Accept(_)));
    assert!(matches!(conn.recv().await, AgentMessage::Complete(_)));
    let (_, seen) = conn.until_closed().await;
    assert!(seen.is_empty());
    let (mut conn, hello) = hub.accept_welcome(vec![task_ref(1, 1)]).await;
    assert_eq!(hello.resume, vec![task_ref(1, 1)]);
    assert!(matches!(conn.recv().await, AgentMessage::Complete(_)));
    conn.send(ack(1, 1, "complete")).await;
    conn.quiet_for(Duration::from_millis(500)).await;
    handle.kill();
}

#[tokio::test]
async fn error_naming_a_task_with_a_sent_result_drops_it() {
    let hub = MockHub::start().await;
    let handle = agent(&hub.url).spawn();
    let (mut conn, _) = hub.accept_welcome(vec![]).await;
    handle.wait_connected().await.unwrap();
    conn.push(1, 1, "echo", json!({})).await;
    conn.recv().await;
    assert!(matches!(conn.recv().await, AgentMessage::Complete(_)));
    // A transient refusal keeps the result (the drain below would wait).
    conn.send(HubMessage::Error(ErrorMessage {
        code: "rate_limited".into(),
        message: "slow down".into(),
        task_id: Some(Uuid::from_u128(1)),
    }))
    .await;
    conn.send(HubMessage::Error(ErrorMessage {
        code: "stale_attempt".into(),
        message: "attempt 1 is no longer current".into(),
        task_id: Some(Uuid::from_u128(1)),
    }))
    .await;
    // Dropped: a drain now has nothing to wait for.
    let drainer = tokio::spawn({
        let handle = handle.clone();
        async move { handle.drain().await }
    });
    let (graceful, seen) = conn.until_closed().await;
    assert!(graceful);
    assert_eq!(seen, vec![AgentMessage::Drain(Default::default())]);
    drainer.await.unwrap();
}

#[tokio::test]
async fn health_kill_and_shutdown() {
    let hub = MockHub::start().await;
    let handle = agent(&hub.url).spawn();
    let (mut conn, _) = hub.accept_welcome(vec![]).await;
    handle.wait_connected().await.unwrap();
    handle.set_health(AgentHealth::Degraded);
    loop {
        if let AgentMessage::Heartbeat(hb) = conn.recv_any().await.unwrap()
            && hb.status == AgentHealth::Degraded
        {
            break;
        }
    }
    conn.send(HubMessage::Shutdown(Shutdown {
        reason: "restarting".into(),
        reconnect_after_ms: Some(100),
        hubs: vec![],
    }))
    .await;
    let (graceful, _) = conn.until_closed().await;
    assert!(graceful);
    let (mut conn, _) = hub.accept_welcome(vec![]).await;
    handle.wait_connected().await.unwrap();

    // kill: the socket goes without a close frame and nothing reconnects.
    conn.push(1, 1, "echo", json!({"sleep_ms": 5000})).await;
    conn.recv().await;
    handle.kill();
    let (graceful, seen) = conn.until_closed().await;
    assert!(!graceful && seen.is_empty(), "{seen:?}");
    assert!(!hub.connects_within(Duration::from_millis(300)).await);
    assert_eq!(handle.join().await, Ok(()));
    assert!(handle.is_finished());
}

#[tokio::test]
async fn bad_token_stops_instead_of_retrying() {
    let hub = MockHub::start().await;
    let handle = builder(&hub.url, "wrong").build().unwrap().spawn();
    assert!(hub.accept().await.is_none());
    let err = handle.wait_connected().await.unwrap_err();
    assert_eq!(
        err,
        AgentError::Unauthorized {
            status: 401,
            body: Some(r#"{"error":"unauthorized"}"#.into())
        }
    );
    assert_eq!(handle.join().await, Err(err));
    assert!(!hub.connects_within(Duration::from_millis(300)).await);
}

#[tokio::test]
async fn permanent_hello_error_stops_and_transient_one_retries() {
    let hub = MockHub::start().await;
    let handle = agent(&hub.url).spawn();
    let mut conn = hub.accept().await.unwrap();
    conn.hello().await;
    conn.send(HubMessage::Error(ErrorMessage {
        code: "unavailable".into(),
        message: "starting up".into(),
        task_id: None,
    }))
    .await;
    drop(conn);
    let mut conn = hub.accept().await.unwrap();
    conn.hello().await;
    assert!(matches!(
        handle.last_error(),
        Some(AgentError::Connection(_))
    ));
    conn.send(HubMessage::Error(ErrorMessage {
        code: "name_mismatch".into(),
        message: "hello.name must equal the token's sub".into(),
        task_id: None,
    }))
    .await;
    let err = handle.join().await.unwrap_err();
    assert_eq!(
        err,
        AgentError::Refused {
            code: "name_mismatch".into(),
            message: "hello.name must equal the token's sub".into()
        }
    );
    assert!(!hub.connects_within(Duration::from_millis(200)).await);
}

#[tokio::test]
async fn auto_extend_leases_sends_progress() {
    let hub = MockHub::start().await;
    let handle = builder(&hub.url, TOKEN)
        .auto_extend_leases(true)
        .build()
        .unwrap()
        .spawn();
    let mut conn = hub.accept().await.unwrap();
    conn.hello().await;
    conn.send(HubMessage::Welcome(switchyard_agent::protocol::Welcome {
        protocol: 1,
        agent_id: AGENT_ID,
        session_id: Uuid::nil(),
        heartbeat_interval_ms: 1000,
        lease_ms: 600,
        accept_timeout_ms: 1000,
        resumed: vec![],
        hubs: vec![],
    }))
    .await;
    handle.wait_connected().await.unwrap();
    conn.push(1, 1, "echo", json!({"sleep_ms": 1000})).await;
    conn.recv().await;
    let AgentMessage::Progress(p) = conn.recv().await else {
        panic!()
    };
    assert_eq!(
        (p.task_id, p.percent, p.message),
        (Uuid::from_u128(1), None, None)
    );
    handle.kill();
}

/// The hub names its cluster's other nodes in `welcome` and `shutdown`: a
/// broken connection moves the agent to the next node it knows, a
/// `shutdown` to a node it names; a configured fallback is tried when the
/// first URL cannot be reached.
#[tokio::test]
async fn moves_between_the_nodes_of_a_cluster() {
    let (a, b, c) = (
        MockHub::start().await,
        MockHub::start().await,
        MockHub::start().await,
    );
    let handle = agent(&a.url).spawn();
    let mut conn = a.accept().await.expect("accepted");
    conn.hello().await;
    conn.send(HubMessage::Welcome(switchyard_agent::protocol::Welcome {
        protocol: 1,
        agent_id: AGENT_ID,
        session_id: Uuid::now_v7(),
        heartbeat_interval_ms: 1000,
        lease_ms: 30_000,
        accept_timeout_ms: 5_000,
        resumed: vec![],
        // A base URL, as nodes advertise themselves.
        hubs: vec![
            b.url
                .trim_end_matches("/v1/agents/connect")
                .replace("ws://", "http://"),
        ],
    }))
    .await;
    handle.wait_connected().await.unwrap();
    conn.push(1, 1, "echo", json!({"sleep_ms": 60_000})).await;
    conn.recv().await; // accept

    // Node A dies: the agent goes to B and resumes its task there.
    conn.drop_abruptly();
    let mut conn = b.accept().await.expect("accepted by B");
    let hello = conn.hello().await;
    assert_eq!(hello.resume, vec![task_ref(1, 1)]);
    conn.welcome(vec![task_ref(1, 1)]).await;
    handle.wait_connected().await.unwrap();

    // Node B stops: it names C, and the agent goes there (not back to A).
    conn.send(HubMessage::Shutdown(Shutdown {
        reason: "the hub is shutting down".into(),
        reconnect_after_ms: Some(0),
        hubs: vec![c.url.clone()],
    }))
    .await;
    let (graceful, _) = conn.until_closed().await;
    assert!(graceful);
    let (_conn, hello) = c.accept_welcome(vec![task_ref(1, 1)]).await;
    assert_eq!(hello.resume, vec![task_ref(1, 1)]);
    handle.wait_connected().await.unwrap();
    assert!(!a.connects_within(Duration::from_millis(200)).await);
    handle.kill();

    // A first URL nobody answers: the fallback is tried next.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("ws://{}", closed.local_addr().unwrap());
    drop(closed);
    let handle = builder(&dead, TOKEN)
        .fallback_url(&a.url)
        .build()
        .unwrap()
        .spawn();
    let (_conn, _) = a.accept_welcome(vec![]).await;
    handle.wait_connected().await.unwrap();
    handle.kill();
}
