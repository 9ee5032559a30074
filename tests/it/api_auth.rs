//! Authentication and authorisation over real HTTP: every role against every
//! endpoint, every kind of bad token, rate limiting, CORS.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header, encode};
use reqwest::Method;
use serde_json::json;
use switchyard::auth::Role;
use switchyard_tests::app::{TEST_SECRET, json};
use switchyard_tests::{Backend, spawn_app, spawn_app_with};

#[tokio::test]
async fn every_role_against_every_endpoint() {
    let app = spawn_app(Backend::Sqlite).await;
    // A job with a document to read, made by an admin.
    let job = app.create_job(json!({"prompt": "p", "document": {"content_base64": "aGVsbG8=", "file_name": "a.txt"}})).await;
    let id = job["id"].as_str().unwrap().to_owned();

    // (method, path, body?) and the status each role gets: admin, operator, viewer, agent.
    let read = [200, 200, 200, 403];
    let endpoints: Vec<(Method, String, Option<serde_json::Value>, [u16; 4])> = vec![
        (Method::GET, "/v1/jobs".into(), None, read),
        (Method::GET, format!("/v1/jobs/{id}"), None, read),
        (Method::GET, format!("/v1/jobs/{id}/items"), None, read),
        (Method::GET, format!("/v1/jobs/{id}/document"), None, read),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(json!({"prompt": "by role"})),
            [201, 201, 403, 403],
        ),
    ];
    for (method, path, body, expected) in &endpoints {
        for (role, want) in Role::ALL.iter().zip(expected) {
            let mut req = app.as_role(*role, method.clone(), path);
            if let Some(body) = body {
                req = req.json(body);
            }
            let (status, body) = json(req.send().await.unwrap()).await;
            assert_eq!(status, *want, "{role} {method} {path}: {body}");
            if status == 403 {
                assert_eq!(body["error"], "forbidden");
                assert!(
                    body["message"].as_str().unwrap().contains(role.as_str()),
                    "{body}"
                );
            }
        }
        // No token at all: 401 everywhere.
        let res = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "anonymous {method} {path}");
        assert!(res.headers().contains_key("www-authenticate"));
    }
    // Cancel: viewer and agent are refused and the job stays as it was; operator and admin may.
    for role in [Role::Viewer, Role::Agent] {
        let res = app
            .as_role(role, Method::DELETE, &format!("/v1/jobs/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{role} cancel");
    }
    let (_, still) = json(
        app.as_role(Role::Viewer, Method::GET, &format!("/v1/jobs/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(still["status"], "queued");
    let res = app
        .as_role(Role::Operator, Method::DELETE, &format!("/v1/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let other = app.create_job(json!({"prompt": "q"})).await;
    let res = app
        .as_role(
            Role::Admin,
            Method::DELETE,
            &format!("/v1/jobs/{}", other["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Health, readiness and metrics need no token.
    for path in ["/health", "/ready", "/metrics", "/v1/openapi.json"] {
        assert_eq!(
            app.client.get(app.url(path)).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
}

fn sign(claims: serde_json::Value, secret: &[u8]) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

#[tokio::test]
async fn every_kind_of_bad_token_is_401() {
    let app = spawn_app(Backend::Sqlite).await;
    let future = jsonwebtoken::get_current_timestamp() + 3600;
    let none_token = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"eve","role":"admin","exp":{future}}}"#))
    );
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("missing", None, "missing bearer token"),
        (
            "not bearer",
            Some("Basic YWRtaW46YWRtaW4=".into()),
            "malformed Authorization header",
        ),
        (
            "garbage",
            Some("Bearer not.a.token".into()),
            "malformed token: its header (part 1) is not base64url",
        ),
        (
            "not a JWT",
            Some("Bearer hunter2".into()),
            "a JWT has three parts separated by dots",
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                sign(
                    json!({"sub": "a", "role": "admin", "exp": 1_000_000}),
                    TEST_SECRET.as_bytes()
                )
            )),
            "expired",
        ),
        (
            "wrong key",
            Some(format!(
                "Bearer {}",
                sign(
                    json!({"sub": "a", "role": "admin", "exp": future}),
                    b"another-secret-another-secret-another"
                )
            )),
            "signature",
        ),
        (
            "alg none",
            Some(format!("Bearer {none_token}")),
            "algorithm",
        ),
        (
            "unknown role",
            Some(format!(
                "Bearer {}",
                sign(
                    json!({"sub": "a", "role": "root", "exp": future}),
                    TEST_SECRET.as_bytes()
                )
            )),
            "not a role",
        ),
        (
            "nbf an hour ahead",
            Some(format!(
                "Bearer {}",
                sign(
                    json!({"sub": "a", "role": "admin", "exp": future + 3600, "nbf": future}),
                    TEST_SECRET.as_bytes()
                )
            )),
            "not valid yet",
        ),
        (
            "no exp",
            Some(format!(
                "Bearer {}",
                sign(json!({"sub": "a", "role": "admin"}), TEST_SECRET.as_bytes())
            )),
            "exp",
        ),
    ];
    for (name, header, expect) in cases {
        let mut req = app
            .client
            .post(app.url("/v1/jobs"))
            .json(&json!({"prompt": "sneaky"}));
        if let Some(h) = header {
            req = req.header("authorization", h);
        }
        let res = req.send().await.unwrap();
        let www = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let (status, body) = json(res).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(body["error"], "unauthorized", "{name}");
        assert!(
            body["message"].as_str().unwrap().contains(expect),
            "{name}: {body}"
        );
        assert!(www.unwrap_or_default().starts_with("Bearer"), "{name}");
    }
    let (_, list) = json(
        app.as_role(Role::Viewer, Method::GET, "/v1/jobs")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["jobs"], json!([]), "no bad token created anything");

    // The scheme is case-insensitive (RFC 7235): a lower-case `bearer` works.
    let token = sign(
        json!({"sub": "a", "role": "viewer", "exp": future}),
        TEST_SECRET.as_bytes(),
    );
    let res = app
        .client
        .get(app.url("/v1/jobs"))
        .header("authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn rate_limit_per_subject_with_retry_after() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.rate_limit_per_second = 1;
        c.rate_limit_burst = 3;
    })
    .await;
    let alice = app.token_for(Role::Viewer, "alice");
    let bob = app.token_for(Role::Viewer, "bob");
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let res = app
            .client
            .get(app.url("/v1/jobs"))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            let retry = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            limited = Some((retry, json(res).await.1));
        }
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    let (retry, body) = limited.unwrap();
    assert!(retry.unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(body["error"], "rate_limited");
    // Another subject has its own allowance.
    let res = app
        .client
        .get(app.url("/v1/jobs"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn cors_only_for_allowed_origins() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.cors_allowed_origins = vec!["https://ops.example.com".into()]
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/v1/jobs"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let ok = preflight("https://ops.example.com").await.unwrap();
    assert_eq!(
        ok.headers().get("access-control-allow-origin").unwrap(),
        "https://ops.example.com"
    );
    let other = preflight("https://evil.example.com").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // None by default.
    let plain = spawn_app(Backend::Sqlite).await;
    let res = plain
        .client
        .get(plain.url("/health"))
        .header("origin", "https://ops.example.com")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn generated_secret_prints_a_working_admin_token_that_survives_restart() {
    let mut app = spawn_app_with(Backend::Sqlite, |c| c.jwt_secret = String::new()).await;
    let token = app
        .hub
        .as_ref()
        .unwrap()
        .first_admin_token
        .clone()
        .expect("first start prints an admin token");
    let secret_file = app.data_dir.path().join("jwt-secret");
    assert!(secret_file.is_file());
    let res = app
        .client
        .get(app.url("/v1/jobs"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The test-secret tokens do not work against the generated secret.
    let res = app
        .as_role(Role::Admin, Method::GET, "/v1/jobs")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    app.restart().await;
    assert!(
        app.hub.as_ref().unwrap().first_admin_token.is_none(),
        "only the first start prints a token"
    );
    let res = app
        .client
        .get(app.url("/v1/jobs"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "tokens survive a restart");
}

#[tokio::test]
async fn request_ids_are_taken_or_generated_and_echoed() {
    let app = spawn_app(Backend::Sqlite).await;
    let res = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let res = app.client.get(app.url("/health")).send().await.unwrap();
    let generated = res.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
}
