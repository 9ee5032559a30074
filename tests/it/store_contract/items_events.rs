//! Items (insert, counts, status filter, paging) and the event log.

use serde_json::json;
use switchyard::domain::{ItemCounts, ItemStatus, JobStatus, NewItem};
use uuid::Uuid;

use super::{TestDb, create, new_job};

pub async fn items_count_filter_and_page(t: TestDb) {
    let s = &t.store;
    let job = create(s, new_job("alice")).await;
    let other = create(s, new_job("alice")).await;
    let task = s.list_tasks(job.id).await.expect("tasks")[0].id;
    let new: Vec<NewItem> = (0..30)
        .map(|n| NewItem {
            id: Uuid::now_v7(),
            job_id: job.id,
            source_task_id: Some(task),
            stage: 0,
            data: json!({"text": format!("requirement {n}"), "tags": ["gdpr"], "n": n}),
        })
        .collect();
    let ids: Vec<Uuid> = new.iter().map(|i| i.id).collect();
    let items = s.insert_items(new).await.expect("insert");
    assert_eq!(items.len(), 30);
    assert_eq!(items.iter().map(|i| i.id).collect::<Vec<_>>(), ids);
    let first = &items[0];
    assert_eq!(
        (first.job_id, first.source_task_id, first.stage),
        (job.id, Some(task), 0)
    );
    assert_eq!(
        (
            first.status,
            first.retry_count,
            first.rejection_reason.clone()
        ),
        (ItemStatus::Pending, 0, None)
    );
    assert_eq!(
        first.data,
        json!({"text": "requirement 0", "tags": ["gdpr"], "n": 0})
    );
    s.insert_items(vec![NewItem {
        id: Uuid::now_v7(),
        job_id: other.id,
        source_task_id: None,
        stage: 1,
        data: json!({}),
    }])
    .await
    .expect("insert other");
    assert_eq!(
        s.insert_items(vec![]).await.expect("insert nothing"),
        vec![]
    );

    // All pages in creation order, nothing lost or repeated.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .list_items(job.id, None, None, after, 7)
            .await
            .expect("page");
        seen.extend(page.iter().cloned());
        match page.last() {
            Some(last) if page.len() == 7 => after = Some(last.id),
            _ => break,
        }
    }
    assert_eq!(
        seen, items,
        "reads give back exactly what the insert returned"
    );

    // Move some items on (no store method does this yet) and filter by status.
    for id in &ids[0..5] {
        t.exec_text_id(
            "UPDATE items SET status = $1 WHERE id = $2",
            "integrated",
            *id,
        )
        .await;
    }
    for id in &ids[5..8] {
        t.exec_text_id(
            "UPDATE items SET status = $1 WHERE id = $2",
            "rejected",
            *id,
        )
        .await;
    }
    let counts = s.item_counts(job.id).await.expect("counts");
    let expected = ItemCounts {
        total: 30,
        pending: 22,
        integrated: 5,
        rejected: 3,
        ..Default::default()
    };
    assert_eq!(counts, expected);
    let integrated = s
        .list_items(job.id, Some(ItemStatus::Integrated), None, None, 100)
        .await
        .expect("list");
    assert_eq!(
        integrated.iter().map(|i| i.id).collect::<Vec<_>>(),
        ids[0..5]
    );
    assert!(
        integrated
            .iter()
            .all(|i| i.status == ItemStatus::Integrated)
    );
    let page = s
        .list_items(job.id, Some(ItemStatus::Integrated), None, Some(ids[1]), 2)
        .await
        .expect("list");
    assert_eq!(page.iter().map(|i| i.id).collect::<Vec<_>>(), ids[2..4]);
    let pending = s
        .list_items(job.id, Some(ItemStatus::Pending), None, None, 100)
        .await
        .expect("list");
    assert_eq!(pending.iter().map(|i| i.id).collect::<Vec<_>>(), ids[8..]);
    assert_eq!(
        s.list_items(job.id, Some(ItemStatus::Failed), None, None, 100)
            .await
            .expect("list"),
        vec![]
    );

    let events = s.list_events(Some(job.id), 0, 1000).await.expect("events");
    let created: Vec<_> = events.iter().filter(|e| e.kind == "item.created").collect();
    assert_eq!(created.len(), 30);
    assert_eq!(
        created
            .iter()
            .map(|e| e.payload["item_id"].clone())
            .collect::<Vec<_>>(),
        ids.iter().map(|i| json!(i)).collect::<Vec<_>>()
    );
    assert_eq!(created[0].payload["source_task_id"], json!(task));
}

pub async fn events_are_ordered_and_typed(t: TestDb) {
    let s = &t.store;
    let a = create(s, new_job("alice")).await;
    let b = create(s, new_job("bob")).await;
    s.transition_job(a.id, &[JobStatus::Queued], JobStatus::Running, None)
        .await
        .expect("start");
    s.cancel_job(b.id, "stop".into()).await.expect("cancel");
    s.transition_job(
        a.id,
        &[JobStatus::Running],
        JobStatus::Completed,
        Some("done".into()),
    )
    .await
    .expect("complete");

    let all = s.list_events(None, 0, 1000).await.expect("events");
    let kinds: Vec<(&str, Option<Uuid>)> =
        all.iter().map(|e| (e.kind.as_str(), e.job_id)).collect();
    assert_eq!(
        kinds,
        [
            ("job.created", Some(a.id)),
            ("task.created", Some(a.id)),
            ("job.created", Some(b.id)),
            ("task.created", Some(b.id)),
            ("job.started", Some(a.id)),
            ("job.cancelled", Some(b.id)),
            ("task.cancelled", Some(b.id)),
            ("job.completed", Some(a.id)),
        ]
    );
    assert!(
        all.windows(2).all(|w| w[0].seq < w[1].seq),
        "strictly increasing seq"
    );
    assert!(all.windows(2).all(|w| w[0].created_at <= w[1].created_at));
    assert_eq!(
        all[7].payload,
        json!({"job_id": a.id, "status": "completed", "reason": "done"})
    );

    // Cursor and limit.
    let after_second = s.list_events(None, all[1].seq, 3).await.expect("events");
    assert_eq!(after_second, all[2..5]);
    let rest = s
        .list_events(None, after_second[2].seq, 100)
        .await
        .expect("events");
    assert_eq!(rest, all[5..]);
    assert_eq!(
        s.list_events(None, all[7].seq, 100).await.expect("events"),
        vec![]
    );

    // One job only.
    let of_a = s.list_events(Some(a.id), 0, 100).await.expect("events");
    let expected: Vec<_> = all
        .iter()
        .filter(|e| e.job_id == Some(a.id))
        .cloned()
        .collect();
    assert_eq!(of_a, expected);
    let of_a_later = s
        .list_events(Some(a.id), of_a[1].seq, 1)
        .await
        .expect("events");
    assert_eq!(of_a_later, of_a[2..3]);
}
