//! Retention: only events older than `event_retention` are deleted, oldest
//! first, in batches; the background task runs at start-up.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, SqliteConnection};
use switchyard::store::DynStore;
use switchyard_tests::{Backend, TestApp, backend_tests};
use tokio_util::sync::CancellationToken;

use super::{create_job, stored_events};

backend_tests!(only_old_events_are_deleted_oldest_first_in_batches);

/// Moves the events up to `seq` to the year 2000, outside the store.
async fn backdate(app: &TestApp, seq: i64) {
    match app.backend {
        Backend::Postgres => {
            let mut c = PgConnection::connect(&app.database_url)
                .await
                .expect("connect");
            sqlx::query("UPDATE events SET created_at = '2000-01-01T00:00:00Z' WHERE seq <= $1")
                .bind(seq)
                .execute(&mut c)
                .await
                .expect("backdate");
            c.close().await.expect("close");
        }
        Backend::Sqlite => {
            let mut c = SqliteConnection::connect(&app.database_url)
                .await
                .expect("connect");
            sqlx::query(
                "UPDATE events SET created_at = '2000-01-01T00:00:00.000000Z' WHERE seq <= $1",
            )
            .bind(seq)
            .execute(&mut c)
            .await
            .expect("backdate");
            c.close().await.expect("close");
        }
    }
}

fn seq(event: &Value) -> i64 {
    event["seq"].as_i64().expect("seq")
}

async fn only_old_events_are_deleted_oldest_first_in_batches(mut app: TestApp) {
    for n in 0..4 {
        create_job(&app, json!({"prompt": format!("job {n}")}), "r").await;
    }
    let all = stored_events(&app, None).await;
    assert_eq!(all.len(), 8, "job.created and task.created per job");
    backdate(&app, seq(&all[4])).await;

    // Batches of 2: the five old events go, oldest first; nothing else.
    let store: DynStore = app.store();
    let cutoff = Utc::now() - chrono::TimeDelta::days(1);
    let mut left = Vec::new();
    for expected in [2, 2, 1, 0] {
        assert_eq!(
            store.delete_events_before(cutoff, 2).await.expect("delete"),
            expected
        );
        left.push(stored_events(&app, None).await.first().map(seq));
    }
    assert_eq!(
        left,
        [
            Some(seq(&all[2])),
            Some(seq(&all[4])),
            Some(seq(&all[5])),
            Some(seq(&all[5]))
        ]
    );
    assert_eq!(stored_events(&app, None).await, all[5..].to_vec());
    // A cutoff before everything deletes nothing.
    let ancient = Utc::now() - chrono::TimeDelta::days(365 * 100);
    assert_eq!(
        store
            .delete_events_before(ancient, 10_000)
            .await
            .expect("delete"),
        0
    );

    // One pass of the retention task deletes every old event.
    let more = stored_events(&app, None).await;
    backdate(&app, seq(&more[1])).await;
    let never = CancellationToken::new();
    let deleted = switchyard::events::retention::purge(&store, Duration::from_secs(3600), &never)
        .await
        .expect("purge");
    assert_eq!(deleted, 2);
    assert_eq!(stored_events(&app, None).await, more[2..].to_vec());

    // The background task runs at start-up: old events are gone after a restart.
    let before = stored_events(&app, None).await;
    backdate(&app, seq(&before[0])).await;
    app.raw.event_retention = "1h".into();
    app.restart().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stored_events(&app, None).await != before[1..] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the retention task did not run"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
