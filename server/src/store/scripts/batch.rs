//! Group commit over a driver (see [`crate::store::group_commit`]): the ops
//! of a batch in one transaction, their events appended last in one append.
//!
//! The hot transitions (assign, start, complete) are applied set by set: all
//! the assignments of a run in one `UPDATE … FROM (VALUES …)`, then the
//! starts, then the completions, so a batch of 500 ops costs about the same
//! number of statements as a batch of one. [`runs`] cuts the batch where
//! that would give a different result from applying the ops in order.

use std::collections::HashMap;
use std::ops::Range;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::agents::register_agents_in;
use super::complete::complete_tasks;
use super::create::create_jobs_in;
use super::finish::fail_task;
use super::items::append_batch;
use super::jobs::fetch_jobs;
use super::tasks::{assign_tasks, extend_lease, requeue_task, start_tasks};
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
    /// Other nodes share the database: tell them of each commit.
    pub(super) peers: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait]
impl<D: Driver> ApplyBatch for Batch<D> {
    async fn apply_batch(
        &self,
        ops: &[(WriteOp, Option<String>)],
    ) -> Result<Vec<Result<Applied, StoreError>>, StoreError> {
        let at = shared::now();
        let mut tx = D::begin(&self.write).await?;
        let mut applying: Vec<Applying> = ops
            .iter()
            .map(|(_, request_id)| Applying::new(at, request_id.clone()))
            .collect();
        let mut results: Vec<Option<Result<Applied, StoreError>>> =
            ops.iter().map(|_| None).collect();
        for run in runs(ops) {
            match run {
                Run::Sets(range) => {
                    apply_sets::<D>(&mut tx, ops, range, at, &mut applying, &mut results).await?
                }
                Run::One(i) => {
                    let cx = &mut applying[i];
                    results[i] = Some(match apply::<D>(&mut tx, &ops[i].0, cx).await {
                        Ok(applied) => Ok(applied),
                        Err(refused) if is_refusal(&refused) => {
                            // Refused before writing anything (see the module
                            // docs of `group_commit`).
                            cx.events.clear();
                            cx.jobs.clear();
                            Err(refused)
                        }
                        Err(error) => return Err(error),
                    });
                }
            }
        }
        let mut results: Vec<_> = results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::Corrupt("an op was not applied".into()))))
            .collect();
        let mut changed: Vec<_> = applying
            .iter()
            .flat_map(|cx| cx.jobs.iter().copied())
            .collect();
        changed.sort_unstable();
        changed.dedup();
        let jobs = fetch_jobs::<D>(&mut tx, &changed).await?;
        fill_jobs(&mut results, &applying, &jobs);
        append_batch::<D>(&mut tx, &applying).await?;
        if let Some(notify) = D::NOTIFY_COMMIT
            && self.peers.load(std::sync::atomic::Ordering::Relaxed)
        {
            // Delivered when the transaction commits, and only then.
            crate::store::driver::query::<D>(notify)
                .execute(&mut tx)
                .await?;
        }
        D::commit(tx).await?;
        Ok(results)
    }

    fn committed(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A stretch of a batch applied together.
#[derive(Debug, PartialEq)]
enum Run {
    /// Agent registrations, job creations, assignments, starts and
    /// completions, each kind in a constant number of set-based statements,
    /// in that order.
    Sets(Range<usize>),
    /// Any other op, on its own.
    One(usize),
}

/// The set-based phase of an op (create, assign, start, complete) and its
/// task. A job's creation touches no task of the batch (the dispatcher
/// learns of its task only once it has committed).
fn phase(op: &WriteOp) -> Option<(u8, Option<Uuid>)> {
    match op {
        WriteOp::RegisterAgent(_) | WriteOp::CreateJob(_) => Some((0, None)),
        WriteOp::Assign(a) => Some((1, Some(a.task_id))),
        WriteOp::Start(s) => Some((2, Some(s.task_id))),
        WriteOp::Complete(c) => Some((3, Some(c.task_id))),
        _ => None,
    }
}

/// Splits a batch into runs whose result is the same as applying the ops
/// one by one, in order: a run of set-based ops applies its phases in
/// lifecycle order, so it ends before an op whose task already had that
/// phase, or a later one, in the run (a second `accept` of a task goes to
/// the next run and is refused there, as it would be on its own). Ops of
/// different tasks commute, except for job completion, which only the
/// completion phase decides. Any other op is a run of its own, in place.
fn runs(ops: &[(WriteOp, Option<String>)]) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut seen: HashMap<Uuid, u8> = HashMap::new();
    for (i, (op, _)) in ops.iter().enumerate() {
        match phase(op) {
            Some((_, None)) => {}
            Some((phase, Some(task))) => {
                if seen.get(&task).is_some_and(|&p| p >= phase) {
                    runs.push(Run::Sets(start..i));
                    start = i;
                    seen.clear();
                }
                seen.insert(task, phase);
            }
            None => {
                if start < i {
                    runs.push(Run::Sets(start..i));
                }
                runs.push(Run::One(i));
                start = i + 1;
                seen.clear();
            }
        }
    }
    if start < ops.len() {
        runs.push(Run::Sets(start..ops.len()));
    }
    runs
}

/// Applies a run of assignments, starts and completions (see [`runs`]),
/// writing each op's result and changes at its index.
async fn apply_sets<D: Driver>(
    conn: &mut D::Conn,
    ops: &[(WriteOp, Option<String>)],
    run: Range<usize>,
    at: DateTime<Utc>,
    applying: &mut [Applying],
    results: &mut [Option<Result<Applied, StoreError>>],
) -> Result<(), StoreError> {
    let (mut creates, mut assigns, mut starts, mut completes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut registers = Vec::new();
    for i in run {
        match &ops[i].0 {
            WriteOp::RegisterAgent(r) => registers.push((i, &**r)),
            WriteOp::CreateJob(job) => creates.push((i, &**job)),
            WriteOp::Assign(a) => assigns.push((i, a)),
            WriteOp::Start(s) => starts.push((i, s)),
            WriteOp::Complete(c) => completes.push((i, c)),
            _ => {
                return Err(StoreError::Corrupt(
                    "a set-based run holds another op".into(),
                ));
            }
        }
    }
    if !registers.is_empty() {
        let set: Vec<_> = registers.iter().map(|(_, r)| *r).collect();
        let made = register_agents_in::<D>(&mut *conn, &set, at).await?;
        for ((i, _), (record, event)) in registers.iter().zip(made) {
            applying[*i].events.push(event);
            results[*i] = Some(Ok(Applied::Agent(Box::new(record))));
        }
    }
    if !creates.is_empty() {
        let set: Vec<_> = creates.iter().map(|(_, j)| *j).collect();
        let made = create_jobs_in::<D>(&mut *conn, &set, at).await?;
        for ((i, _), result) in creates.iter().zip(made) {
            results[*i] = Some(result.map(|made| {
                applying[*i].events.extend(made.events);
                Applied::Created(Box::new(Created {
                    outcome: made.outcome,
                    ready: made.ready,
                }))
            }));
        }
    }
    if !assigns.is_empty() {
        let set: Vec<_> = assigns.iter().map(|(_, a)| *a).collect();
        let moved = assign_tasks::<D>(&mut *conn, &set, at).await?;
        for ((i, _), result) in assigns.iter().zip(moved) {
            results[*i] = Some(result.map(|(task, changes)| {
                Applied::Outcome(applying[*i].outcome(Some(task), changes))
            }));
        }
    }
    if !starts.is_empty() {
        let set: Vec<_> = starts.iter().map(|(_, s)| *s).collect();
        let moved = start_tasks::<D>(&mut *conn, &set, at).await?;
        for ((i, _), result) in starts.iter().zip(moved) {
            results[*i] = Some(result.map(|(task, changes)| {
                applying[*i].outcome(None, changes);
                Applied::Task(task)
            }));
        }
    }
    if !completes.is_empty() {
        let set: Vec<_> = completes.iter().map(|(_, c)| *c).collect();
        let moved = complete_tasks::<D>(&mut *conn, &set, at).await?;
        for ((i, _), result) in completes.iter().zip(moved) {
            results[*i] = Some(result.map(|(task, changes)| {
                Applied::Outcome(applying[*i].outcome(Some(task), changes))
            }));
        }
    }
    Ok(())
}

/// One op on its own; what it adds to the batch goes to `cx`.
async fn apply<D: Driver>(
    conn: &mut D::Conn,
    op: &WriteOp,
    cx: &mut Applying,
) -> Result<Applied, StoreError> {
    Ok(match op {
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
        WriteOp::RegisterAgent(_)
        | WriteOp::CreateJob(_)
        | WriteOp::Assign(_)
        | WriteOp::Start(_)
        | WriteOp::Complete(_) => {
            return Err(StoreError::Corrupt(
                "a set-based op was applied on its own".into(),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TaskCompletion;

    fn start(task_id: Uuid) -> (WriteOp, Option<String>) {
        let op = WriteOp::Start(crate::store::group_commit::Start {
            task_id,
            attempt: 1,
            agent_id: Uuid::nil(),
            lease_until: shared::now(),
        });
        (op, None)
    }

    fn complete(task_id: Uuid) -> (WriteOp, Option<String>) {
        let op = WriteOp::Complete(TaskCompletion {
            task_id,
            attempt: 1,
            agent_id: Uuid::nil(),
            output: serde_json::json!({}),
            verdict: switchyard_agent::protocol::Verdict::Accepted,
            reason: None,
            usage: Default::default(),
            items: Vec::new(),
        });
        (op, None)
    }

    fn requeue(task_id: Uuid) -> (WriteOp, Option<String>) {
        let op = WriteOp::Requeue {
            task_id,
            attempt: 1,
            agent_id: Uuid::nil(),
            run_at: shared::now(),
            reason: "test".into(),
        };
        (op, None)
    }

    #[test]
    fn a_task_moves_forward_within_a_run() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let ops = [start(a), start(b), complete(a), complete(b)];
        assert_eq!(runs(&ops), [Run::Sets(0..4)]);
    }

    #[test]
    fn a_repeated_or_backward_step_starts_a_new_run() {
        let a = Uuid::now_v7();
        let ops = [start(a), start(a), complete(a), start(a)];
        assert_eq!(
            runs(&ops),
            [Run::Sets(0..1), Run::Sets(1..3), Run::Sets(3..4)]
        );
    }

    #[test]
    fn other_ops_stand_alone_in_place() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let ops = [start(a), requeue(b), complete(a), requeue(a)];
        assert_eq!(
            runs(&ops),
            [Run::Sets(0..1), Run::One(1), Run::Sets(2..3), Run::One(3)]
        );
    }
}
