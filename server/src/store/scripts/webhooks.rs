//! [`WebhookStore`] over a driver.
//!
//! Claims are conditional updates (`WHERE status = 'pending' AND
//! next_attempt_at <= now`): of two nodes claiming the same row on Postgres,
//! the second blocks on the row lock, re-evaluates the condition against the
//! first's new `next_attempt_at`, and skips the row (SQLite has one writer).
//! A claim updates the delivery rows, then reads what it claimed joined with
//! the webhook, in the same transaction (SQLite's `RETURNING` cannot name
//! joined tables).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::SqlStore;
use super::items::append_events;
use crate::store::StoreError;
use crate::store::driver::{Driver, RowLock, Ts, Uuids, opt_ts, query};
use crate::store::shared::{self, INSERT_CHUNK};
use crate::store::webhooks::{
    AttemptRow, ClaimRow, DeliveryRow, WebhookRow, WebhookStore, apply_patch, deliveries_from_rows,
    delivery_columns, delivery_update, status_code, webhook_columns,
};
use crate::webhooks::model::{
    AttemptEffect, AttemptOutcome, AttemptRecord, ClaimedDelivery, Delivery, DeliveryStatus,
    DueDelivery, NewDelivery, NewWebhook, SigningKeys, Webhook, WebhookPatch, disable_reason,
    disabled_event,
};

async fn last_seq<D: Driver>(conn: &mut D::Conn) -> Result<i64, StoreError> {
    let (seq,): (i64,) = query::<D>("SELECT COALESCE(MAX(seq), 0) FROM events")
        .fetch_one(&mut *conn)
        .await?;
    Ok(seq)
}

async fn fetch_for_update<D: Driver>(conn: &mut D::Conn, id: Uuid) -> Result<Webhook, StoreError> {
    let row: Option<WebhookRow> = query::<D>(format!(
        concat!(
            "SELECT ",
            webhook_columns!(),
            " FROM webhooks WHERE id = $1{}"
        ),
        D::row_lock(RowLock::Update)
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Webhook::from)
        .ok_or(StoreError::NotFound("webhook"))
}

/// Writes every mutable column of `w`.
async fn save<D: Driver>(conn: &mut D::Conn, w: &Webhook) -> Result<(), StoreError> {
    query::<D>(
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
    .bind(opt_ts(w.failing_since))
    .bind(w.since_seq)
    .bind(&w.keys.current)
    .bind(&w.keys.previous)
    .bind(opt_ts(w.keys.previous_expires_at))
    .bind(Ts(w.updated_at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl<D: Driver> WebhookStore for SqlStore<D> {
    async fn create_webhook(&self, new: NewWebhook) -> Result<Webhook, StoreError> {
        let at = shared::now();
        let mut tx = D::begin(&self.write).await?;
        let since_seq = last_seq::<D>(&mut tx).await?;
        let row: WebhookRow = query::<D>(concat!(
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
        .bind(Ts(at))
        .fetch_one(&mut *tx)
        .await?;
        D::commit(tx).await?;
        Ok(row.into())
    }

    async fn get_webhook(&self, id: Uuid) -> Result<Option<Webhook>, StoreError> {
        let row: Option<WebhookRow> = query::<D>(concat!(
            "SELECT ",
            webhook_columns!(),
            " FROM webhooks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *self.reader().await?)
        .await?;
        Ok(row.map(Webhook::from))
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        let rows: Vec<WebhookRow> = query::<D>(concat!(
            "SELECT ",
            webhook_columns!(),
            " FROM webhooks ORDER BY created_at, id"
        ))
        .fetch_all(&mut *self.reader().await?)
        .await?;
        Ok(rows.into_iter().map(Webhook::from).collect())
    }

    async fn update_webhook(&self, id: Uuid, patch: WebhookPatch) -> Result<Webhook, StoreError> {
        let mut tx = D::begin(&self.write).await?;
        let mut webhook = fetch_for_update::<D>(&mut tx, id).await?;
        let last = last_seq::<D>(&mut tx).await?;
        apply_patch(&mut webhook, patch, last, shared::now());
        save::<D>(&mut tx, &webhook).await?;
        D::commit(tx).await?;
        Ok(webhook)
    }

    async fn delete_webhook(&self, id: Uuid) -> Result<(), StoreError> {
        let mut tx = D::begin(&self.write).await?;
        let done = query::<D>("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        D::commit(tx).await?;
        if done == 0 {
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
        let mut tx = D::begin(&self.write).await?;
        let mut webhook = fetch_for_update::<D>(&mut tx, id).await?;
        webhook.keys.previous = Some(std::mem::replace(&mut webhook.keys.current, secret));
        webhook.keys.previous_expires_at = Some(previous_expires_at);
        webhook.updated_at = shared::now();
        save::<D>(&mut tx, &webhook).await?;
        D::commit(tx).await?;
        Ok(webhook)
    }

    async fn reseal_webhook_secrets(
        &self,
        id: Uuid,
        old: &SigningKeys,
        new: &SigningKeys,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.write).await?;
        let updated = query::<D>(
            "UPDATE webhooks SET secret = $2, previous_secret = $3 \
             WHERE id = $1 AND secret = $4 AND COALESCE(previous_secret, '') = COALESCE($5, '')",
        )
        .bind(id)
        .bind(&new.current)
        .bind(&new.previous)
        .bind(&old.current)
        .bind(&old.previous)
        .execute(&mut *tx)
        .await?;
        D::commit(tx).await?;
        Ok(updated == 1)
    }

    async fn delete_webhook_deliveries_before(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        // Attempts go by `ON DELETE CASCADE` (SQLite enforces foreign keys:
        // sqlx turns them on for every connection).
        let mut tx = D::begin(&self.write).await?;
        let deleted = query::<D>(
            "DELETE FROM webhook_deliveries WHERE id IN \
             (SELECT id FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < $1 \
              ORDER BY updated_at LIMIT $2)",
        )
        .bind(Ts(before))
        .bind(i64::from(limit.max(1)))
        .execute(&mut *tx)
        .await?;
        D::commit(tx).await?;
        Ok(deleted)
    }

    async fn webhook_cursor(&self) -> Result<i64, StoreError> {
        let seq: Option<(i64,)> = query::<D>("SELECT seq FROM webhook_cursor WHERE id = 1")
            .fetch_optional(&mut *self.reader().await?)
            .await?;
        Ok(seq.map_or(0, |(seq,)| seq))
    }

    async fn enqueue_webhook_deliveries(
        &self,
        deliveries: &[NewDelivery],
        cursor: Option<i64>,
    ) -> Result<u64, StoreError> {
        let at = shared::now();
        let mut tx = D::begin(&self.write).await?;
        let mut inserted = 0;
        for chunk in deliveries.chunks(INSERT_CHUNK) {
            let mut qb = query::<D>(
                "INSERT INTO webhook_deliveries (id, webhook_id, event_seq, generation, event_type, \
                 job_id, request_id, body, status, next_attempt_at, created_at, updated_at) ",
            );
            qb.push_values(chunk, |row, d| {
                row.bind(d.id)
                    .bind(d.webhook_id)
                    .bind(d.event_seq)
                    .bind(d.generation)
                    .bind(d.event_type.as_str())
                    .bind(d.job_id)
                    .bind(d.request_id.as_deref())
                    .bind(&d.body)
                    .bind(DeliveryStatus::Pending.as_str())
                    .bind(Ts(at))
                    .bind(Ts(at))
                    .bind(Ts(at));
            });
            qb.push(" ON CONFLICT (webhook_id, event_seq, generation) DO NOTHING");
            inserted += qb.execute(&mut *tx).await?;
        }
        if let Some(cursor) = cursor {
            query::<D>("UPDATE webhook_cursor SET seq = $1 WHERE id = 1 AND seq < $1")
                .bind(cursor)
                .execute(&mut *tx)
                .await?;
        }
        D::commit(tx).await?;
        Ok(inserted)
    }

    async fn next_replay_generation(&self, id: Uuid) -> Result<i32, StoreError> {
        let mut tx = D::begin(&self.write).await?;
        let generation: Option<(i32,)> = query::<D>(
            "UPDATE webhooks SET replay_generation = replay_generation + 1 WHERE id = $1 \
             RETURNING replay_generation",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        D::commit(tx).await?;
        generation
            .map(|(g,)| g)
            .ok_or(StoreError::NotFound("webhook"))
    }

    async fn event_seq_before(&self, at: DateTime<Utc>) -> Result<i64, StoreError> {
        let mut conn = self.reader().await?;
        let (first,): (Option<i64>,) =
            query::<D>("SELECT MIN(seq) FROM events WHERE created_at >= $1")
                .bind(Ts(at))
                .fetch_one(&mut *conn)
                .await?;
        match first {
            Some(seq) => Ok(seq - 1),
            None => last_seq::<D>(&mut conn).await,
        }
    }

    async fn due_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        exclude: &[Uuid],
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let rows: Vec<(Uuid, Uuid)> = query::<D>(format!(
            "SELECT d.id, d.webhook_id FROM webhook_deliveries d \
             JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND w.enabled \
             AND NOT (d.webhook_id {}) \
             ORDER BY d.next_attempt_at LIMIT $3",
            D::in_uuids(2)
        ))
        .bind(Ts(now))
        .bind(Uuids(exclude.to_vec()))
        .bind(i64::from(shared::page_limit(limit)))
        .fetch_all(&mut *self.reader().await?)
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
        let (due,): (Option<DateTime<Utc>>,) = query::<D>(format!(
            "SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d \
             JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.status = 'pending' AND w.enabled AND NOT (d.webhook_id {})",
            D::in_uuids(1)
        ))
        .bind(Uuids(exclude.to_vec()))
        .fetch_one(&mut *self.reader().await?)
        .await?;
        Ok(due)
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
        let mut tx = D::begin(&self.write).await?;
        let claimed: Vec<(Uuid,)> = query::<D>(format!(
            "UPDATE webhook_deliveries SET next_attempt_at = $3, updated_at = $2 \
             WHERE id {} AND status = 'pending' AND next_attempt_at <= $2 \
             AND webhook_id IN (SELECT id FROM webhooks WHERE enabled) RETURNING id",
            D::in_uuids(1)
        ))
        .bind(Uuids(ids.to_vec()))
        .bind(Ts(now))
        .bind(Ts(lease_until))
        .fetch_all(&mut *tx)
        .await?;
        let claimed: Vec<Uuid> = claimed.into_iter().map(|(id,)| id).collect();
        let rows: Vec<ClaimRow> = query::<D>(format!(
            "SELECT d.id, d.webhook_id, d.event_seq, d.event_type, d.job_id, d.request_id, \
             d.body, d.attempts, w.url, w.secret, w.previous_secret, w.previous_secret_expires_at \
             FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.id {} \
             ORDER BY d.id",
            D::in_uuids(1)
        ))
        .bind(Uuids(claimed))
        .fetch_all(&mut *tx)
        .await?;
        D::commit(tx).await?;
        Ok(rows.into_iter().map(ClaimedDelivery::from).collect())
    }

    async fn record_webhook_attempt(
        &self,
        record: &AttemptRecord,
    ) -> Result<AttemptEffect, StoreError> {
        let (status, next, delivered_at) = delivery_update(record);
        let mut tx = D::begin(&self.write).await?;
        let updated = query::<D>(
            "UPDATE webhook_deliveries SET status = $3, attempts = $2, \
             next_attempt_at = COALESCE($4, next_attempt_at), delivered_at = $5, updated_at = $6 \
             WHERE id = $1 AND attempts = $2 - 1 AND status = 'pending'",
        )
        .bind(record.delivery_id)
        .bind(record.attempt)
        .bind(status.as_str())
        .bind(opt_ts(next))
        .bind(opt_ts(delivered_at))
        .bind(Ts(record.finished_at))
        .execute(&mut *tx)
        .await?;
        if updated == 0 {
            return Ok(AttemptEffect::default());
        }
        query::<D>(
            "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, status_code, \
             latency_ms, error) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(record.delivery_id)
        .bind(record.attempt)
        .bind(Ts(record.started_at))
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
            query::<D>(
                "UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL",
            )
            .bind(record.webhook_id)
            .execute(&mut *tx)
            .await?;
        } else {
            let state: Option<(Option<DateTime<Utc>>, bool, String)> = query::<D>(
                "UPDATE webhooks SET failing_since = COALESCE(failing_since, $2) WHERE id = $1 \
                 RETURNING failing_since, enabled, url",
            )
            .bind(record.webhook_id)
            .bind(Ts(record.started_at))
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((failing_since, true, url)) = state
                && let Some(reason) = disable_reason(record, failing_since)
            {
                query::<D>(
                    "UPDATE webhooks SET enabled = false, disabled_reason = $2, updated_at = $3 \
                     WHERE id = $1",
                )
                .bind(record.webhook_id)
                .bind(&reason)
                .bind(Ts(record.finished_at))
                .execute(&mut *tx)
                .await?;
                let event = disabled_event(record.webhook_id, &url, &reason);
                append_events::<D>(&mut tx, &[event], record.finished_at).await?;
                effect.disabled = true;
            }
        }
        D::commit(tx).await?;
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
        let mut conn = self.reader().await?;
        let rows: Vec<DeliveryRow> = query::<D>(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM webhook_deliveries WHERE webhook_id = $1 AND ($4 OR id < $2) \
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(webhook_id)
        .bind(before)
        .bind(i64::from(shared::page_limit(limit)))
        .bind(before.is_none())
        .fetch_all(&mut *conn)
        .await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let attempts: Vec<AttemptRow> = query::<D>(format!(
            "SELECT delivery_id, attempt, started_at, status_code, latency_ms, error \
             FROM webhook_attempts WHERE delivery_id {}",
            D::in_uuids(1)
        ))
        .bind(Uuids(ids))
        .fetch_all(&mut *conn)
        .await?;
        deliveries_from_rows(rows, attempts)
    }
}
