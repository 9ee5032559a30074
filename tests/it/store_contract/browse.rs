//! What viewers page through: job counts, text and date filters, a job's
//! events newest first, and one task with its attempts.

use chrono::{Duration, Utc};
use serde_json::json;
use switchyard::domain::{AttemptOutcome, JobFilter, JobStatus, NewItem, attempts_of};
use switchyard::store::events::EventFilter;
use uuid::Uuid;

use super::dispatch::{agent, completion, first_task, run};
use super::failures::failure;
use super::{TestDb, create, new_job};

pub async fn counts_and_text_and_date_filters(t: TestDb) {
    let s = &t.store;
    let empty = s.job_counts().await.expect("counts");
    assert_eq!(empty.len(), JobStatus::ALL.len(), "every status is listed");
    assert!(empty.iter().all(|(_, n)| *n == 0));

    let mut prompts = Vec::new();
    for (i, prompt) in [
        "Extract the GDPR duties",
        "Check the Invoice",
        "gdpr audit, part 2",
    ]
    .into_iter()
    .enumerate()
    {
        let mut new = new_job("alice");
        new.prompt = prompt.into();
        let job = create(s, new).await;
        if i == 1 {
            s.cancel_job(job.id, "test".into()).await.expect("cancel");
        }
        prompts.push(job);
    }
    let counts = s.job_counts().await.expect("counts");
    let count = |status| counts.iter().find(|(s, _)| *s == status).map(|(_, n)| *n);
    assert_eq!(count(JobStatus::Queued), Some(2));
    assert_eq!(count(JobStatus::Cancelled), Some(1));
    assert_eq!(count(JobStatus::Running), Some(0));

    let list = |filter: JobFilter| async move {
        s.list_jobs(&JobFilter {
            limit: 50,
            ..filter
        })
        .await
        .expect("list")
        .jobs
        .into_iter()
        .map(|j| j.prompt)
        .collect::<Vec<_>>()
    };
    // Ignoring ASCII case, newest first.
    assert_eq!(
        list(JobFilter {
            text: Some("GDPR".into()),
            ..Default::default()
        })
        .await,
        ["gdpr audit, part 2", "Extract the GDPR duties"]
    );
    assert_eq!(
        list(JobFilter {
            text: Some("nothing like it".into()),
            ..Default::default()
        })
        .await,
        Vec::<String>::new()
    );
    let second = prompts[1].created_at;
    assert_eq!(
        list(JobFilter {
            created_after: Some(second),
            ..Default::default()
        })
        .await,
        ["gdpr audit, part 2", "Check the Invoice"],
        "created_after includes its instant"
    );
    assert_eq!(
        list(JobFilter {
            created_before: Some(second),
            ..Default::default()
        })
        .await,
        ["Extract the GDPR duties"],
        "created_before excludes its instant"
    );
    assert_eq!(
        list(JobFilter {
            created_after: Some(Utc::now() + Duration::hours(1)),
            ..Default::default()
        })
        .await,
        Vec::<String>::new()
    );

    // Items by text in their data, with status and paging.
    let job = &prompts[0];
    let task = first_task(s, job.id).await.id;
    let new: Vec<NewItem> = (0..25)
        .map(|n| NewItem {
            id: Uuid::now_v7(),
            job_id: job.id,
            source_task_id: Some(task),
            stage: 0,
            data: json!({"text": format!("Requirement {n}: keep logs"), "name": format!("R-{n}")}),
        })
        .collect();
    let ids: Vec<Uuid> = new.iter().map(|i| i.id).collect();
    s.insert_items(new).await.expect("insert");
    let found = s
        .list_items(job.id, None, Some("requirement 1"), None, 100)
        .await
        .expect("search");
    let want: Vec<Uuid> = [1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
        .iter()
        .map(|n| ids[*n])
        .collect();
    assert_eq!(found.iter().map(|i| i.id).collect::<Vec<_>>(), want);
    let page = s
        .list_items(job.id, None, Some("REQUIREMENT 1"), Some(want[2]), 3)
        .await
        .expect("page");
    assert_eq!(page.iter().map(|i| i.id).collect::<Vec<_>>(), want[3..6]);
    // Only ASCII letters fold, on every store.
    s.insert_items(vec![NewItem {
        id: Uuid::now_v7(),
        job_id: job.id,
        source_task_id: Some(task),
        stage: 0,
        data: json!({"text": "Buchungen dürfen nachträglich nicht geändert werden"}),
    }])
    .await
    .expect("insert");
    let hits = |q: &'static str| async move {
        s.list_items(job.id, None, Some(q), None, 100)
            .await
            .expect("search")
            .len()
    };
    assert_eq!(hits("BUCHUNGEN DüRFEN").await, 1);
    assert_eq!(hits("nachträglich").await, 1);
    assert_eq!(
        hits("NACHTRÄGLICH").await,
        0,
        "non-ASCII letters match exactly"
    );
    assert!(
        s.list_items(job.id, None, Some("100%_"), None, 100)
            .await
            .expect("search")
            .is_empty(),
        "LIKE wildcards are plain text"
    );
}

pub async fn history_pages_newest_first_and_tasks_show_attempts(t: TestDb) {
    let s = &t.store;
    let (a, b) = (agent(s, "a").await, agent(s, "b").await);
    let job = create(s, new_job("alice")).await;
    let other = create(s, new_job("bob")).await;
    let task = first_task(s, job.id).await;
    // Attempt 1 fails and will be retried; attempt 2 succeeds on another agent.
    let running = run(s, &task, a).await;
    s.fail_task(failure(&running, Some(a), true))
        .await
        .expect("fail");
    let pending = first_task(s, job.id).await;
    let running = run(s, &pending, b).await;
    s.complete_task(completion(&running, b, &[]))
        .await
        .expect("complete");

    let detail = s.task_detail(task.id).await.expect("read").expect("found");
    assert_eq!(detail.task.id, task.id);
    assert!(
        detail
            .events
            .iter()
            .all(|e| e.payload["task_id"] == json!(task.id))
    );
    assert!(detail.events.windows(2).all(|w| w[0].seq < w[1].seq));
    let usage = detail.usage.clone().expect("usage stored with the result");
    assert_eq!(usage["tokens_in"], 10);
    let attempts = attempts_of(&detail.events, detail.usage);
    let summary: Vec<_> = attempts
        .iter()
        .map(|x| (x.attempt, x.agent_id, x.outcome, x.error.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                1,
                Some(a),
                AttemptOutcome::Retrying,
                Some("boom".to_owned())
            ),
            (2, Some(b), AttemptOutcome::Succeeded, None)
        ]
    );
    assert!(
        attempts
            .iter()
            .all(|x| x.assigned_at.is_some() && x.started_at.is_some() && x.finished_at.is_some())
    );
    assert!(s.task_detail(Uuid::now_v7()).await.expect("read").is_none());
    assert_eq!(
        s.get_task(task.id).await.expect("read").map(|t| t.id),
        Some(task.id)
    );
    // A stream's replay of one task finds the same events.
    let replay = s
        .list_events_matching(
            &EventFilter {
                job_id: Some(job.id),
                task_id: Some(task.id),
                ..Default::default()
            },
            0,
            100,
        )
        .await
        .expect("replay");
    assert_eq!(
        replay.iter().map(|e| e.seq).collect::<Vec<_>>(),
        detail.events.iter().map(|e| e.seq).collect::<Vec<_>>()
    );

    // The job's events newest first, in pages, none lost or repeated.
    let all = s.list_events(Some(job.id), 0, 1000).await.expect("events");
    assert!(all.len() > 6, "{all:?}");
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = s.job_events_before(job.id, before, 4).await.expect("page");
        assert!(page.iter().all(|e| e.job_id == Some(job.id)));
        seen.extend(page.iter().map(|e| e.seq));
        match page.last() {
            Some(last) if page.len() == 4 => before = Some(last.seq),
            _ => break,
        }
    }
    let mut want: Vec<i64> = all.iter().map(|e| e.seq).collect();
    want.reverse();
    assert_eq!(seen, want);
    assert_eq!(
        s.job_events_before(other.id, Some(1), 10)
            .await
            .expect("none"),
        vec![]
    );
}
