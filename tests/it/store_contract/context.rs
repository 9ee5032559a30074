//! Listing jobs by their context (`GET /v1/jobs?context.customer=acme`).

use serde_json::{Value, json};
use switchyard::domain::{ContextFilter, JobFilter};
use uuid::Uuid;

use super::{TestDb, create, new_job};

/// The ids, newest first, of the jobs matching every `(key, value)`.
async fn matching(t: &TestDb, filters: &[(&str, &str)]) -> Vec<Uuid> {
    let filter = JobFilter {
        context: filters
            .iter()
            .map(|(k, v)| ContextFilter::parse(k, v).expect("valid filter"))
            .collect(),
        limit: 100,
        ..Default::default()
    };
    let page = t.store.list_jobs(&filter).await.expect("list");
    page.jobs.iter().map(|j| j.id).collect()
}

pub async fn list_jobs_by_context(t: TestDb) {
    let contexts: [Value; 6] = [
        json!({"customer": "acme", "order": {"id": 42, "rush": true}, "region": "eu"}),
        json!({"customer": "acme", "order": {"id": "42"}, "region": "us"}),
        json!({"customer": "globex", "order": {"id": 7, "rush": false}, "ratio": 0.5}),
        json!({"customer": "Zoë \"Z\" Ltd", "order": {"id": [42]}, "tags": ["acme"]}),
        json!({"customer": {"name": "acme"}, "order": null}),
        json!({}),
    ];
    let mut ids = Vec::new();
    for context in &contexts {
        let mut job = new_job("alice");
        job.context = context.clone();
        ids.push(create(&t.store, job).await.id);
    }
    let pick = |idx: &[usize]| idx.iter().rev().map(|&i| ids[i]).collect::<Vec<_>>();

    // Strings match strings exactly; an object or array never equals a value.
    assert_eq!(matching(&t, &[("customer", "acme")]).await, pick(&[0, 1]));
    assert_eq!(matching(&t, &[("customer", "ACME")]).await, pick(&[]));
    assert_eq!(
        matching(&t, &[("customer", "Zoë \"Z\" Ltd")]).await,
        pick(&[3])
    );
    assert_eq!(matching(&t, &[("tags", "acme")]).await, pick(&[]));
    // Nested keys; a number matches the number and the same text.
    assert_eq!(matching(&t, &[("order.id", "42")]).await, pick(&[0, 1]));
    assert_eq!(matching(&t, &[("order.id", "7")]).await, pick(&[2]));
    assert_eq!(matching(&t, &[("ratio", "0.5")]).await, pick(&[2]));
    // Booleans.
    assert_eq!(matching(&t, &[("order.rush", "true")]).await, pick(&[0]));
    assert_eq!(matching(&t, &[("order.rush", "false")]).await, pick(&[2]));
    // Every filter must match.
    assert_eq!(
        matching(&t, &[("customer", "acme"), ("region", "us")]).await,
        pick(&[1])
    );
    assert_eq!(
        matching(&t, &[("customer", "acme"), ("order.rush", "false")]).await,
        pick(&[])
    );
    // Missing keys and paths through non-objects match nothing.
    assert_eq!(matching(&t, &[("missing", "x")]).await, pick(&[]));
    assert_eq!(matching(&t, &[("region.x", "eu")]).await, pick(&[]));
    assert_eq!(matching(&t, &[("customer.name", "acme")]).await, pick(&[4]));
    // No filter: all six.
    assert_eq!(matching(&t, &[]).await, pick(&[0, 1, 2, 3, 4, 5]));
}
