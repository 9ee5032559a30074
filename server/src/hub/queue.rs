//! Ready queues: per capability, ordered by effective priority, FIFO within it.
//!
//! Effective priority is `priority + waited / aging_interval`: every
//! `aging_interval` of waiting is worth one priority level, so low-priority
//! work never starves. Because every waiting task ages at the same rate, the
//! order between two tasks never changes while they wait: comparing
//! `p1 + (now - t1)/A` with `p2 + (now - t2)/A` is comparing `t1 - p1*A` with
//! `t2 - p2*A`. So each task gets a fixed *virtual time* `enqueued - priority
//! × A` when it is queued, and the queue is a `BTreeMap` ordered by it: push
//! and pop are O(log n), with no periodic re-sorting.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use uuid::Uuid;

/// Ordering key: virtual time in milliseconds, then a sequence number (FIFO).
type Key = (i64, u64);

/// One capability's queue of ready task ids.
#[derive(Debug, Default)]
pub struct ReadyQueue {
    order: BTreeMap<Key, Uuid>,
    keys: HashMap<Uuid, Key>,
    /// When each task was queued (ms), for the "oldest waiting" metric.
    queued_at: HashMap<Uuid, i64>,
}

impl ReadyQueue {
    /// Queues `task` with `priority` (0..=9) at `now_ms`; `seq` breaks ties FIFO.
    /// Re-queuing a task already queued moves it.
    pub fn push(&mut self, task: Uuid, priority: i16, now_ms: i64, aging: Duration, seq: u64) {
        self.remove(task);
        let aging_ms = i64::try_from(aging.as_millis())
            .unwrap_or(i64::MAX / 16)
            .max(1);
        let virtual_time = now_ms.saturating_sub(i64::from(priority).saturating_mul(aging_ms));
        let key = (virtual_time, seq);
        self.order.insert(key, task);
        self.keys.insert(task, key);
        self.queued_at.insert(task, now_ms);
    }

    /// The task that should run next, without removing it.
    pub fn peek(&self) -> Option<Uuid> {
        self.order.values().next().copied()
    }

    /// Removes and returns the task that should run next.
    pub fn pop(&mut self) -> Option<Uuid> {
        let (_, task) = self.order.pop_first()?;
        self.keys.remove(&task);
        self.queued_at.remove(&task);
        Some(task)
    }

    /// Removes a task (cancelled, or taken by another path). Returns whether it was queued.
    pub fn remove(&mut self, task: Uuid) -> bool {
        match self.keys.remove(&task) {
            Some(key) => {
                self.order.remove(&key);
                self.queued_at.remove(&task);
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// When the longest-waiting task was queued (ms), if any.
    pub fn oldest_queued_at(&self) -> Option<i64> {
        self.queued_at.values().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Duration = Duration::from_secs(10);

    fn ids(n: usize) -> Vec<Uuid> {
        (0..n).map(|_| Uuid::now_v7()).collect()
    }

    #[test]
    fn higher_priority_first_then_fifo() {
        let t = ids(4);
        let mut q = ReadyQueue::default();
        q.push(t[0], 1, 0, A, 0);
        q.push(t[1], 5, 0, A, 1);
        q.push(t[2], 5, 0, A, 2);
        q.push(t[3], 9, 0, A, 3);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![t[3], t[1], t[2], t[0]]);
    }

    #[test]
    fn aging_lets_old_low_priority_work_overtake() {
        let t = ids(2);
        let mut q = ReadyQueue::default();
        // Priority 0 queued at 0; priority 5 queued 60 s later: the old task
        // has aged 6 levels by then, so it runs first.
        q.push(t[0], 0, 0, A, 0);
        q.push(t[1], 5, 60_000, A, 1);
        assert_eq!(q.pop(), Some(t[0]));
        // ...but 40 s of waiting is only 4 levels: the newer priority-5 task wins.
        let mut q = ReadyQueue::default();
        q.push(t[0], 0, 0, A, 0);
        q.push(t[1], 5, 40_000, A, 1);
        assert_eq!(q.pop(), Some(t[1]));
    }

    #[test]
    fn remove_and_requeue() {
        let t = ids(3);
        let mut q = ReadyQueue::default();
        for (i, id) in t.iter().enumerate() {
            q.push(*id, 5, i as i64, A, i as u64);
        }
        assert!(q.remove(t[0]));
        assert!(!q.remove(t[0]));
        q.push(t[1], 5, 100, A, 9); // re-queued: moves to the back
        assert_eq!(q.len(), 2);
        assert_eq!(q.oldest_queued_at(), Some(2));
        assert_eq!(q.pop(), Some(t[2]));
        assert_eq!(q.pop(), Some(t[1]));
        assert!(q.is_empty());
    }
}
