//! The reference Creator and Validator agents over the wire.

mod mock_hub;

use std::collections::BTreeMap;

use base64::Engine;
use mock_hub::{MockHub, TOKEN};
use serde_json::json;
use switchyard_agent::Verdict;
use switchyard_agent::protocol::{AgentMessage, ItemMessage};
use switchyard_agent::reference::agents::{self, EXTRACT, VALIDATE};

const SAMPLE: &str = include_str!("fixtures/sample-spec.md");

#[tokio::test]
async fn creator_emits_one_item_per_requirement_and_validator_judges_them() {
    let hub = MockHub::start().await;
    let creator = agents::creator(&hub.url, TOKEN, "creator-1")
        .unwrap()
        .spawn();
    let (mut conn, hello) = hub.accept_welcome(vec![]).await;
    assert_eq!(hello.name, "creator-1");
    assert_eq!(hello.capabilities[0].name, EXTRACT);
    creator.wait_connected().await.unwrap();
    let document = json!({
        "file_name": "sample-spec.md",
        "content_type": "text/markdown",
        "content_base64": base64::engine::general_purpose::STANDARD.encode(SAMPLE),
    });
    conn.push(
        1,
        1,
        EXTRACT,
        json!({"prompt": "Extract the requirements", "context": {}, "document": document}),
    )
    .await;
    assert!(matches!(conn.recv().await, AgentMessage::Accept(_)));
    let mut items: Vec<ItemMessage> = Vec::new();
    let complete = loop {
        match conn.recv().await {
            AgentMessage::Item(item) => items.push(item),
            AgentMessage::Complete(c) => break c,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(complete.output, json!({"requirements": 15}));
    assert_eq!(items.len(), 15);
    assert_eq!(
        items[0].data["source"],
        json!({"document": "sample-spec.md", "line": 8})
    );

    // No document: nothing to extract. Bad base64: a fatal failure.
    conn.push(
        2,
        1,
        EXTRACT,
        json!({"prompt": "p", "context": {}, "document": null}),
    )
    .await;
    conn.recv().await;
    let AgentMessage::Complete(c) = conn.recv().await else {
        panic!()
    };
    assert_eq!(c.output, json!({"requirements": 0}));
    conn.push(
        3,
        1,
        EXTRACT,
        json!({"prompt": "p", "document": {"file_name": "x", "content_base64": "***"}}),
    )
    .await;
    conn.recv().await;
    let AgentMessage::Fail(f) = conn.recv().await else {
        panic!()
    };
    assert!(
        !f.retryable
            && f.error
                .starts_with("document.content_base64 is not valid base64"),
        "{f:?}"
    );
    creator.kill();

    let validator = agents::validator(&hub.url, TOKEN, "validator-1")
        .unwrap()
        .spawn();
    let (mut conn, hello) = hub.accept_welcome(vec![]).await;
    assert_eq!(
        (
            hello.capabilities[0].name.as_str(),
            hello.capabilities[0].max_concurrency
        ),
        (VALIDATE, 8)
    );
    validator.wait_connected().await.unwrap();
    let mut verdicts = BTreeMap::new();
    for (n, item) in items.iter().enumerate() {
        let task_id = 100 + n as u128;
        let input =
            json!({"prompt": "p", "context": {}, "item": {"id": item.item_id, "data": item.data}});
        conn.push(task_id, 1, VALIDATE, input).await;
        assert!(matches!(conn.recv().await, AgentMessage::Accept(_)));
        let AgentMessage::Complete(c) = conn.recv().await else {
            panic!()
        };
        assert_eq!(c.output["verdict"], json!(c.verdict));
        assert_eq!(c.output["reason"], json!(c.reason));
        verdicts.insert(
            item.data["source"]["line"].as_u64().unwrap(),
            (c.verdict, c.reason),
        );
    }
    let rejected: Vec<(u64, String)> = verdicts
        .iter()
        .filter(|(_, (v, _))| *v == Verdict::Rejected)
        .map(|(line, (_, reason))| (*line, reason.clone().unwrap()))
        .collect();
    assert_eq!(rejected.len(), 3);
    assert_eq!(
        rejected[0],
        (
            24,
            "too vague: `user-friendly`, `fast` without a number, `etc.`".into()
        )
    );
    assert_eq!(rejected[1].0, 25);
    assert_eq!(
        rejected[2],
        (
            26,
            format!(
                "duplicate: the same requirement as item {}",
                items[0].item_id
            )
        )
    );

    // Not a requirement at all: a fatal failure, not a verdict.
    conn.push(
        999,
        1,
        VALIDATE,
        json!({"item": {"id": "x", "data": {"text": 5}}}),
    )
    .await;
    conn.recv().await;
    let AgentMessage::Fail(f) = conn.recv().await else {
        panic!()
    };
    assert!(
        !f.retryable && f.error.starts_with("item.data is not a requirement"),
        "{f:?}"
    );
    validator.kill();
}
