//! Job transitions, cancellation, durability and schema versions.

use serde_json::json;
use switchyard::domain::{JobFilter, JobStatus, NewItem, TaskStatus};
use switchyard::store::{self, StoreError};
use uuid::Uuid;

use super::{TestDb, conflict, create, document, event_types, new_job};

pub async fn cancel_cancels_tasks_and_appends_events(t: TestDb) {
    let s = &t.store;
    let job = create(s, new_job("alice")).await;
    let task_id = s.list_tasks(job.id).await.expect("tasks")[0].id;

    let (cancelled, task_ids) = s
        .cancel_job(job.id, "no longer needed".into())
        .await
        .expect("cancel");
    assert_eq!(task_ids, [task_id]);
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert_eq!(cancelled.status_reason.as_deref(), Some("no longer needed"));
    assert_eq!(cancelled.version, 2);
    assert_eq!(cancelled.started_at, None);
    assert!(cancelled.finished_at.is_some_and(|f| f >= job.created_at));
    assert_eq!(Some(cancelled.updated_at), cancelled.finished_at);
    assert_eq!(
        s.get_job(job.id).await.expect("get").expect("found"),
        cancelled
    );
    let tasks = s.list_tasks(job.id).await.expect("tasks");
    assert_eq!(
        tasks.iter().map(|t| t.status).collect::<Vec<_>>(),
        [TaskStatus::Cancelled]
    );

    assert_eq!(
        event_types(s, job.id).await,
        [
            "job.created",
            "task.created",
            "job.cancelled",
            "task.cancelled"
        ]
    );
    let events = s.list_events(Some(job.id), 0, 10).await.expect("events");
    assert_eq!(
        events[2].payload,
        json!({"job_id": job.id, "status": "cancelled", "reason": "no longer needed"})
    );
    assert_eq!(events[3].payload["task_id"], json!(task_id));

    let message = conflict(s.cancel_job(job.id, "again".into()).await);
    assert_eq!(
        message,
        format!(
            "job {} is already cancelled; only waiting, queued or running jobs can be cancelled",
            job.id
        )
    );
    assert_eq!(
        event_types(s, job.id).await.len(),
        4,
        "a refused cancel appends nothing"
    );
    assert!(matches!(
        s.cancel_job(Uuid::now_v7(), "x".into()).await,
        Err(StoreError::NotFound("job"))
    ));

    // A waiting job has no task to cancel.
    let mut dependent = new_job("alice");
    dependent.depends_on = vec![create(s, new_job("alice")).await.id];
    let dependent = create(s, dependent).await;
    let (job, tasks) = s
        .cancel_job(dependent.id, "stop".into())
        .await
        .expect("cancel waiting");
    assert_eq!((job.status, tasks), (JobStatus::Cancelled, vec![]));
    assert_eq!(
        event_types(s, dependent.id).await,
        ["job.created", "job.cancelled"]
    );
}

pub async fn transition_sets_times_and_names_conflicts(t: TestDb) {
    let s = &t.store;
    let job = create(s, new_job("alice")).await;
    let running = s
        .transition_job(job.id, &[JobStatus::Queued], JobStatus::Running, None)
        .await
        .expect("start");
    assert_eq!(
        (running.status, running.version, running.finished_at),
        (JobStatus::Running, 2, None)
    );
    assert_eq!(running.started_at, Some(running.updated_at));

    let message = conflict(
        s.transition_job(job.id, &[JobStatus::Queued], JobStatus::Running, None)
            .await,
    );
    assert_eq!(
        message,
        format!(
            "job {} is running; only queued jobs can become running",
            job.id
        )
    );
    let message = conflict(
        s.transition_job(
            job.id,
            &[JobStatus::Waiting, JobStatus::Queued],
            JobStatus::Cancelled,
            None,
        )
        .await,
    );
    assert_eq!(
        message,
        format!(
            "job {} is running; only waiting or queued jobs can become cancelled",
            job.id
        )
    );

    let failed = s
        .transition_job(
            job.id,
            &[JobStatus::Running],
            JobStatus::Failed,
            Some("stage 1 gave up".into()),
        )
        .await
        .expect("fail");
    assert_eq!((failed.status, failed.version), (JobStatus::Failed, 3));
    assert_eq!(failed.status_reason.as_deref(), Some("stage 1 gave up"));
    assert_eq!(failed.started_at, running.started_at, "started_at is kept");
    assert_eq!(failed.finished_at, Some(failed.updated_at));
    assert_eq!(
        s.get_job(job.id).await.expect("get").expect("found"),
        failed
    );
    assert_eq!(
        event_types(s, job.id).await,
        ["job.created", "task.created", "job.started", "job.failed"]
    );
    let events = s.list_events(Some(job.id), 0, 10).await.expect("events");
    assert_eq!(
        events[3].payload,
        json!({"job_id": job.id, "status": "failed", "reason": "stage 1 gave up"})
    );

    let message = conflict(s.cancel_job(job.id, "late".into()).await);
    assert!(message.contains("is already failed"), "{message}");
    let missing = s
        .transition_job(
            Uuid::now_v7(),
            &[JobStatus::Queued],
            JobStatus::Running,
            None,
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound("job"))),
        "{missing:?}"
    );
    let other = create(s, new_job("alice")).await;
    conflict(
        s.transition_job(other.id, &[JobStatus::Queued], JobStatus::Waiting, None)
            .await,
    );
    assert_eq!(
        s.get_job(other.id)
            .await
            .expect("get")
            .expect("found")
            .version,
        1
    );
}

pub async fn everything_survives_close_and_reopen(mut t: TestDb) {
    let mut with_doc = new_job("alice");
    with_doc.document = Some(document());
    with_doc.labels = vec!["keep".into()];
    let a = create(&t.store, with_doc).await;
    let b = create(&t.store, new_job("bob")).await;
    let mut dependent = new_job("carol");
    dependent.depends_on = vec![a.id, b.id];
    let c = create(&t.store, dependent).await;
    let (b, _) = t
        .store
        .cancel_job(b.id, "gone".into())
        .await
        .expect("cancel");
    // Cancelling `b` failed `c`, which waited on it.
    let c = t.store.get_job(c.id).await.expect("get").expect("found");
    assert_eq!(c.status, JobStatus::Failed);
    let items: Vec<NewItem> = (0..3)
        .map(|n| NewItem {
            id: Uuid::now_v7(),
            job_id: a.id,
            source_task_id: None,
            stage: 0,
            data: json!({"n": n}),
        })
        .collect();
    let items = t.store.insert_items(items).await.expect("items");
    let events = t.store.list_events(None, 0, 1000).await.expect("events");
    let tasks = t.store.list_tasks(a.id).await.expect("tasks");

    t.reopen().await;

    let s = &t.store;
    for job in [&a, &b, &c] {
        assert_eq!(s.get_job(job.id).await.expect("get").as_ref(), Some(job));
    }
    assert_eq!(s.get_document(a.id).await.expect("doc"), Some(document()));
    assert_eq!(
        s.list_items(a.id, None, None, None, 10)
            .await
            .expect("items"),
        items
    );
    assert_eq!(s.list_tasks(a.id).await.expect("tasks"), tasks);
    assert_eq!(s.list_events(None, 0, 1000).await.expect("events"), events);
    let page = s
        .list_jobs(&JobFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.jobs, vec![c.clone(), b.clone(), a.clone()]);

    // The sequence carries on after the last event.
    let last = events.last().expect("events").seq;
    s.transition_job(a.id, &[JobStatus::Queued], JobStatus::Running, None)
        .await
        .expect("start");
    let new = s.list_events(None, last, 10).await.expect("events");
    assert_eq!(new.len(), 1);
    assert!(new[0].seq > last);
}

pub async fn newer_schema_is_refused(mut t: TestDb) {
    create(&t.store, new_job("alice")).await;
    t.store.close().await;
    t.record_future_migration(9999).await;
    match store::open(&t.url, 2).await {
        Err(StoreError::SchemaTooNew { applied, known }) => assert_eq!(
            (applied, known),
            (
                9999,
                switchyard::store::migrate::known_version(&switchyard::store::migrate::SQLITE)
            )
        ),
        Err(other) => panic!("expected SchemaTooNew, got {other}"),
        Ok(_) => panic!("expected SchemaTooNew, got a store"),
    }
    let message = StoreError::SchemaTooNew {
        applied: 9999,
        known: 2,
    }
    .to_string();
    assert!(
        message.contains("version 9999") && message.contains("up to version 2"),
        "{message}"
    );
    // A current schema opens fine again once the row is gone.
    t.exec("DELETE FROM _sqlx_migrations WHERE version = 9999")
        .await;
    t.reopen().await;
    assert_eq!(
        t.store.schema_status().await.expect("schema").applied,
        switchyard::store::migrate::known_version(&switchyard::store::migrate::SQLITE)
    );
}
