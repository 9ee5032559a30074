//! Re-runs and comparing two versions of a job.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::auth::Role;
use switchyard_agent::TaskError;
use switchyard_tests::{TestApp, backend_tests};

use super::support::{agent, create, get, post};

backend_tests!(a_rerun_repeats_the_input_and_compare_lists_the_differences);

async fn a_rerun_repeats_the_input_and_compare_lists_the_differences(app: TestApp) {
    // The first run emits alpha, beta, gamma and a name-only item; the
    // second the same alpha, beta with one more tag, delta, and the same
    // name-only item.
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let emitter = agent(&app, "emitter", "test.emit", move |ctx, _input: Value| {
        let run = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            let items = if run == 0 {
                vec![
                    json!({"text": "Alpha must hold.", "tags": ["a"]}),
                    json!({"text": "Beta must hold.", "tags": ["b"]}),
                    json!({"text": "Gamma must hold."}),
                    json!({"name": "only-name", "kind": "x"}),
                ]
            } else {
                vec![
                    json!({"text": "Alpha must hold.", "tags": ["a"]}),
                    json!({"text": "Beta must hold.", "tags": ["b", "c"]}),
                    json!({"text": "Delta must hold."}),
                    json!({"name": "only-name", "kind": "x"}),
                ]
            };
            for item in items {
                ctx.emit_item(item).await;
            }
            Ok::<Value, TaskError>(json!({}))
        }
    });
    let checker = agent(&app, "checker", "test.check", |_ctx, _input: Value| async {
        Ok::<Value, TaskError>(json!({}))
    });
    let original = create(
        &app,
        &["test.emit", "test.check"],
        json!({"labels": ["v1"], "priority": 7, "context": {"k": 1}}),
    )
    .await;
    app.wait_for_job(&original, "completed", Duration::from_secs(15))
        .await;

    let (status, rerun) = post(&app, Role::Operator, &format!("/v1/jobs/{original}/rerun")).await;
    assert_eq!(status, 201, "{rerun}");
    assert_eq!(rerun["rerun_of"], original.as_str());
    assert_ne!(rerun["id"], original.as_str());
    assert_eq!(rerun["status"], "queued");
    assert_eq!(rerun["prompt"], "test");
    assert_eq!(rerun["pipeline"], json!(["test.emit", "test.check"]));
    assert_eq!(rerun["labels"], json!(["v1"]));
    assert_eq!(rerun["priority"], 7);
    assert_eq!(rerun["context"], json!({"k": 1}));
    assert_eq!(rerun["created_by"], "operator");
    let second = rerun["id"].as_str().unwrap().to_owned();
    app.wait_for_job(&second, "completed", Duration::from_secs(15))
        .await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let (_, report) = get(&app, &format!("/v1/jobs/{second}/report")).await;
    assert_eq!(report["summary"]["rerun_of"], original.as_str());

    let (status, cmp) = get(&app, &format!("/v1/jobs/{original}/compare/{second}")).await;
    assert_eq!(status, 200, "{cmp}");
    assert_eq!(
        cmp["summary"],
        json!({"added": 1, "removed": 1, "changed": 1, "unchanged": 2})
    );
    assert_eq!(cmp["added"][0]["text"], "Delta must hold.");
    assert_eq!(cmp["removed"][0]["text"], "Gamma must hold.");
    assert_eq!(cmp["changed"][0]["text"], "Beta must hold.");
    assert_eq!(
        cmp["changed"][0]["changes"],
        json!([{"field": "data.tags", "before": ["b"], "after": ["b", "c"]}])
    );
    assert_eq!(cmp["truncated"], false);

    // The other way round, added and removed swap.
    let (_, back) = get(&app, &format!("/v1/jobs/{second}/compare/{original}")).await;
    assert_eq!(back["added"][0]["text"], "Gamma must hold.");
    assert_eq!(back["removed"][0]["text"], "Delta must hold.");

    let missing = uuid::Uuid::now_v7();
    let (status, _) = post(&app, Role::Operator, &format!("/v1/jobs/{missing}/rerun")).await;
    assert_eq!(status, 404);
    emitter.kill();
    checker.kill();
}
