//! [`NodeStore`] over a driver.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::SqlStore;
use crate::domain::{Task, TaskStatus};
use crate::store::StoreError;
use crate::store::driver::{Driver, Texts, Ts, query};
use crate::store::nodes::{NodeRecord, NodeStore};
use crate::store::shared::{self, TaskRow, task_columns};

#[async_trait]
impl<D: Driver> NodeStore for SqlStore<D> {
    async fn node_heartbeat(&self, node: &NodeRecord, at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = D::begin(&self.write).await?;
        query::<D>(
            "INSERT INTO nodes (id, name, url, version, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, stopped_at = NULL",
        )
        .bind(node.id)
        .bind(node.name.as_str())
        .bind(node.url.as_str())
        .bind(node.version.as_str())
        .bind(Ts(node.started_at))
        .bind(Ts(at))
        .execute(&mut *tx)
        .await?;
        D::commit(tx).await?;
        Ok(())
    }

    async fn node_stopped(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = D::begin(&self.write).await?;
        query::<D>("UPDATE nodes SET stopped_at = $2 WHERE id = $1")
            .bind(id)
            .bind(Ts(at))
            .execute(&mut *tx)
            .await?;
        D::commit(tx).await?;
        Ok(())
    }

    async fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        query::<D>(
            "SELECT id, name, url, version, started_at, heartbeat_at, stopped_at \
             FROM nodes ORDER BY started_at, id",
        )
        .fetch_all(&mut *self.reader().await?)
        .await
    }

    async fn held_through_gone_nodes(
        &self,
        stopped_before: DateTime<Utc>,
        silent_before: DateTime<Utc>,
        except: &str,
        limit: u32,
    ) -> Result<Vec<Task>, StoreError> {
        let rows: Vec<TaskRow> = query::<D>(format!(
            concat!(
                "SELECT ",
                task_columns!(),
                " FROM tasks WHERE status {} AND agent_id IN \
                 (SELECT a.id FROM agents a JOIN nodes n ON n.id = a.node_id \
                  WHERE n.name <> $5 AND (n.stopped_at < $2 OR n.heartbeat_at < $3)) \
                 ORDER BY updated_at, id LIMIT $4"
            ),
            D::in_texts(1)
        ))
        .bind(Texts::of([TaskStatus::Assigned, TaskStatus::Running]))
        .bind(Ts(stopped_before))
        .bind(Ts(silent_before))
        .bind(i64::from(shared::page_limit(limit)))
        .bind(except)
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.into_iter().map(Task::try_from).collect()
    }

    async fn forget_nodes(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = D::begin(&self.write).await?;
        let deleted = query::<D>("DELETE FROM nodes WHERE heartbeat_at < $1")
            .bind(Ts(before))
            .execute(&mut *tx)
            .await?;
        D::commit(tx).await?;
        Ok(deleted)
    }

    async fn hold_lease(
        &self,
        name: &str,
        holder: Uuid,
        at: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // One statement: concurrent takers serialise on the row, and only
        // the holder, or anyone once it expired, may write it.
        let mut tx = D::begin(&self.write).await?;
        let held: Option<(Uuid,)> = query::<D>(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4 \
             RETURNING holder",
        )
        .bind(name.to_owned())
        .bind(holder)
        .bind(Ts(until))
        .bind(Ts(at))
        .fetch_optional(&mut *tx)
        .await?;
        D::commit(tx).await?;
        Ok(held.is_some_and(|(h,)| h == holder))
    }

    async fn lease_holder(
        &self,
        name: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<Uuid>, StoreError> {
        let holder: Option<(Uuid,)> =
            query::<D>("SELECT holder FROM leases WHERE name = $1 AND expires_at >= $2")
                .bind(name.to_owned())
                .bind(Ts(at))
                .fetch_optional(&mut *self.reader().await?)
                .await?;
        Ok(holder.map(|(h,)| h))
    }

    async fn release_lease(&self, name: &str, holder: Uuid) -> Result<(), StoreError> {
        let mut tx = D::begin(&self.write).await?;
        query::<D>("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name.to_owned())
            .bind(holder)
            .execute(&mut *tx)
            .await?;
        D::commit(tx).await?;
        Ok(())
    }
}
