// Stage-by-stage progress of one job, built from its task events, plus the
// ETA from `GET /v1/jobs/{id}/progress` when the hub has that endpoint.

import { h, hubNow } from '../dom.js';
import { fmtDuration, TERMINAL_JOB } from '../format.js';

/** The task status an event leaves its task in. */
const TASK_STATUS_AFTER = {
  'task.created': 'pending',
  'task.requeued': 'pending',
  'task.retrying': 'pending',
  'task.assigned': 'assigned',
  'task.started': 'running',
  'task.progress': 'running',
  'task.succeeded': 'succeeded',
  'task.failed': 'failed',
  'task.cancelled': 'cancelled',
};

/** Counts tasks per stage and status from `task.*` events. */
export class StageTracker {
  tasks = new Map();

  add(ev) {
    const status = TASK_STATUS_AFTER[ev.type];
    const p = ev.payload || {};
    if (!status || !p.task_id) return;
    const known = this.tasks.get(p.task_id);
    const stage = Number.isInteger(p.stage) ? p.stage : known ? known.stage : 0;
    this.tasks.set(p.task_id, { stage, status });
  }

  /** `[{total, pending, assigned, running, succeeded, failed, cancelled}]` by stage. */
  stages(count) {
    const out = Array.from({ length: count }, () => ({ total: 0, pending: 0, assigned: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 }));
    for (const t of this.tasks.values()) {
      const s = out[t.stage];
      if (!s) continue;
      s.total += 1;
      s[t.status] += 1;
    }
    return out;
  }
}

/** The ETA in seconds from a progress answer, or `{reason}` when unknown. */
export function etaOf(progress) {
  if (!progress || typeof progress !== 'object') return null;
  const raw = progress.eta_seconds ?? progress.eta ?? null;
  const reason = progress.eta_reason || (progress.eta && progress.eta.reason) || null;
  if (typeof raw === 'number') return { seconds: raw };
  if (raw && typeof raw === 'object') {
    if (typeof raw.seconds === 'number') return { seconds: raw.seconds };
    if (typeof raw.remaining_seconds === 'number') return { seconds: raw.remaining_seconds };
    if (typeof raw.at === 'string') return { seconds: (Date.parse(raw.at) - hubNow()) / 1000 };
  }
  if (typeof raw === 'string' && !Number.isNaN(Date.parse(raw))) return { seconds: (Date.parse(raw) - hubNow()) / 1000 };
  if (typeof progress.eta_at === 'string') return { seconds: (Date.parse(progress.eta_at) - hubNow()) / 1000 };
  return { reason: reason || 'not enough progress yet to estimate' };
}

export function stagesView(job, tracker, progress) {
  const stages = tracker.stages(job.pipeline.length);
  const list = h(
    'ol',
    { class: 'stages', id: 'stages' },
    job.pipeline.map((cap, i) => {
      const s = stages[i];
      const done = s.succeeded + s.failed + s.cancelled;
      const parts = [];
      if (s.running + s.assigned) parts.push(`${s.running + s.assigned} running`);
      if (s.pending) parts.push(`${s.pending} waiting`);
      if (s.failed) parts.push(`${s.failed} failed`);
      if (s.cancelled) parts.push(`${s.cancelled} cancelled`);
      return h(
        'li',
        { dataset: { stage: String(i) } },
        h('div', { class: 'stage-head' }, h('span', null, `${i + 1}. `, h('code', null, cap)), h('span', { class: 'num' }, s.total ? `${done}/${s.total} tasks` : 'not started')),
        h('progress', { max: Math.max(1, s.total), value: done, 'aria-label': `stage ${i + 1}, ${cap}: ${done} of ${s.total} tasks finished` }),
        parts.length ? h('small', { class: 'muted' }, parts.join(', ')) : null,
      );
    }),
  );
  const c = job.items;
  const itemsLine = c && c.total
    ? h('p', { class: 'items-line' }, `Items: ${c.total} — `, h('strong', null, `${c.integrated} integrated`), `, ${c.rejected} rejected, ${c.failed} failed, ${c.pending + c.validating} open`)
    : null;
  let etaLine = null;
  if (progress && !TERMINAL_JOB.has(job.status)) {
    const eta = etaOf(progress);
    if (eta && typeof eta.seconds === 'number') {
      etaLine = h('p', { class: 'eta', id: 'eta' }, 'About ', h('strong', null, fmtDuration(Math.max(0, eta.seconds))), ' left');
    } else if (eta && eta.reason) {
      etaLine = h('p', { class: 'eta muted', id: 'eta' }, `ETA unknown: ${eta.reason}`);
    }
  }
  return h('div', null, list, itemsLine, etaLine);
}
