//! [`crate::store::webhooks::WebhookStore`] for postgres.
//!
//! Claims are conditional updates (`WHERE status = 'pending' AND
//! next_attempt_at <= now`): of two nodes claiming the same row, the second
//! blocks on the row lock, re-evaluates the condition against the first's
//! new `next_attempt_at`, and skips the row.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::PgStore;
use super::items::append_events;
use crate::store::StoreError;
use crate::store::shared::{self, INSERT_CHUNK};
use crate::store::webhooks::{
    AttemptRow, ClaimRow, DeliveryRow, WebhookRow, WebhookStore, apply_patch, deliveries_from_rows,
    delivery_columns, delivery_update, status_code, webhook_columns,
};
use crate::webhooks::model::{
    AttemptEffect, AttemptOutcome, AttemptRecord, ClaimedDelivery, Delivery, DeliveryStatus,
    DueDelivery, NewDelivery, NewWebhook, Webhook, WebhookPatch, disable_reason, disabled_event,
};

async fn last_seq(conn: &mut PgConnection) -> Result<i64, StoreError> {
    let (seq,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM events")
        .fetch_one(&mut *conn)
        .await?;
    Ok(seq)
}

async fn fetch_for_update(conn: &mut PgConnection, id: Uuid) -> Result<Webhook, StoreError> {
    let row: Option<WebhookRow> = sqlx::query_as(concat!(
        "SELECT ",
        webhook_columns!(),
        " FROM webhooks WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Webhook::from)
        .ok_or(StoreError::NotFound("webhook"))
}

/// Writes every mutable column of `w`.
async fn save(conn: &mut PgConnection, w: &Webhook) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE webhooks SET url = $2, event_types = $3, label = $4, description = $5, \
         enabled = $6, disabled_reason = $7, failing_since = $8, since_seq = $9, \
         secret = $10, previous_secret = $11, previous_secret_expires_at = $12, updated_at = $13 \
         WHERE id = $1",
    )
    .bind(w.id)
    .bind(&w.url)
    .bind(Json(&w.event_types))
    .bind(&w.label)
    .bind(&w.description)
    .bind(w.enabled)
    .bind(&w.disabled_reason)
    .bind(w.failing_since)
    .bind(w.since_seq)
    .bind(&w.keys.current)
    .bind(&w.keys.previous)
    .bind(w.keys.previous_expires_at)
    .bind(w.updated_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl WebhookStore for PgStore {
    async fn create_webhook(&self, new: NewWebhook) -> Result<Webhook, StoreError> {
        let at = shared::now();
        let mut tx = self.pool.begin().await?;
        let since_seq = last_seq(&mut tx).await?;
        let row: WebhookRow = sqlx::query_as(concat!(
            "INSERT INTO webhooks (id, url, event_types, label, description, enabled, secret, \
             since_seq, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING ",
            webhook_columns!()
        ))
        .bind(new.id)
        .bind(&new.url)
        .bind(Json(&new.event_types))
        .bind(&new.label)
        .bind(&new.description)
        .bind(new.enabled)
        .bind(&new.secret)
        .bind(since_seq)
        .bind(&new.created_by)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row.into())
    }

    async fn get_webhook(&self, id: Uuid) -> Result<Option<Webhook>, StoreError> {
        let row: Option<WebhookRow> = sqlx::query_as(concat!(
            "SELECT ",
            webhook_columns!(),
            " FROM webhooks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Webhook::from))
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        let rows: Vec<WebhookRow> = sqlx::query_as(concat!(
            "SELECT ",
            webhook_columns!(),
            " FROM webhooks ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Webhook::from).collect())
    }

    async fn update_webhook(&self, id: Uuid, patch: WebhookPatch) -> Result<Webhook, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut webhook = fetch_for_update(&mut tx, id).await?;
        let last = last_seq(&mut tx).await?;
        apply_patch(&mut webhook, patch, last, shared::now());
        save(&mut tx, &webhook).await?;
        tx.commit().await?;
        Ok(webhook)
    }

    async fn delete_webhook(&self, id: Uuid) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("webhook"));
        }
        Ok(())
    }

    async fn rotate_webhook_secret(
        &self,
        id: Uuid,
        secret: String,
        previous_expires_at: DateTime<Utc>,
    ) -> Result<Webhook, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut webhook = fetch_for_update(&mut tx, id).await?;
        webhook.keys.previous = Some(std::mem::replace(&mut webhook.keys.current, secret));
        webhook.keys.previous_expires_at = Some(previous_expires_at);
        webhook.updated_at = shared::now();
        save(&mut tx, &webhook).await?;
        tx.commit().await?;
        Ok(webhook)
    }

    async fn webhook_cursor(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM webhook_cursor WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn enqueue_webhook_deliveries(
        &self,
        deliveries: &[NewDelivery],
        cursor: Option<i64>,
    ) -> Result<u64, StoreError> {
        let at = shared::now();
        let mut tx = self.pool.begin().await?;
        let mut inserted = 0;
        for chunk in deliveries.chunks(INSERT_CHUNK) {
            let mut qb = QueryBuilder::<Postgres>::new(
                "INSERT INTO webhook_deliveries (id, webhook_id, event_seq, generation, event_type, \
                 job_id, request_id, body, status, next_attempt_at, created_at, updated_at) ",
            );
            qb.push_values(chunk, |mut row, d| {
                row.push_bind(d.id)
                    .push_bind(d.webhook_id)
                    .push_bind(d.event_seq)
                    .push_bind(d.generation)
                    .push_bind(&d.event_type)
                    .push_bind(d.job_id)
                    .push_bind(&d.request_id)
                    .push_bind(&d.body)
                    .push_bind(DeliveryStatus::Pending.as_str())
                    .push_bind(at)
                    .push_bind(at)
                    .push_bind(at);
            });
            qb.push(" ON CONFLICT (webhook_id, event_seq, generation) DO NOTHING");
            inserted += qb.build().execute(&mut *tx).await?.rows_affected();
        }
        if let Some(cursor) = cursor {
            sqlx::query("UPDATE webhook_cursor SET seq = $1 WHERE id = 1 AND seq < $1")
                .bind(cursor)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn next_replay_generation(&self, id: Uuid) -> Result<i32, StoreError> {
        let generation: Option<i32> = sqlx::query_scalar(
            "UPDATE webhooks SET replay_generation = replay_generation + 1 WHERE id = $1 \
             RETURNING replay_generation",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        generation.ok_or(StoreError::NotFound("webhook"))
    }

    async fn event_seq_before(&self, at: DateTime<Utc>) -> Result<i64, StoreError> {
        let first: Option<i64> =
            sqlx::query_scalar("SELECT MIN(seq) FROM events WHERE created_at >= $1")
                .bind(at)
                .fetch_one(&self.pool)
                .await?;
        match first {
            Some(seq) => Ok(seq - 1),
            None => {
                let mut conn = self.pool.acquire().await?;
                last_seq(&mut conn).await
            }
        }
    }

    async fn due_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        exclude: &[Uuid],
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT d.id, d.webhook_id FROM webhook_deliveries d \
             JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND w.enabled \
             AND NOT (d.webhook_id = ANY($2)) \
             ORDER BY d.next_attempt_at LIMIT $3",
        )
        .bind(now)
        .bind(exclude)
        .bind(i64::from(shared::page_limit(limit)))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, webhook_id)| DueDelivery { id, webhook_id })
            .collect())
    }

    async fn next_webhook_due_at(
        &self,
        exclude: &[Uuid],
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d \
             JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.status = 'pending' AND w.enabled AND NOT (d.webhook_id = ANY($1))",
        )
        .bind(exclude)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn claim_webhook_deliveries(
        &self,
        ids: &[Uuid],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<ClaimRow> = sqlx::query_as(
            "UPDATE webhook_deliveries d SET next_attempt_at = $3, updated_at = $2 \
             FROM webhooks w \
             WHERE d.id = ANY($1) AND d.status = 'pending' AND d.next_attempt_at <= $2 \
             AND w.id = d.webhook_id AND w.enabled \
             RETURNING d.id, d.webhook_id, d.event_seq, d.event_type, d.job_id, d.request_id, d.body, \
             d.attempts, w.url, w.secret, w.previous_secret, w.previous_secret_expires_at",
        )
        .bind(ids)
        .bind(now)
        .bind(lease_until)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(ClaimedDelivery::from).collect())
    }

    async fn record_webhook_attempt(
        &self,
        record: &AttemptRecord,
    ) -> Result<AttemptEffect, StoreError> {
        let (status, next, delivered_at) = delivery_update(record);
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE webhook_deliveries SET status = $3, attempts = $2, \
             next_attempt_at = COALESCE($4, next_attempt_at), delivered_at = $5, updated_at = $6 \
             WHERE id = $1 AND attempts = $2 - 1 AND status = 'pending'",
        )
        .bind(record.delivery_id)
        .bind(record.attempt)
        .bind(status.as_str())
        .bind(next)
        .bind(delivered_at)
        .bind(record.finished_at)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(AttemptEffect::default());
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, status_code, \
             latency_ms, error) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(record.delivery_id)
        .bind(record.attempt)
        .bind(record.started_at)
        .bind(status_code(record))
        .bind(record.latency_ms)
        .bind(&record.error)
        .execute(&mut *tx)
        .await?;

        let mut effect = AttemptEffect {
            recorded: true,
            disabled: false,
        };
        if record.outcome == AttemptOutcome::Delivered {
            sqlx::query(
                "UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL",
            )
            .bind(record.webhook_id)
            .execute(&mut *tx)
            .await?;
        } else {
            let state: Option<(Option<DateTime<Utc>>, bool, String)> = sqlx::query_as(
                "UPDATE webhooks SET failing_since = COALESCE(failing_since, $2) WHERE id = $1 \
                 RETURNING failing_since, enabled, url",
            )
            .bind(record.webhook_id)
            .bind(record.started_at)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((failing_since, true, url)) = state
                && let Some(reason) = disable_reason(record, failing_since)
            {
                sqlx::query(
                    "UPDATE webhooks SET enabled = false, disabled_reason = $2, updated_at = $3 \
                     WHERE id = $1",
                )
                .bind(record.webhook_id)
                .bind(&reason)
                .bind(record.finished_at)
                .execute(&mut *tx)
                .await?;
                let event = disabled_event(record.webhook_id, &url, &reason);
                append_events(&mut tx, &[event], record.finished_at).await?;
                effect.disabled = true;
            }
        }
        tx.commit().await?;
        if effect.disabled {
            self.bump();
        }
        Ok(effect)
    }

    async fn list_webhook_deliveries(
        &self,
        webhook_id: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let rows: Vec<DeliveryRow> = sqlx::query_as(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM webhook_deliveries WHERE webhook_id = $1 AND ($2::uuid IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(webhook_id)
        .bind(before)
        .bind(i64::from(shared::page_limit(limit)))
        .fetch_all(&self.pool)
        .await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let attempts: Vec<AttemptRow> = sqlx::query_as(
            "SELECT delivery_id, attempt, started_at, status_code, latency_ms, error \
             FROM webhook_attempts WHERE delivery_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        deliveries_from_rows(rows, attempts)
    }
}
