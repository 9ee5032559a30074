// Stage-by-stage progress of one job, item counts and the ETA, all from
// `GET /v1/jobs/{id}/progress`, which aggregates in the store. The page
// never counts tasks from events it replayed: that was wrong on big jobs
// (a lagged stream or a trimmed replay showed 0/6187 on a job that had
// finished 20,207), while the store's counts are the truth by definition.

import { h } from '../dom.js';
import { fmtDuration, fmtNumber, TERMINAL_JOB } from '../format.js';

const CONFIDENCE = { low: 'rough', medium: 'fair', high: 'good' };

function stageItem(s) {
  const t = s.tasks;
  const done = t.succeeded + t.failed + t.cancelled;
  const parts = [];
  if (t.running + t.assigned) parts.push(`${fmtNumber(t.running + t.assigned)} running`);
  if (t.pending) parts.push(`${fmtNumber(t.pending)} waiting`);
  if (t.failed) parts.push(`${fmtNumber(t.failed)} failed`);
  if (t.cancelled) parts.push(`${fmtNumber(t.cancelled)} cancelled`);
  if (s.tasks_per_minute > 0 && t.pending + t.assigned + t.running > 0) parts.push(`${fmtNumber(s.tasks_per_minute / 60, 1)}/s`);
  return h(
    'li',
    { dataset: { stage: String(s.stage), total: String(t.total), done: String(done) } },
    h('div', { class: 'stage-head' },
      h('span', null, `${s.stage + 1}. `, h('code', null, s.capability)),
      h('span', { class: 'num' }, t.total ? `${fmtNumber(done)}/${fmtNumber(t.total)} tasks` : 'not started')),
    h('progress', { max: Math.max(1, t.total), value: done, 'aria-label': `stage ${s.stage + 1}, ${s.capability}: ${done} of ${t.total} tasks finished` }),
    parts.length ? h('small', { class: 'muted' }, parts.join(', ')) : null,
  );
}

function etaLine(job, progress) {
  if (TERMINAL_JOB.has(job.status)) return null;
  if (typeof progress.eta_seconds === 'number') {
    const confidence = CONFIDENCE[progress.eta_confidence] || progress.eta_confidence;
    return h(
      'p',
      { class: 'eta', id: 'eta', dataset: { confidence: progress.eta_confidence || '' } },
      'About ', h('strong', null, fmtDuration(Math.max(0, progress.eta_seconds))), ' left',
      confidence ? h('small', { class: 'muted' }, ` (${confidence} estimate: ${progress.eta_note})`) : null,
    );
  }
  return h('p', { class: 'eta muted', id: 'eta' }, `ETA unknown: ${progress.eta_reason || 'not enough progress yet to estimate'}`);
}

/** The progress card's content; `progress` may be null while loading. */
export function stagesView(job, progress) {
  if (!progress) return h('p', { class: 'muted' }, 'Reading the progress…');
  const c = progress.items;
  const itemsLine = c && c.total
    ? h('p', { class: 'items-line', dataset: { total: String(c.total) } }, `Items: ${fmtNumber(c.total)} — `, h('strong', null, `${fmtNumber(c.integrated)} integrated`), `, ${fmtNumber(c.rejected)} rejected, ${fmtNumber(c.failed)} failed, ${fmtNumber(c.pending + c.validating)} open`)
    : null;
  return h('div', null, h('ol', { class: 'stages', id: 'stages' }, progress.stages.map(stageItem)), itemsLine, etaLine(job, progress));
}
