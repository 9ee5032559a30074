//! A node's death: three `switchyard serve` processes on one Postgres
//! database, SDK agents spread over them, work submitted through all three,
//! an SSE stream followed on one node and a webhook subscription, and one
//! node SIGKILLed mid-run.
//!
//! Its agents move to the other nodes (they learn them from `welcome`) and
//! resume their tasks there; what nobody resumes is recovered by the
//! leader's monitor. Every job completes exactly once, the stream on a
//! surviving node shows every completion, and every completion reaches the
//! webhook with one message id per event (delivery is at least once: a
//! request in flight when its node died is sent again under the same id,
//! which the receiver can drop).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Connection;
use switchyard::auth::Role;
use switchyard_agent::{Agent, AgentHandle, CapabilitySpec, TaskContext, TaskError};
use switchyard_tests::process::ServeProcess;
use switchyard_tests::sse::SseStream;

use crate::webhooks::receiver::Receiver;

const CAPABILITY: &str = "test.failover";
const JOBS: usize = 90;
const AGENTS_PER_NODE: usize = 2;

/// Short timings, so the death is noticed and settled within seconds.
const NODE_ENV: &[(&str, &str)] = &[
    ("SWITCHYARD_NODE_TIMEOUT", "1s"),
    ("SWITCHYARD_HEARTBEAT_INTERVAL", "500ms"),
    ("SWITCHYARD_RECONNECT_GRACE", "1s"),
    ("SWITCHYARD_ACCEPT_TIMEOUT", "2s"),
    ("SWITCHYARD_LEASE", "10s"),
    ("SWITCHYARD_MONITOR_INTERVAL", "200ms"),
    ("SWITCHYARD_STUCK_GRACE", "1s"),
    ("SWITCHYARD_RETRY_INITIAL", "100ms"),
    ("SWITCHYARD_RETRY_MAX", "500ms"),
    ("SWITCHYARD_MAX_ATTEMPTS", "20"),
    ("SWITCHYARD_WEBHOOKS_ALLOW_LOOPBACK", "true"),
];

async fn call(node: &ServeProcess, method: Method, path: &str, body: Option<Value>) -> Value {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method.clone(), format!("{}{path}", node.base))
        .bearer_auth(node.token(Role::Admin, "failover-test"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {path}: {status} {body}");
    body
}

/// Waits until `check` holds, polling every 50 ms, or panics naming `what`.
async fn until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn agent(nodes: &[ServeProcess], home: usize, n: usize) -> AgentHandle {
    let name = format!("failover-{home}-{n}");
    Agent::builder(
        nodes[home].agent_url(),
        nodes[home].token(Role::Agent, &name),
        &name,
    )
    .capability(
        CapabilitySpec::new(CAPABILITY).max_concurrency(2),
        |_ctx: TaskContext, input: Value| async move {
            // Long enough that the kill finds tasks running.
            tokio::time::sleep(Duration::from_millis(150)).await;
            Ok::<_, TaskError>(json!({"done": input["prompt"]}))
        },
    )
    .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500))
    .build()
    .expect("agent")
    .spawn()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_nothing_and_completes_nothing_twice() {
    let url = switchyard_tests::db::fresh_postgres_url().await;
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(ServeProcess::start(url.clone(), NODE_ENV).await);
    }
    for node in &nodes {
        until(
            "every node sees three live nodes",
            Duration::from_secs(15),
            || async {
                let list = call(node, Method::GET, "/v1/nodes", None).await;
                list["nodes"]
                    .as_array()
                    .is_some_and(|l| l.iter().filter(|n| n["alive"] == true).count() == 3)
            },
        )
        .await;
    }

    let receiver = Receiver::start().await;
    call(
        &nodes[0],
        Method::POST,
        "/v1/webhooks",
        Some(json!({"url": receiver.url(), "event_types": ["job.completed"]})),
    )
    .await;

    // The stream follows node 0; node 2 is the one that dies.
    let stream = reqwest::Client::new()
        .get(format!("{}/v1/events", nodes[0].base))
        .bearer_auth(nodes[0].token(Role::Viewer, "failover-stream"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("open the stream");
    let mut stream = SseStream::from_response(stream);
    let (completed_tx, mut completed_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let follower = tokio::spawn(async move {
        while let Some(event) = stream.next_within(Duration::from_secs(60)).await.flatten() {
            let event = event.json();
            if event["type"] == "job.completed" {
                let _ = completed_tx.send(event["job_id"].as_str().unwrap_or_default().to_owned());
            }
        }
    });

    let mut agents = Vec::new();
    for home in 0..3 {
        for n in 0..AGENTS_PER_NODE {
            agents.push(agent(&nodes, home, n));
        }
    }
    for a in &agents {
        a.wait_connected().await.expect("connected");
    }

    // Work through all three nodes; the kill comes once a third is done.
    let mut ids = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let jobs: Vec<Value> = (0..JOBS / 3)
            .map(|i| json!({"prompt": format!("job {n}.{i}"), "pipeline": [CAPABILITY]}))
            .collect();
        let batch = call(
            node,
            Method::POST,
            "/v1/jobs/batch",
            Some(json!({"jobs": jobs})),
        )
        .await;
        for job in batch["jobs"].as_array().expect("jobs") {
            ids.push(job["id"].as_str().expect("id").to_owned());
        }
    }
    assert_eq!(ids.len(), JOBS);
    let mut seen: HashSet<String> = HashSet::new();
    while seen.len() < JOBS / 3 {
        let id = tokio::time::timeout(Duration::from_secs(30), completed_rx.recv())
            .await
            .expect("completions flow")
            .expect("the stream goes on");
        seen.insert(id);
    }
    nodes[2].kill9().await;

    // Every job completes: the stream on node 0 shows each completion.
    while seen.len() < JOBS {
        let next = tokio::time::timeout(Duration::from_secs(60), completed_rx.recv()).await;
        let id = next
            .unwrap_or_else(|_| panic!("only {} of {JOBS} completions on the stream", seen.len()))
            .expect("the stream goes on");
        seen.insert(id);
    }
    let expected: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(seen, expected, "the stream shows every job's completion");

    // Exactly once, as the store has it.
    let mut pg = sqlx::PgConnection::connect(&url).await.expect("connect");
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT j.status, \
                (SELECT COUNT(*) FROM tasks t WHERE t.job_id = j.id AND t.status = 'succeeded'), \
                (SELECT COUNT(*) FROM events e WHERE e.job_id = j.id AND e.type = 'job.completed') \
         FROM jobs j",
    )
    .fetch_all(&mut pg)
    .await
    .expect("read the jobs");
    assert_eq!(rows.len(), JOBS);
    for (status, succeeded, completions) in &rows {
        assert_eq!(
            (status.as_str(), *succeeded, *completions),
            ("completed", 1, 1),
            "each job completes once"
        );
    }

    // Each completion reaches the webhook, under one message id per event.
    let mut by_job: HashMap<String, HashSet<String>> = HashMap::new();
    until(
        "every completion delivered",
        Duration::from_secs(30),
        || {
            let log = receiver.log();
            by_job.clear();
            for r in &log {
                let job = r.body["data"]["job_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                by_job.entry(job).or_default().insert(r.msg_id.clone());
            }
            let done = by_job.len() == JOBS;
            async move { done }
        },
    )
    .await;
    for (job, msg_ids) in &by_job {
        assert!(
            expected.contains(job),
            "a delivery for an unknown job {job}"
        );
        assert_eq!(
            msg_ids.len(),
            1,
            "job {job}: one event, one message id: {msg_ids:?}"
        );
    }

    // A rolling restart: node 1 stops cleanly mid-run. Its agents are told
    // to move (`shutdown` naming node 0) and nothing in flight is lost.
    let mut more = Vec::new();
    let jobs: Vec<Value> = (0..JOBS / 3)
        .map(|i| json!({"prompt": format!("after {i}"), "pipeline": [CAPABILITY]}))
        .collect();
    let batch = call(
        &nodes[0],
        Method::POST,
        "/v1/jobs/batch",
        Some(json!({"jobs": jobs})),
    )
    .await;
    for job in batch["jobs"].as_array().expect("jobs") {
        more.push(job["id"].as_str().expect("id").to_owned());
    }
    let mut done_after = 0;
    while done_after < 3 {
        let id = tokio::time::timeout(Duration::from_secs(30), completed_rx.recv())
            .await
            .expect("completions flow")
            .expect("the stream goes on");
        done_after += usize::from(more.contains(&id));
        seen.insert(id);
    }
    nodes[1].terminate().await;
    let all: HashSet<String> = ids.iter().chain(&more).cloned().collect();
    while seen.len() < all.len() {
        let next = tokio::time::timeout(Duration::from_secs(60), completed_rx.recv()).await;
        let id = next
            .unwrap_or_else(|_| {
                panic!("{} of {} completions after the stop", seen.len(), all.len())
            })
            .expect("the stream goes on");
        seen.insert(id);
    }
    assert_eq!(seen, all);
    let bad: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs j WHERE j.status <> 'completed' \
            OR (SELECT COUNT(*) FROM tasks t WHERE t.job_id = j.id AND t.status = 'succeeded') <> 1",
    )
    .fetch_one(&mut pg)
    .await
    .expect("read the jobs");
    assert_eq!(bad, 0, "after the stop, every job completed exactly once");
    // Every agent ends up on node 0, the last one standing.
    let node0 = &nodes[0];
    until(
        "every agent connected to node 0",
        Duration::from_secs(20),
        || async move {
            let now = call(node0, Method::GET, "/v1/agents", None).await;
            now["agents"].as_array().is_some_and(|l| {
                l.iter()
                    .filter(|a| a["session_state"] == "connected")
                    .count()
                    == AGENTS_PER_NODE * 3
            })
        },
    )
    .await;

    for a in &agents {
        a.kill();
    }
    follower.abort();
}
