//! Group commit on Postgres (see [`crate::store::group_commit`]): the ops of a
//! batch in one transaction, their events appended last in one insert.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::finish::{complete_task, fail_task};
use super::items::append_stamped;
use super::tasks::{assign_task, extend_lease, requeue_task, start_task};
use crate::domain::NewEvent;
use crate::store::StoreError;
use crate::store::group_commit::{Applied, ApplyBatch, Stamped, WriteOp, is_refusal};
use crate::store::shared;

/// The writer's side of the store: its pool and the commit counter.
pub(super) struct Batch {
    pub(super) pool: PgPool,
    pub(super) commits: tokio::sync::watch::Sender<u64>,
}

#[async_trait]
impl ApplyBatch for Batch {
    async fn apply_batch(
        &self,
        ops: &[(WriteOp, Option<String>)],
    ) -> Result<Vec<Result<Applied, StoreError>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut results = Vec::with_capacity(ops.len());
        let mut stamped = Vec::with_capacity(ops.len());
        for (op, request_id) in ops {
            let at = shared::now();
            let mut events = Vec::new();
            match apply(&mut tx, op, at, &mut events).await {
                Ok(applied) => {
                    results.push(Ok(applied));
                    stamped.push(Stamped {
                        at,
                        request_id: request_id.clone(),
                        events,
                    });
                }
                Err(refused) if is_refusal(&refused) => results.push(Err(refused)),
                Err(error) => return Err(error),
            }
        }
        append_stamped(&mut tx, &stamped).await?;
        tx.commit().await?;
        Ok(results)
    }

    fn committed(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// One op, at `at`; its events go to `events`.
async fn apply(
    conn: &mut PgConnection,
    op: &WriteOp,
    at: DateTime<Utc>,
    events: &mut Vec<NewEvent>,
) -> Result<Applied, StoreError> {
    Ok(match op {
        WriteOp::Assign {
            task_id,
            expected_attempt,
            agent_id,
            accept_by,
        } => Applied::Outcome(
            assign_task(
                conn,
                *task_id,
                *expected_attempt,
                *agent_id,
                *accept_by,
                at,
                events,
            )
            .await?,
        ),
        WriteOp::Start {
            task_id,
            attempt,
            agent_id,
            lease_until,
        } => Applied::Task(
            start_task(
                conn,
                *task_id,
                *attempt,
                *agent_id,
                *lease_until,
                at,
                events,
            )
            .await?,
        ),
        WriteOp::ExtendLease {
            task_id,
            attempt,
            agent_id,
            lease_until,
            progress,
        } => {
            extend_lease(
                conn,
                (*task_id, *attempt, *agent_id),
                *lease_until,
                progress.clone(),
                at,
                events,
            )
            .await?;
            Applied::Done
        }
        WriteOp::Complete(completion) => {
            Applied::Outcome(complete_task(conn, completion, at, events).await?)
        }
        WriteOp::Fail(failure) => Applied::Outcome(fail_task(conn, failure, at, events).await?),
        WriteOp::Requeue {
            task_id,
            attempt,
            agent_id,
            run_at,
            reason,
        } => Applied::Task(
            requeue_task(
                conn,
                (*task_id, *attempt, *agent_id),
                *run_at,
                reason.clone(),
                at,
                events,
            )
            .await?,
        ),
    })
}
