//! Group commit over a driver (see [`crate::store::group_commit`]): the ops
//! of a batch in one transaction, their events appended last in one append.

use async_trait::async_trait;

use super::finish::{complete_task, fail_task};
use super::items::append_batch;
use super::jobs::{create_job_in, fetch_jobs};
use super::tasks::{assign_task, extend_lease, requeue_task, start_task};
use crate::store::StoreError;
use crate::store::driver::Driver;
use crate::store::group_commit::{
    Applied, ApplyBatch, Applying, Created, WriteOp, fill_jobs, is_refusal,
};
use crate::store::shared;

/// The writer's side of the store: its pool and the commit counter.
pub(super) struct Batch<D: Driver> {
    pub(super) write: D::Pool,
    pub(super) commits: tokio::sync::watch::Sender<u64>,
}

#[async_trait]
impl<D: Driver> ApplyBatch for Batch<D> {
    async fn apply_batch(
        &self,
        ops: &[(WriteOp, Option<String>)],
    ) -> Result<Vec<Result<Applied, StoreError>>, StoreError> {
        let mut tx = D::begin(&self.write).await?;
        let mut results = Vec::with_capacity(ops.len());
        let mut applying = Vec::with_capacity(ops.len());
        for (op, request_id) in ops {
            let mut cx = Applying::new(shared::now(), request_id.clone());
            match apply::<D>(&mut tx, op, &mut cx).await {
                Ok(applied) => results.push(Ok(applied)),
                Err(refused) if is_refusal(&refused) => {
                    // Refused before writing anything (see the module docs
                    // of `group_commit`).
                    cx.events.clear();
                    cx.jobs.clear();
                    results.push(Err(refused));
                }
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
        let jobs = fetch_jobs::<D>(&mut tx, &changed).await?;
        fill_jobs(&mut results, &applying, &jobs);
        append_batch::<D>(&mut tx, &applying).await?;
        D::commit(tx).await?;
        Ok(results)
    }

    fn committed(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// One op; what it adds to the batch goes to `cx`.
async fn apply<D: Driver>(
    conn: &mut D::Conn,
    op: &WriteOp,
    cx: &mut Applying,
) -> Result<Applied, StoreError> {
    Ok(match op {
        WriteOp::CreateJob(job) => {
            let outcome = create_job_in::<D>(conn, job, cx).await?;
            let ready = std::mem::take(&mut cx.ready);
            Applied::Created(Box::new(Created { outcome, ready }))
        }
        WriteOp::Assign {
            task_id,
            expected_attempt,
            agent_id,
            accept_by,
        } => Applied::Outcome(
            assign_task::<D>(conn, *task_id, *expected_attempt, *agent_id, *accept_by, cx).await?,
        ),
        WriteOp::Start {
            task_id,
            attempt,
            agent_id,
            lease_until,
        } => Applied::Task(
            start_task::<D>(conn, *task_id, *attempt, *agent_id, *lease_until, cx).await?,
        ),
        WriteOp::ExtendLease {
            task_id,
            attempt,
            agent_id,
            lease_until,
            progress,
        } => {
            let held = (*task_id, *attempt, *agent_id);
            extend_lease::<D>(conn, held, *lease_until, progress.clone(), cx).await?;
            Applied::Done
        }
        WriteOp::Complete(completion) => {
            Applied::Outcome(complete_task::<D>(conn, completion, cx).await?)
        }
        WriteOp::Fail(failure) => Applied::Outcome(fail_task::<D>(conn, failure, cx).await?),
        WriteOp::Requeue {
            task_id,
            attempt,
            agent_id,
            run_at,
            reason,
        } => {
            let held = (*task_id, *attempt, *agent_id);
            Applied::Task(requeue_task::<D>(conn, held, *run_at, reason.clone(), cx).await?)
        }
    })
}
