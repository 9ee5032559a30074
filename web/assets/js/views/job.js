// Job detail: summary, actions, stage-by-stage progress (with an ETA when
// the hub offers `GET /v1/jobs/{id}/progress`), the items table and the live
// events timeline.
//
// The page subscribes to `job:<id>` from sequence 0, so the stream replays
// the job's whole history (the timeline and the per-stage task counts are
// built from it) and then continues live. Each change re-reads the job once
// (debounced), so the header always shows the stored truth.

import { api, isMissing } from '../api.js';
import { can } from '../auth.js';
import { debounce, h, replace, since, toast } from '../dom.js';
import { badge, fmtBytes, fmtDuration, fmtTime, shortId, TERMINAL_JOB } from '../format.js';
import * as live from '../live.js';
import { confirmDialog } from './dialog.js';
import { itemsSection } from './job_items.js';
import { stagesView, StageTracker } from './job_stages.js';
import { timeline } from './job_timeline.js';

async function downloadDocument(job) {
  try {
    const blob = await api(`/v1/jobs/${job.id}/document`, { accept: 'blob' });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: job.document.file_name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    toast(`Could not download the document: ${e.message}`, 'error');
  }
}

function summary(job) {
  const row = (term, ...value) => [h('dt', null, term), h('dd', null, ...value)];
  return h(
    'dl',
    { class: 'summary' },
    row('Prompt', h('span', { class: 'prompt-full' }, job.prompt)),
    row('Pipeline', job.pipeline.map((p) => h('code', { class: 'cap' }, p))),
    row('Priority', String(job.priority)),
    job.labels.length ? row('Labels', job.labels.map((l) => h('span', { class: 'tag' }, l))) : null,
    row('Created', fmtTime(job.created_at), ' by ', h('strong', null, job.created_by)),
    job.started_at ? row('Started', fmtTime(job.started_at)) : null,
    job.finished_at ? row('Finished', fmtTime(job.finished_at), ` (took ${fmtDuration((Date.parse(job.finished_at) - Date.parse(job.started_at || job.created_at)) / 1000)})`) : null,
    job.status_reason ? row('Reason', job.status_reason) : null,
    job.depends_on.length ? row('Depends on', job.depends_on.map((d) => [h('a', { href: `#/jobs/${d}`, class: 'mono' }, shortId(d)), ' '])) : null,
    job.document
      ? row('Document', h('button', { type: 'button', class: 'link', onclick: () => downloadDocument(job) }, job.document.file_name), ` (${fmtBytes(job.document.size)})`)
      : null,
  );
}

async function act(label, path, { method = 'POST', done, then } = {}) {
  try {
    const res = await api(path, { method });
    toast(done || `${label}: done.`, 'ok');
    if (then) then(res);
  } catch (e) {
    if (isMissing(e)) toast(`${label} is not available on this hub version.`, 'error');
    else toast(`${label} failed: ${e.message}`, 'error');
  }
}

function actions(job, refresh) {
  if (!can('operate')) return null;
  const buttons = [];
  if (!TERMINAL_JOB.has(job.status)) {
    buttons.push(h('button', {
      type: 'button', class: 'danger', dataset: { action: 'cancel' },
      onclick: async () => {
        const ok = await confirmDialog({
          title: 'Cancel this job?',
          body: 'Running tasks are told to stop; finished items stay as they are.',
          confirm: 'Yes, cancel the job',
          cancel: 'Keep it running',
        });
        if (ok) act('Cancel', `/v1/jobs/${job.id}`, { method: 'DELETE', done: 'Job cancelled.', then: refresh });
      },
    }, 'Cancel job'));
  }
  if (job.items && job.items.failed > 0) {
    buttons.push(h('button', {
      type: 'button', class: 'secondary', dataset: { action: 'retry-failed' },
      onclick: () => act('Retry failed items', `/v1/jobs/${job.id}/retry-failed`, { done: 'Failed items queued again.', then: refresh }),
    }, `Retry ${job.items.failed} failed`));
  }
  if (TERMINAL_JOB.has(job.status)) {
    buttons.push(h('button', {
      type: 'button', class: 'secondary', dataset: { action: 'rerun' },
      onclick: () => act('Rerun', `/v1/jobs/${job.id}/rerun`, {
        done: 'New run created.',
        then: (res) => {
          const id = res && (res.id || (res.job && res.job.id));
          if (id) window.location.hash = `#/jobs/${id}`;
        },
      }),
    }, 'Rerun'));
  }
  return buttons.length ? h('div', { class: 'actions', role: 'group', 'aria-label': 'Job actions' }, buttons) : null;
}

export function renderJob(main, { id }) {
  let closed = false;
  let job = null;
  const title = h('h1', null, 'Job ', h('span', { class: 'mono' }, shortId(id)));
  const statusBox = h('span', { id: 'job-status', 'aria-live': 'polite' });
  const actionsBox = h('div', { class: 'head-actions' });
  const head = h('div', { class: 'page-head' }, title, statusBox, h('a', { href: `#/jobs/${id}/report`, class: 'button secondary', id: 'report-link' }, 'Report'), actionsBox);
  const summaryBox = h('div');
  const stagesBox = h('div');
  const error = h('p', { class: 'form-error', role: 'alert' });
  const tracker = new StageTracker();
  const events = timeline();
  const items = itemsSection(id);
  let progress = null;
  let progressMissing = false;

  main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/jobs' }, '← Jobs')),
    head,
    error,
    h('div', { class: 'columns' },
      h('section', { class: 'card', 'aria-labelledby': 'sum-title' }, h('h2', { id: 'sum-title' }, 'Summary'), summaryBox),
      h('section', { class: 'card', 'aria-labelledby': 'stages-title' }, h('h2', { id: 'stages-title' }, 'Progress'), stagesBox)),
    items.element,
    h('section', { class: 'card', 'aria-labelledby': 'events-title' }, h('h2', { id: 'events-title' }, 'Events'), events.element),
  );

  const drawStages = () => {
    if (job) replace(stagesBox, stagesView(job, tracker, progressMissing ? null : progress));
  };

  async function loadProgress() {
    if (progressMissing || closed) return;
    try {
      progress = await api(`/v1/jobs/${id}/progress`);
    } catch (e) {
      progress = null;
      if (e.status === 404 || isMissing(e)) progressMissing = true;
    }
    if (!closed) drawStages();
  }
  const refreshProgress = debounce(loadProgress, 2000);

  async function load() {
    try {
      job = await api(`/v1/jobs/${id}`);
    } catch (e) {
      error.textContent = e.status === 404 ? `There is no job ${id}.` : `Could not load the job: ${e.message}`;
      return;
    }
    if (closed) return;
    error.textContent = '';
    replace(statusBox, badge(job.status, 'job-status'));
    replace(actionsBox, actions(job, () => refresh()));
    replace(summaryBox, summary(job));
    drawStages();
  }
  const refresh = debounce(load, 400);

  load().then(loadProgress);
  items.load();
  const drawStagesSoon = debounce(drawStages, 100);
  const sub = live.stream.subscribe(`job:${id}`, {
    after: 0,
    onEvent: (ev) => {
      tracker.add(ev);
      events.add(ev);
      items.onEvent(ev);
      if (ev.type.startsWith('task.')) drawStagesSoon();
      if (ev.type.startsWith('job.') || ev.type.startsWith('item.')) refresh();
      if (!TERMINAL_JOB.has(job && job.status)) refreshProgress();
    },
  });
  // Back from a lost connection: read the job again (the stream replays the events).
  const offState = live.on('state', (s) => {
    if (s.state === 'open') refresh();
  });
  return () => {
    closed = true;
    sub.close();
    offState();
    refresh.cancel();
    refreshProgress.cancel();
    drawStagesSoon.cancel();
    items.close();
  };
}
