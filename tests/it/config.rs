//! Configuration is validated at start-up: bad values are refused with a
//! message naming the key, the value and what is allowed.

use std::io::Write;

use switchyard::config::{self, ConfigOverrides};
use switchyard::server::StartError;
use switchyard_tests::Backend;

fn load_toml(text: &str) -> Result<config::Settings, String> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    config::load(Some(file.path()), &ConfigOverrides::default()).map_err(|e| e.to_string())
}

#[test]
fn bad_values_name_the_key_value_and_what_is_allowed() {
    let cases = [
        ("listen = \"localhost\"", "`listen` = \"localhost\""),
        ("pool_size = 0", "`pool_size` = \"0\""),
        ("log_format = \"xml\"", "pretty or json"),
        ("shutdown_grace = \"soon\"", "`shutdown_grace` = \"soon\""),
        ("jwt_secret = \"short\"", "at least 32 characters"),
        ("cors_allowed_origins = [\"*\"]", "`cors_allowed_origins`"),
        ("max_attempts = 0", "`max_attempts`"),
        ("default_pipeline = [\"Not Valid\"]", "`default_pipeline`"),
    ];
    for (toml, expected) in cases {
        let err = load_toml(toml).expect_err(toml);
        assert!(err.contains(expected), "{toml}: {err}");
    }
}

#[test]
fn an_unsupported_database_url_is_named() {
    // Given as a flag: flags win over DATABASE_URL, which the test script sets.
    let overrides = ConfigOverrides {
        database_url: Some("mysql://db/x".into()),
        ..Default::default()
    };
    let err = config::load(None, &overrides).unwrap_err().to_string();
    assert!(
        err.contains("`database_url`") && err.contains("postgres://"),
        "{err}"
    );
}

#[test]
fn wrong_types_and_unknown_keys_are_named() {
    let err = load_toml("pool_size = \"many\"").unwrap_err();
    assert!(err.contains("pool_size"), "{err}");
    let err = load_toml("lisen = \"127.0.0.1:1\"").unwrap_err();
    assert!(err.contains("lisen"), "{err}");
}

#[test]
fn several_problems_are_reported_together() {
    let err = load_toml("listen = \"x\"\npool_size = 0\n").unwrap_err();
    assert!(err.contains("listen") && err.contains("pool_size"), "{err}");
}

#[test]
fn a_missing_explicit_config_file_is_an_error() {
    let err = config::load(
        Some(std::path::Path::new("/nonexistent/switchyard.toml")),
        &ConfigOverrides::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/switchyard.toml"),
        "{err}"
    );
}

#[test]
fn flags_override_the_file() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"listen = \"127.0.0.1:9001\"\npool_size = 3\n")
        .unwrap();
    let overrides = ConfigOverrides {
        listen: Some("127.0.0.1:9002".into()),
        ..Default::default()
    };
    let settings = config::load(Some(file.path()), &overrides).unwrap();
    assert_eq!(settings.listen.to_string(), "127.0.0.1:9002");
    assert_eq!(settings.pool_size, 3);
}

#[tokio::test]
async fn the_hub_refuses_a_schema_newer_than_it_knows() {
    let mut app = switchyard_tests::spawn_app(Backend::Sqlite).await;
    let raw = app.raw.clone();
    let url = app.database_url.clone();
    app.hub.take().unwrap().stop().await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (9999, 'from the future', CURRENT_TIMESTAMP, 1, x'00', 0)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let settings = config::Settings::from_raw(raw).unwrap();
    let err = match switchyard::Server::start(settings).await {
        Err(e) => e,
        Ok(_) => panic!("the hub started on a schema from the future"),
    };
    assert!(matches!(err, StartError::Store { .. }));
    let message = err.to_string();
    assert!(
        message.contains("9999") && message.contains("newer switchyard"),
        "{message}"
    );
}

#[test]
fn secrets_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let jwt = dir.path().join("jwt_secret");
    std::fs::write(&jwt, format!("{}\n", "j".repeat(40))).unwrap();
    let keys = dir.path().join("webhook_keys");
    std::fs::write(&keys, format!("{}\n{}\n", "a".repeat(32), "b".repeat(32))).unwrap();
    let settings = load_toml(&format!(
        "jwt_secret_file = {:?}\n[webhooks]\nsecret_keys_file = {:?}\n",
        jwt.display().to_string(),
        keys.display().to_string()
    ))
    .unwrap();
    assert_eq!(
        settings.jwt_secret.as_deref(),
        Some("j".repeat(40).as_str())
    );
    assert!(settings.webhooks.sealer.is_on());

    let err = load_toml(
        "jwt_secret_file = \"/nonexistent/jwt\"\n[webhooks]\nsecret_keys = [\"short\"]\n",
    )
    .unwrap_err();
    for named in [
        "`jwt_secret_file`",
        "/nonexistent/jwt",
        "`webhooks.secret_keys`",
        "at least 32",
    ] {
        assert!(err.contains(named), "{named} in {err}");
    }
}

#[test]
fn unknown_keys_suggest_the_nearest_and_bare_numbers_ask_for_a_unit() {
    let cases = [
        (
            "listn = \"127.0.0.1:1\"",
            "unknown key `listn`",
            "did you mean `listen`?",
        ),
        (
            "[webhooks]\ntimout = \"3s\"",
            "unknown key `webhooks.timout`",
            "did you mean `webhooks.timeout`?",
        ),
        (
            "zzzz = 1",
            "unknown key `zzzz`",
            "README's Configuration section",
        ),
        (
            "accept_timeout = 10",
            "`accept_timeout` = 10",
            "durations need a unit, e.g. \"10s\"",
        ),
    ];
    for (toml, first, second) in cases {
        let err = load_toml(toml).expect_err(toml);
        assert!(err.contains(first) && err.contains(second), "{toml}: {err}");
    }
}

#[tokio::test]
async fn a_missing_database_is_named_with_what_to_do() {
    let server = switchyard_tests::db::admin_url();
    let base = server.rsplit_once('/').expect("a database in the URL").0;
    let dir = tempfile::tempdir().unwrap();
    let raw = config::RawConfig {
        listen: "127.0.0.1:0".into(),
        database_url: format!("{base}/sy_test_start_missing_db"),
        data_dir: dir.path().to_path_buf(),
        jwt_secret: switchyard_tests::app::TEST_SECRET.into(),
        ..config::RawConfig::default()
    };
    let settings = config::Settings::from_raw(raw).unwrap();
    let err = match switchyard::Server::start(settings).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("the hub started on a database that does not exist"),
    };
    for needle in [
        "sy_test_start_missing_db",
        "does not exist",
        "createdb sy_test_start_missing_db",
    ] {
        assert!(err.contains(needle), "{needle} in {err}");
    }
    assert!(!err.contains("at line"), "no driver internals: {err}");
}
