//! Group commit on Postgres (see [`crate::store::group_commit`]): the ops of a
//! batch in one transaction, their events appended last in one insert.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::finish::{complete_task, fail_task};
use super::items::append_batch;
use super::jobs::{create_job_in, fetch_jobs};
use super::tasks::{assign_task, extend_lease, requeue_task, start_task};
use crate::store::StoreError;

/// The writer's side of the store: its pool and the commit counter.
pub(super) struct Batch {
    pub(super) pool: PgPool,
    pub(super) commits: tokio::sync::watch::Sender<u64>,
}

impl Batch {
    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }
}

crate::store::group_commit::apply_batch_impl!(PgConnection);
