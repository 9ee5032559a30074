//! Creating, reading and listing jobs.

use std::collections::HashSet;

use serde_json::json;
use switchyard::domain::{CreateJobOutcome, ItemCounts, JobFilter, JobStatus, TaskStatus};
use switchyard::store::{Backend, SchemaStatus, StoreError};
use uuid::Uuid;

use super::{TestDb, create, document, event_types, new_job};

pub async fn create_and_get_round_trip(t: TestDb) {
    let s = &t.store;
    s.ping().await.expect("ping");
    assert_eq!(
        s.schema_status().await.expect("schema"),
        SchemaStatus {
            applied: switchyard::store::migrate::known_version(&switchyard::store::migrate::SQLITE),
            known: switchyard::store::migrate::known_version(&switchyard::store::migrate::SQLITE),
        }
    );
    assert_eq!(s.backend(), t.backend);
    assert!(matches!(t.backend, Backend::Sqlite | Backend::Postgres));

    let mut new = new_job("alice");
    new.labels = vec!["team-b".into(), "gdpr".into(), "team-b".into()];
    new.priority = 7;
    new.document = Some(document());
    new.idempotency_key = Some("key-1".into());
    let id = new.id;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let job = create(s, new.clone()).await;

    assert_eq!(job.id, id);
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.status_reason, None);
    assert_eq!(job.pipeline, new.pipeline);
    assert_eq!(job.prompt, "Extract the requirements");
    assert_eq!(
        job.context,
        json!({"customer": "acme", "nested": {"n": 1, "list": [true, null]}})
    );
    assert_eq!(job.priority, 7);
    assert_eq!(job.labels, vec!["gdpr".to_owned(), "team-b".to_owned()]);
    assert_eq!(job.depends_on, Vec::<Uuid>::new());
    assert_eq!(job.idempotency_key.as_deref(), Some("key-1"));
    assert_eq!(job.created_by, "alice");
    assert_eq!(job.document, Some(document().meta));
    assert_eq!(job.items, None);
    assert!(job.created_at > before && job.created_at == job.updated_at);
    assert_eq!(
        (job.started_at, job.finished_at, job.version),
        (None, None, 1)
    );

    // A read gives back exactly what the create returned.
    let got = s.get_job(id).await.expect("get").expect("found");
    assert_eq!(got, job);
    let doc = s
        .get_document(id)
        .await
        .expect("document")
        .expect("has a document");
    assert_eq!(doc, document());

    let tasks = s.list_tasks(id).await.expect("tasks");
    assert_eq!(tasks.len(), 1);
    let task = &tasks[0];
    assert_eq!(
        (task.job_id, task.stage, task.capability.as_str()),
        (id, 0, "requirements.extract")
    );
    assert_eq!(
        (task.status, task.priority, task.attempt, task.max_attempts),
        (TaskStatus::Pending, 7, 0, 3)
    );
    assert_eq!(
        (
            task.item_id,
            task.agent_id,
            task.lease_until,
            task.error.clone()
        ),
        (None, None, None, None)
    );
    assert_eq!(
        (task.next_run_at, task.created_at),
        (job.created_at, job.created_at)
    );

    assert_eq!(event_types(s, id).await, ["job.created", "task.created"]);
    let events = s.list_events(Some(id), 0, 10).await.expect("events");
    assert_eq!(events[0].payload["job_id"], json!(id));
    assert_eq!(events[0].payload["status"], "queued");
    assert_eq!(events[1].payload["task_id"], json!(task.id));
    assert_eq!(events[1].payload["capability"], "requirements.extract");

    assert_eq!(
        s.item_counts(id).await.expect("counts"),
        ItemCounts::default()
    );
    assert_eq!(s.get_job(Uuid::now_v7()).await.expect("get"), None);
    let plain = create(s, new_job("alice")).await;
    assert_eq!(plain.document, None);
    assert_eq!(s.get_document(plain.id).await.expect("document"), None);
    assert_eq!(
        s.get_job(plain.id).await.expect("get").expect("found"),
        plain
    );
}

pub async fn idempotency_replays_or_refuses(t: TestDb) {
    let s = &t.store;
    let mut first = new_job("alice");
    first.idempotency_key = Some("k".into());
    first.labels = vec!["x".into()];
    let original = create(s, first.clone()).await;

    // Same creator, key and request: the original job, nothing new stored.
    let mut replay = first.clone();
    replay.id = Uuid::now_v7();
    match s.create_job(replay).await.expect("replay") {
        CreateJobOutcome::Existing(job) => assert_eq!(job, original),
        other => panic!("expected Existing, got {other:?}"),
    }

    // Same key, different request.
    let mut changed = first.clone();
    changed.id = Uuid::now_v7();
    changed.request_hash = "hash-2".into();
    match s.create_job(changed).await {
        Err(StoreError::IdempotencyMismatch { key, job_id }) => {
            assert_eq!((key.as_str(), job_id), ("k", original.id));
        }
        other => panic!("expected IdempotencyMismatch, got {other:?}"),
    }

    // Keys are per creator.
    let mut other = first.clone();
    other.id = Uuid::now_v7();
    other.created_by = "bob".into();
    let bobs = create(s, other).await;
    assert_ne!(bobs.id, original.id);

    let page = s
        .list_jobs(&JobFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        page.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        [bobs.id, original.id]
    );
    let all = s.list_events(None, 0, 100).await.expect("events");
    assert_eq!(all.iter().filter(|e| e.kind == "job.created").count(), 2);
}

pub async fn concurrent_identical_creates_store_one_job(t: TestDb) {
    let mut base = new_job("alice");
    base.idempotency_key = Some("same".into());
    let attempts = (0..8).map(|_| {
        let s = t.store.clone();
        let mut job = base.clone();
        job.id = Uuid::now_v7();
        tokio::spawn(async move { s.create_job(job).await })
    });
    let mut created = Vec::new();
    let mut existing = Vec::new();
    for handle in attempts.collect::<Vec<_>>() {
        match handle.await.expect("task").expect("create") {
            CreateJobOutcome::Created(job) => created.push(job.id),
            CreateJobOutcome::Existing(job) => existing.push(job.id),
        }
    }
    assert_eq!(created.len(), 1, "exactly one request stores the job");
    assert_eq!(existing, vec![created[0]; 7]);
    let page = t
        .store
        .list_jobs(&JobFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.jobs.len(), 1);
}

pub async fn unknown_dependencies_store_nothing(t: TestDb) {
    let s = &t.store;
    let dep = create(s, new_job("alice")).await;
    let (missing_a, missing_b) = (Uuid::now_v7(), Uuid::now_v7());
    let mut job = new_job("alice");
    job.depends_on = vec![missing_b, dep.id, missing_a];
    job.document = Some(document());
    job.labels = vec!["l".into()];
    let id = job.id;
    match s.create_job(job).await {
        Err(StoreError::UnknownDependencies(ids)) => assert_eq!(ids, [missing_a, missing_b]),
        other => panic!("expected UnknownDependencies, got {other:?}"),
    }
    assert_eq!(s.get_job(id).await.expect("get"), None);
    assert_eq!(s.get_document(id).await.expect("doc"), None);
    assert_eq!(s.list_tasks(id).await.expect("tasks"), vec![]);
    assert_eq!(
        s.list_events(Some(id), 0, 10).await.expect("events"),
        vec![]
    );
    let page = s
        .list_jobs(&JobFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [dep.id]);
    assert_eq!(s.list_events(None, 0, 100).await.expect("events").len(), 2);
}

pub async fn unfinished_dependency_makes_job_wait(t: TestDb) {
    let s = &t.store;
    let dep = create(s, new_job("alice")).await;
    let mut job = new_job("alice");
    job.depends_on = vec![dep.id, dep.id];
    let waiting = create(s, job).await;
    assert_eq!(waiting.status, JobStatus::Waiting);
    assert_eq!(waiting.depends_on, [dep.id]);
    assert_eq!(
        s.get_job(waiting.id).await.expect("get").expect("found"),
        waiting
    );
    assert_eq!(s.list_tasks(waiting.id).await.expect("tasks"), vec![]);
    assert_eq!(event_types(s, waiting.id).await, ["job.created"]);
    let created = &s
        .list_events(Some(waiting.id), 0, 10)
        .await
        .expect("events")[0];
    assert_eq!(created.payload["status"], "waiting");

    // Once the dependency completed, new dependents are queued at once.
    s.transition_job(dep.id, &[JobStatus::Queued], JobStatus::Running, None)
        .await
        .expect("start");
    s.transition_job(dep.id, &[JobStatus::Running], JobStatus::Completed, None)
        .await
        .expect("complete");
    let mut later = new_job("alice");
    later.depends_on = vec![dep.id];
    let queued = create(s, later).await;
    assert_eq!(queued.status, JobStatus::Queued);
    assert_eq!(s.list_tasks(queued.id).await.expect("tasks").len(), 1);

    // Releasing the waiting job creates its first task.
    let released = s
        .transition_job(waiting.id, &[JobStatus::Waiting], JobStatus::Queued, None)
        .await
        .expect("release");
    assert_eq!((released.status, released.version), (JobStatus::Queued, 2));
    let tasks = s.list_tasks(waiting.id).await.expect("tasks");
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        (tasks[0].stage, tasks[0].status, tasks[0].max_attempts),
        (0, TaskStatus::Pending, 3)
    );
    assert_eq!(
        event_types(s, waiting.id).await,
        ["job.created", "job.queued", "task.created"]
    );
}

pub async fn list_jobs_filters_and_pages(t: TestDb) {
    let s = &t.store;
    let mut ids = Vec::new();
    for i in 0..25 {
        let mut job = new_job("alice");
        job.labels = if i % 2 == 1 {
            vec!["all".into(), "odd".into()]
        } else {
            vec!["all".into()]
        };
        ids.push(create(s, job).await.id);
        if i % 5 == 0 {
            s.cancel_job(ids[i], "test".into()).await.expect("cancel");
        }
    }
    let newest_first: Vec<Uuid> = ids.iter().rev().copied().collect();

    let collect = |filter: JobFilter| async move {
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        let mut filter = filter;
        loop {
            let page = s.list_jobs(&filter).await.expect("list");
            sizes.push(page.jobs.len());
            seen.extend(page.jobs.iter().map(|j| (j.id, j.status, j.labels.clone())));
            match page.next {
                Some(next) => filter.before = Some(next),
                None => return (seen, sizes),
            }
        }
    };

    let (all, sizes) = collect(JobFilter {
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(all.iter().map(|j| j.0).collect::<Vec<_>>(), newest_first);
    assert_eq!(
        all.iter().map(|j| j.0).collect::<HashSet<_>>().len(),
        25,
        "no duplicates"
    );
    for (id, _, labels) in &all {
        let i = ids.iter().position(|x| x == id).expect("known id");
        let expected: Vec<&str> = if i % 2 == 1 {
            vec!["all", "odd"]
        } else {
            vec!["all"]
        };
        assert_eq!(labels, &expected);
    }

    let status = Some(JobStatus::Cancelled);
    let (cancelled, sizes) = collect(JobFilter {
        status,
        limit: 2,
        ..Default::default()
    })
    .await;
    assert_eq!(sizes, [2, 2, 1]);
    let expected: Vec<Uuid> = newest_first
        .iter()
        .copied()
        .filter(|id| ids.iter().position(|x| x == id).is_some_and(|i| i % 5 == 0))
        .collect();
    assert_eq!(cancelled.iter().map(|j| j.0).collect::<Vec<_>>(), expected);
    assert!(cancelled.iter().all(|j| j.1 == JobStatus::Cancelled));

    let label = Some("odd".to_owned());
    let (odd, sizes) = collect(JobFilter {
        label: label.clone(),
        limit: 5,
        ..Default::default()
    })
    .await;
    assert_eq!(sizes, [5, 5, 2]);
    let expected: Vec<Uuid> = newest_first
        .iter()
        .copied()
        .filter(|id| ids.iter().position(|x| x == id).is_some_and(|i| i % 2 == 1))
        .collect();
    assert_eq!(odd.iter().map(|j| j.0).collect::<Vec<_>>(), expected);

    // Both filters: odd and cancelled are i = 5, 15.
    let (both, _) = collect(JobFilter {
        status,
        label,
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(
        both.iter().map(|j| j.0).collect::<Vec<_>>(),
        [ids[15], ids[5]]
    );

    // A page that ends exactly at the last job has no next.
    let page = s
        .list_jobs(&JobFilter {
            limit: 25,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!((page.jobs.len(), page.next), (25, None));
    let page = s
        .list_jobs(&JobFilter {
            before: Some(ids[3]),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        page.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        [ids[2], ids[1], ids[0]]
    );
    let page = s
        .list_jobs(&JobFilter {
            label: Some("none".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!((page.jobs.len(), page.next), (0, None));
}
