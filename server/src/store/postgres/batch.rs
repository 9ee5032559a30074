//! Group commit on Postgres (see [`crate::store::group_commit`]): the ops of a
//! batch in one transaction, their events appended last in one insert.

use async_trait::async_trait;
use sqlx::{PgConnection, PgPool};

use super::finish::{complete_task, fail_task};
use super::items::append_batch;
use super::jobs::create_job_in;
use super::jobs::fetch_jobs;
use super::tasks::{assign_task, extend_lease, requeue_task, start_task};
use crate::store::StoreError;
use crate::store::group_commit::{Applied, ApplyBatch, Applying, WriteOp, fill_jobs, is_refusal};
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
        let mut applying = Vec::with_capacity(ops.len());
        for (op, request_id) in ops {
            let mut cx = Applying::new(shared::now(), request_id.clone());
            match apply(&mut tx, op, &mut cx).await {
                Ok(applied) => results.push(Ok(applied)),
                Err(refused) if is_refusal(&refused) => results.push(Err(refused)),
                Err(error) => return Err(error),
            }
            applying.push(cx);
        }
        let mut changed: Vec<_> = applying
            .iter()
            .flat_map(|cx| cx.jobs.iter().copied())
            .collect();
        changed.sort_unstable();
        changed.dedup();
        let jobs = fetch_jobs(&mut tx, &changed).await?;
        fill_jobs(&mut results, &applying, &jobs);
        append_batch(&mut tx, &applying).await?;
        tx.commit().await?;
        Ok(results)
    }

    fn committed(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// One op; what it adds to the batch goes to `cx`.
async fn apply(
    conn: &mut PgConnection,
    op: &WriteOp,
    cx: &mut Applying,
) -> Result<Applied, StoreError> {
    Ok(match op {
        WriteOp::CreateJob(job) => Applied::Created(Box::new(create_job_in(conn, job, cx).await?)),
        WriteOp::Assign {
            task_id,
            expected_attempt,
            agent_id,
            accept_by,
        } => Applied::Outcome(
            assign_task(conn, *task_id, *expected_attempt, *agent_id, *accept_by, cx).await?,
        ),
        WriteOp::Start {
            task_id,
            attempt,
            agent_id,
            lease_until,
        } => {
            Applied::Task(start_task(conn, *task_id, *attempt, *agent_id, *lease_until, cx).await?)
        }
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
                cx,
            )
            .await?;
            Applied::Done
        }
        WriteOp::Complete(completion) => {
            Applied::Outcome(complete_task(conn, completion, cx).await?)
        }
        WriteOp::Fail(failure) => Applied::Outcome(fail_task(conn, failure, cx).await?),
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
                cx,
            )
            .await?,
        ),
    })
}
