//! The jobs API end to end over real HTTP, on both backends.

use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use switchyard::auth::Role;
use switchyard::domain::{JobStatus, NewItem};
use switchyard_tests::app::json;
use switchyard_tests::{TestApp, backend_tests};
use uuid::Uuid;

backend_tests!(
    create_get_list_and_cancel,
    multipart_document_round_trips_byte_for_byte,
    json_base64_document_round_trips,
    list_filters_and_cursor_paging,
    items_by_status_with_counts,
    idempotency_key_replays_or_conflicts,
    dependencies_wait_or_are_refused,
    concurrent_cancels_have_exactly_one_winner,
    cancel_racing_a_status_change_has_one_winner,
    restart_keeps_every_accepted_job,
    health_ready_metrics_openapi,
);

async fn create_get_list_and_cancel(app: TestApp) {
    let job = app
        .create_job(json!({"prompt": "Extract the requirements", "priority": 7, "labels": ["team-a", "gdpr"], "context": {"lang": "de"}}))
        .await;
    assert_eq!(job["status"], "queued");
    assert_eq!(job["priority"], 7);
    assert_eq!(
        job["pipeline"],
        json!(["requirements.extract", "requirements.validate"])
    );
    assert_eq!(job["labels"], json!(["gdpr", "team-a"]));
    assert_eq!(job["context"], json!({"lang": "de"}));
    assert_eq!(job["created_by"], "operator");
    assert_eq!(job["document"], Value::Null);
    let id = job["id"].as_str().unwrap().to_owned();

    let (status, got) = json(
        app.as_role(Role::Viewer, Method::GET, &format!("/v1/jobs/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(got["id"], id.as_str());
    assert_eq!(
        got["items"],
        json!({"total": 0, "pending": 0, "validating": 0, "integrated": 0, "rejected": 0, "failed": 0})
    );

    let (status, list) = json(
        app.as_role(Role::Viewer, Method::GET, "/v1/jobs")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(list["next_cursor"], Value::Null);

    // The first task exists and is pending.
    let tasks = app
        .store()
        .list_tasks(Uuid::parse_str(&id).unwrap())
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].capability, "requirements.extract");

    let (status, cancelled) = json(
        app.as_role(Role::Operator, Method::DELETE, &format!("/v1/jobs/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["status_reason"], "cancelled by operator");
    assert!(cancelled["finished_at"].is_string());
    let tasks = app
        .store()
        .list_tasks(Uuid::parse_str(&id).unwrap())
        .await
        .unwrap();
    assert_eq!(tasks[0].status.as_str(), "cancelled");

    let (status, again) = json(
        app.as_role(Role::Operator, Method::DELETE, &format!("/v1/jobs/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["error"], "conflict");
    assert!(
        again["message"].as_str().unwrap().contains("cancelled"),
        "{again}"
    );
}

async fn multipart_document_round_trips_byte_for_byte(app: TestApp) {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let form = Form::new()
        .text("prompt", "Find the GoBD requirements")
        .text("priority", "3")
        .text("labels", "a,b")
        .text("pipeline", "requirements.extract")
        .part(
            "document",
            Part::bytes(bytes.clone())
                .file_name("spec.bin")
                .mime_str("application/pdf")
                .unwrap(),
        );
    let res = app
        .as_role(Role::Operator, Method::POST, "/v1/jobs")
        .multipart(form)
        .send()
        .await
        .unwrap();
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, job) = json(res).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap();
    assert_eq!(location.as_deref(), Some(format!("/v1/jobs/{id}").as_str()));
    assert_eq!(job["priority"], 3);
    assert_eq!(job["pipeline"], json!(["requirements.extract"]));
    assert_eq!(job["document"]["file_name"], "spec.bin");
    assert_eq!(job["document"]["content_type"], "application/pdf");
    assert_eq!(job["document"]["size"], 70_000);
    let expected_sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    assert_eq!(job["document"]["sha256"], expected_sha.as_str());

    let res = app
        .as_role(
            Role::Viewer,
            Method::GET,
            &format!("/v1/jobs/{id}/document"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("spec.bin")
    );
    assert_eq!(res.bytes().await.unwrap().to_vec(), bytes);
}

async fn json_base64_document_round_trips(app: TestApp) {
    use base64::Engine;
    let text = "The system must archive invoices for 10 years.\n";
    let job = app
        .create_job(json!({"prompt": "p", "document": {"content_base64": base64::engine::general_purpose::STANDARD.encode(text), "file_name": "../../etc/spec.md", "content_type": "text/markdown"}}))
        .await;
    assert_eq!(
        job["document"]["file_name"], "spec.md",
        "path components are stripped"
    );
    let id = job["id"].as_str().unwrap();
    let res = app
        .as_role(
            Role::Viewer,
            Method::GET,
            &format!("/v1/jobs/{id}/document"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/markdown");
    assert_eq!(res.text().await.unwrap(), text);

    // A job without a document: 404 that says so.
    let other = app.create_job(json!({"prompt": "no doc"})).await;
    let (status, body) = json(
        app.as_role(
            Role::Viewer,
            Method::GET,
            &format!("/v1/jobs/{}/document", other["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("has no document"),
        "{body}"
    );
}

async fn list_filters_and_cursor_paging(app: TestApp) {
    let mut ids = Vec::new();
    for i in 0..12 {
        let labels = if i % 3 == 0 {
            json!(["blue"])
        } else {
            json!(["red"])
        };
        let job = app
            .create_job(json!({"prompt": format!("job {i}"), "labels": labels}))
            .await;
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    // Cancel two of them.
    for id in &ids[..2] {
        let res = app
            .as_role(Role::Operator, Method::DELETE, &format!("/v1/jobs/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }

    // Page through everything, 5 at a time: newest first, no gaps, no duplicates.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?limit=5&cursor={c}"),
            None => "/v1/jobs?limit=5".to_owned(),
        };
        let (status, page) = json(
            app.as_role(Role::Viewer, Method::GET, &path)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        seen.extend(
            page["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    let (_, blue) = json(
        app.as_role(Role::Viewer, Method::GET, "/v1/jobs?label=blue")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(blue["jobs"].as_array().unwrap().len(), 4);
    let (_, cancelled) = json(
        app.as_role(Role::Viewer, Method::GET, "/v1/jobs?status=cancelled")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let cancelled: Vec<_> = cancelled["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cancelled, vec![ids[1].clone(), ids[0].clone()]);
    let (_, both) = json(
        app.as_role(
            Role::Viewer,
            Method::GET,
            "/v1/jobs?status=cancelled&label=blue",
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(both["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(both["jobs"][0]["id"], ids[0].as_str());
}

async fn items_by_status_with_counts(app: TestApp) {
    let job = app.create_job(json!({"prompt": "p"})).await;
    let job_id = Uuid::parse_str(job["id"].as_str().unwrap()).unwrap();
    let items: Vec<NewItem> = (0..7)
        .map(|i| NewItem {
            id: Uuid::now_v7(),
            job_id,
            source_task_id: None,
            stage: 0,
            data: json!({"text": format!("req {i}")}),
        })
        .collect();
    app.store().insert_items(items).await.unwrap();

    let (status, got) = json(
        app.as_role(Role::Viewer, Method::GET, &format!("/v1/jobs/{job_id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(got["items"]["total"], 7);
    assert_eq!(got["items"]["pending"], 7);

    let (status, page) = json(
        app.as_role(
            Role::Viewer,
            Method::GET,
            &format!("/v1/jobs/{job_id}/items?status=pending&limit=4"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
    assert_eq!(page["items"][0]["data"]["text"], "req 0");
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = json(
        app.as_role(
            Role::Viewer,
            Method::GET,
            &format!("/v1/jobs/{job_id}/items?status=pending&limit=4&cursor={cursor}"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let texts: Vec<_> = rest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["data"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["req 4", "req 5", "req 6"]);

    let (_, none) = json(
        app.as_role(
            Role::Viewer,
            Method::GET,
            &format!("/v1/jobs/{job_id}/items?status=integrated"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(none["items"], json!([]));
}

async fn idempotency_key_replays_or_conflicts(app: TestApp) {
    let body = json!({"prompt": "once only", "priority": 2});
    let send = |body: Value| {
        app.as_role(Role::Operator, Method::POST, "/v1/jobs")
            .header("Idempotency-Key", "order-42")
            .json(&body)
            .send()
    };
    let (s1, first) = json(send(body.clone()).await.unwrap()).await;
    assert_eq!(s1, 201);
    let (s2, second) = json(send(body.clone()).await.unwrap()).await;
    assert_eq!(s2, 200, "{second}");
    assert_eq!(second["id"], first["id"]);
    let (s3, third) = json(send(json!({"prompt": "something else"})).await.unwrap()).await;
    assert_eq!(s3, 409, "{third}");
    assert_eq!(third["error"], "idempotency_key_reused");

    let (_, list) = json(
        app.as_role(Role::Viewer, Method::GET, "/v1/jobs")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        list["jobs"].as_array().unwrap().len(),
        1,
        "nothing else was stored"
    );

    // Concurrent identical requests: one job.
    let key_body = json!({"prompt": "race"});
    let reqs = (0..8).map(|_| {
        app.as_role(Role::Operator, Method::POST, "/v1/jobs")
            .header("Idempotency-Key", "race-1")
            .json(&key_body)
            .send()
    });
    let results = futures::future::join_all(reqs).await;
    let mut ids = std::collections::HashSet::new();
    for r in results {
        let (status, body) = json(r.unwrap()).await;
        assert!(status == 200 || status == 201, "{status} {body}");
        ids.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1);
}

async fn dependencies_wait_or_are_refused(app: TestApp) {
    let first = app.create_job(json!({"prompt": "first"})).await;
    let second = app
        .create_job(json!({"prompt": "second", "depends_on": [first["id"]]}))
        .await;
    assert_eq!(second["status"], "waiting");
    assert_eq!(second["depends_on"], json!([first["id"]]));
    let second_id = Uuid::parse_str(second["id"].as_str().unwrap()).unwrap();
    assert!(
        app.store().list_tasks(second_id).await.unwrap().is_empty(),
        "a waiting job has no task yet"
    );

    let missing = Uuid::now_v7();
    let (status, body) = json(
        app.as_role(Role::Operator, Method::POST, "/v1/jobs")
            .json(&json!({"prompt": "x", "depends_on": [missing]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"][0]["field"], "depends_on");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&missing.to_string())
    );
    let (_, list) = json(
        app.as_role(Role::Viewer, Method::GET, "/v1/jobs")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 2);
}

async fn concurrent_cancels_have_exactly_one_winner(app: TestApp) {
    for _ in 0..5 {
        let job = app.create_job(json!({"prompt": "p"})).await;
        let path = format!("/v1/jobs/{}", job["id"].as_str().unwrap());
        let reqs = (0..4).map(|_| app.as_role(Role::Operator, Method::DELETE, &path).send());
        let statuses: Vec<u16> = futures::future::join_all(reqs)
            .await
            .into_iter()
            .map(|r| r.unwrap().status().as_u16())
            .collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 409).count(),
            3,
            "{statuses:?}"
        );
    }
}

async fn cancel_racing_a_status_change_has_one_winner(app: TestApp) {
    // A cancel (over HTTP) and a completion (as the dispatcher would write it)
    // race on a running job: exactly one wins, the loser gets a conflict,
    // and the stored status is the winner's.
    let store = app.store();
    let (mut cancels_won, mut completions_won) = (0, 0);
    for _ in 0..12 {
        let job = app.create_job(json!({"prompt": "p"})).await;
        let id = Uuid::parse_str(job["id"].as_str().unwrap()).unwrap();
        store
            .transition_job(id, &[JobStatus::Queued], JobStatus::Running, None)
            .await
            .unwrap();
        let path = format!("/v1/jobs/{id}");
        let cancel = app.as_role(Role::Operator, Method::DELETE, &path).send();
        let complete = store.transition_job(id, &[JobStatus::Running], JobStatus::Completed, None);
        let (cancel, complete) = tokio::join!(cancel, complete);
        let (cancel_status, cancel_body) = json(cancel.unwrap()).await;
        let final_status = store.get_job(id).await.unwrap().unwrap().status;
        match complete {
            Ok(_) => {
                completions_won += 1;
                assert_eq!(cancel_status, 409, "{cancel_body}");
                assert!(
                    cancel_body["message"]
                        .as_str()
                        .unwrap()
                        .contains("completed"),
                    "{cancel_body}"
                );
                assert_eq!(final_status, JobStatus::Completed);
            }
            Err(e) => {
                cancels_won += 1;
                assert_eq!(cancel_status, 200, "{cancel_body}");
                assert!(
                    e.to_string().contains("cancelled"),
                    "the loser is told the current status: {e}"
                );
                assert_eq!(final_status, JobStatus::Cancelled);
            }
        }
    }
    assert_eq!(cancels_won + completions_won, 12);
}

async fn restart_keeps_every_accepted_job(mut app: TestApp) {
    let mut created = Vec::new();
    for i in 0..20 {
        created.push(
            app.create_job(json!({"prompt": format!("durable {i}"), "labels": ["keep"]}))
                .await,
        );
    }
    app.restart().await;
    let (status, list) = json(
        app.as_role(Role::Viewer, Method::GET, "/v1/jobs?limit=500")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let jobs = list["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 20);
    for original in &created {
        let found = jobs
            .iter()
            .find(|j| j["id"] == original["id"])
            .expect("job survived the restart");
        assert_eq!(found["prompt"], original["prompt"]);
        assert_eq!(found["status"], "queued");
        assert_eq!(found["labels"], json!(["keep"]));
    }
}

async fn health_ready_metrics_openapi(app: TestApp) {
    let res = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (status, ready) = json(app.client.get(app.url("/ready")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["schema_version"], ready["schema_expected"]);

    let _ = app
        .as_role(Role::Viewer, Method::GET, "/v1/jobs")
        .send()
        .await
        .unwrap();
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchyard_http_requests_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("route=\"/v1/jobs\""),
        "route templates label requests"
    );
    assert!(metrics.contains("switchyard_http_request_duration_seconds_bucket"));

    let (status, spec) = json(
        app.client
            .get(app.url("/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    for path in [
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/items",
        "/v1/jobs/{id}/document",
        "/v1/webhooks/{id}",
        "/v1/stream",
        "/health",
        "/ready",
        "/metrics",
    ] {
        assert!(spec["paths"][path].is_object(), "openapi lacks {path}");
    }
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
}
