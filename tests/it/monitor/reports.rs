//! Progress, report, daily statistics and agent health of one reference
//! pipeline job (sample fixture: 15 items, 12 integrated, 3 rejected), with
//! a validator that reports known usage under a known pricing.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use switchyard::auth::Role;
use switchyard_tests::app::json;
use switchyard_tests::{TestApp, backend_tests};

use super::support::{get, reference_agents, submit_sample};

backend_tests!(
    a_reference_job_reports_exact_numbers,
    daily_statistics_refuse_hostile_days_and_count_exactly,
    static_routes_win_and_bad_input_is_refused
);

fn counts(v: &Value) -> (i64, i64, i64, i64) {
    (
        v["total"].as_i64().unwrap_or(-1),
        v["integrated"].as_i64().unwrap_or(-1),
        v["rejected"].as_i64().unwrap_or(-1),
        v["failed"].as_i64().unwrap_or(-1),
    )
}

async fn run_reference_job(app: &TestApp) -> String {
    let agents = reference_agents(app).await;
    let job_id = submit_sample(app).await;
    app.wait_for_job(&job_id, "completed", Duration::from_secs(30))
        .await;
    for a in agents {
        a.kill();
    }
    job_id
}

async fn a_reference_job_reports_exact_numbers(app: TestApp) {
    let job_id = run_reference_job(&app).await;

    // Progress.
    let (status, p) = get(&app, &format!("/v1/jobs/{job_id}/progress")).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["status"], "completed");
    assert_eq!(p["stages"][0]["capability"], "requirements.extract");
    assert_eq!(p["stages"][0]["tasks"]["succeeded"], 1);
    assert_eq!(p["stages"][1]["capability"], "requirements.validate");
    assert_eq!(p["stages"][1]["tasks"]["succeeded"], 15);
    assert_eq!(p["stages"][1]["tasks"]["total"], 15);
    assert_eq!(p["tasks"]["total"], 16);
    assert_eq!(p["remaining_tasks"], 0);
    assert_eq!(p["percent_done"], 100.0);
    assert_eq!(counts(&p["items"]), (15, 12, 3, 0));
    assert_eq!(p["rate"]["tasks_finished"], 16);
    assert_eq!(p["rate"]["items_finished"], 15);
    assert_eq!(p["eta_seconds"], Value::Null);
    assert_eq!(p["eta_reason"], "the job has finished (completed)");
    assert!(p["elapsed_seconds"].as_f64().unwrap() > 0.0);

    // The JSON report.
    let (status, r) = get(&app, &format!("/v1/jobs/{job_id}/report")).await;
    assert_eq!(status, 200, "{r}");
    let s = &r["summary"];
    assert_eq!(s["status"], "completed");
    assert_eq!(s["created_by"], "operator");
    assert_eq!(s["labels"], json!(["team-a"]));
    assert_eq!(s["document"]["file_name"], "sample-spec.md");
    assert_eq!(s["rerun_of"], Value::Null);
    assert!(s["duration_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(r["stages"][1]["tasks"]["succeeded"], 15);
    assert!(r["stages"][1]["finished_at"].is_string());
    assert_eq!(counts(&r["items"]), (15, 12, 3, 0));

    let breakdown = |v: &Value| -> Vec<(String, i64, i64, i64)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["key"].as_str().unwrap().to_owned(),
                    b["total"].as_i64().unwrap(),
                    b["integrated"].as_i64().unwrap(),
                    b["rejected"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        breakdown(&r["tags"]),
        [
            ("gobd".into(), 5, 4, 1),
            ("gdpr".into(), 3, 3, 0),
            ("security".into(), 3, 2, 1),
            ("performance".into(), 1, 1, 0),
        ]
    );
    assert_eq!(
        breakdown(&r["priorities"]),
        [
            ("high".into(), 9, 7, 2),
            ("medium".into(), 4, 3, 1),
            ("low".into(), 2, 2, 0),
        ]
    );

    // Usage: 15 validations at 1000 in / 200 out / 1 request, priced
    // 0.5 EUR per 1k in, 1.5 per 1k out, 0.25 per request = 15.75 EUR.
    let u = &r["usage"];
    assert_eq!(u["total"]["tokens_in"], 15_000);
    assert_eq!(u["total"]["tokens_out"], 3_000);
    assert_eq!(u["total"]["requests"], 15);
    assert_eq!(
        u["total"]["tasks"], 16,
        "the creator's task reported zero usage"
    );
    assert_eq!(
        u["total"]["cost"],
        json!([{"currency": "EUR", "amount": 15.75}])
    );
    let agents: Vec<(&str, i64, &Value)> = u["by_agent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["key"].as_str().unwrap(),
                l["tokens_in"].as_i64().unwrap(),
                &l["cost"],
            )
        })
        .collect();
    assert_eq!(
        agents,
        [
            ("creator-1", 0, &json!([])),
            (
                "validator-priced",
                15_000,
                &json!([{"currency": "EUR", "amount": 15.75}])
            ),
        ]
    );
    let caps: Vec<(&str, i64)> = u["by_capability"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["key"].as_str().unwrap(), l["requests"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        caps,
        [("requirements.extract", 0), ("requirements.validate", 15)]
    );

    // Citations.
    let c = &r["citations"];
    assert_eq!(c["distinct"], 4);
    assert_eq!(c["mentions"], 5);
    assert_eq!(
        c["sources"],
        json!([
            {"citation": "§ 147 AO", "items": 2, "integrated": 1},
            {"citation": "Art. 17 GDPR", "items": 1, "integrated": 1},
            {"citation": "Art. 5 DSGVO", "items": 1, "integrated": 1},
            {"citation": "ISO 27001", "items": 1, "integrated": 1},
        ])
    );

    // Rejected items with their reasons; nothing failed.
    assert_eq!(r["rejected"]["total"], 3);
    assert_eq!(r["rejected"]["truncated"], false);
    let mut reasons: Vec<String> = r["rejected"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["reason"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons, ["duplicate", "missing subject", "too vague"]);
    assert_eq!(
        r["failed"],
        json!({"total": 0, "items": [], "truncated": false})
    );

    // Text and Markdown carry the same numbers.
    for (format, content_type, needles) in [
        (
            "text",
            "text/plain",
            vec![
                "Status:      completed",
                "total 15: 12 integrated, 3 rejected",
                "15.750000 EUR",
                "gobd",
                "too vague",
            ],
        ),
        (
            "markdown",
            "text/markdown",
            vec![
                "# Job report",
                "| 15 | 12 | 3 | 0 | 0 | 0 |",
                "15.750000 EUR",
                "| § 147 AO | 2 | 1 |",
                "## Rejected items (3)",
            ],
        ),
    ] {
        let res = app
            .as_role(
                Role::Viewer,
                Method::GET,
                &format!("/v1/jobs/{job_id}/report?format={format}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with(content_type), "{ct}");
        let body = res.text().await.unwrap();
        for needle in needles {
            assert!(
                body.contains(needle),
                "{format} report lacks `{needle}`:\n{body}"
            );
        }
    }

    // Agent health: both agents went away within the hour.
    let h = super::support::wait_until(&app, "/v1/agents/health", Duration::from_secs(10), |h| {
        h["attention"].as_array().is_some_and(|a| a.len() == 2)
    })
    .await;
    assert_eq!(h["total"], 2);
    assert_eq!(h["by_state"]["connected"], 0, "{h}");
    let mut names: Vec<&str> = h["attention"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["creator-1", "validator-priced"]);
}

async fn daily_statistics_refuse_hostile_days_and_count_exactly(app: TestApp) {
    for hostile in [
        "1;%20DROP%20TABLE%20jobs",
        "0",
        "366",
        "-1",
        "7.5",
        "",
        "abc",
    ] {
        let (status, body) = get(&app, &format!("/v1/stats/daily?days={hostile}")).await;
        assert_eq!(status, 400, "days={hostile}: {body}");
        assert_eq!(body["error"], "invalid_query");
        assert!(
            body["message"].as_str().unwrap().contains("from 1 to 365"),
            "{body}"
        );
    }
    let (status, body) = get(&app, "/v1/stats/daily?days=3&extra=1").await;
    assert_eq!(status, 400, "{body}");

    let job_id = run_reference_job(&app).await;
    // The tables are intact and the job is there.
    let (status, job) = get(&app, &format!("/v1/jobs/{job_id}")).await;
    assert_eq!(status, 200, "{job}");

    let (status, d) = get(&app, "/v1/stats/daily?days=2").await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["days"], 2);
    assert_eq!(d["daily"].as_array().unwrap().len(), 2);
    assert_eq!(d["daily"][1]["date"], d["to"]);
    let t = &d["totals"];
    assert_eq!(t["jobs_created"], 1, "{d}");
    assert_eq!(t["jobs_completed"], 1);
    assert_eq!(t["jobs_failed"], 0);
    assert_eq!(t["jobs_cancelled"], 0);
    assert_eq!(t["items_integrated"], 12);
    assert_eq!(t["items_rejected"], 3);
    assert_eq!(t["items_failed"], 0);
    assert_eq!(t["tokens_in"], 15_000);
    assert_eq!(t["tokens_out"], 3_000);
    assert_eq!(t["requests"], 15);

    // A cancelled job counts too, and asking again counts nothing twice.
    let id = super::support::create(&app, &["nobody.here"], json!({})).await;
    let (status, _) = json(
        app.as_role(Role::Operator, Method::DELETE, &format!("/v1/jobs/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let (_, d) = get(&app, "/v1/stats/daily?days=365").await;
    assert_eq!(d["daily"].as_array().unwrap().len(), 365);
    assert_eq!(d["totals"]["jobs_created"], 2);
    assert_eq!(d["totals"]["jobs_cancelled"], 1);
    assert_eq!(d["totals"]["items_integrated"], 12);
    let (_, d) = get(&app, "/v1/stats/daily").await;
    assert_eq!(d["days"], 7);
    assert_eq!(d["totals"]["jobs_created"], 2);
}

async fn static_routes_win_and_bad_input_is_refused(app: TestApp) {
    let (status, stuck) = get(&app, "/v1/jobs/stuck").await;
    assert_eq!(
        status, 200,
        "/jobs/stuck must not be read as a job id: {stuck}"
    );
    assert_eq!(stuck["tasks"], json!([]));
    assert_eq!(stuck["items"], json!([]));
    assert_eq!(stuck["jobs"], json!([]));
    assert_eq!(stuck["settings"]["stuck_after_seconds"], 600.0);
    assert_eq!(stuck["settings"]["job_timeout_seconds"], 168.0 * 3600.0);
    let (status, health) = get(&app, "/v1/agents/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["total"], 0);
    assert_eq!(health["by_state"]["connected"], 0);

    let id = super::support::create(&app, &["nobody.here"], json!({})).await;
    let (status, body) = get(&app, &format!("/v1/jobs/{id}/report?format=pdf")).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("json, text or markdown")
    );
    let (status, _) = get(&app, "/v1/jobs/not-a-uuid/progress").await;
    assert_eq!(status, 400);
    let missing = uuid::Uuid::now_v7();
    let (status, _) = get(&app, &format!("/v1/jobs/{missing}/report")).await;
    assert_eq!(status, 404);
    let (status, _) = get(&app, &format!("/v1/jobs/{id}/compare/{missing}")).await;
    assert_eq!(status, 404);

    // A job nobody can take: queued, no ETA, and the capability is unserved.
    let (_, p) = get(&app, &format!("/v1/jobs/{id}/progress")).await;
    assert_eq!(p["status"], "queued");
    assert_eq!(p["stages"][0]["tasks"]["pending"], 1);
    assert_eq!(
        p["eta_reason"],
        "no agent has taken the job's first task yet"
    );
    let h = super::support::wait_until(&app, "/v1/agents/health", Duration::from_secs(5), |h| {
        h["unserved_capabilities"][0]["capability"] == "nobody.here"
    })
    .await;
    assert_eq!(h["unserved_capabilities"][0]["depth"], 1);

    // Operators only.
    for path in [
        format!("/v1/jobs/{id}/retry-failed"),
        format!("/v1/jobs/{id}/rerun"),
    ] {
        let (status, _) = super::support::post(&app, Role::Viewer, &path).await;
        assert_eq!(status, 403, "{path}");
    }
    let (status, body) =
        super::support::post(&app, Role::Operator, &format!("/v1/jobs/{id}/retry-failed")).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no failed items"),
        "{body}"
    );
}
