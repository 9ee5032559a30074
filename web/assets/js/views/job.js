// Job detail: summary, actions, stage-by-stage progress with the ETA, the
// items table and the events timeline.
//
// Everything the page counts comes from the store: the job
// (`GET /v1/jobs/{id}`) and its progress (`GET /v1/jobs/{id}/progress`,
// aggregated in the database), items a page at a time, events newest first
// a page at a time. The stream (`job:<id>`, live only) just says that
// something changed: the page then re-reads, at most twice a second while
// events flow, and at once when the job ends. When the stream was lost (the
// hub closed it as lagged, or restarted), the page re-reads everything and
// follows live again from the hub's position, without a reload. So the page
// never shows more than the store holds, and it converges on the store
// within a second of the stream catching up, whatever the job's size.

import { api, isMissing } from '../api.js';
import { can } from '../auth.js';
import { debounce, h, replace, toast } from '../dom.js';
import { badge, fmtBytes, fmtDuration, fmtTime, shortId, TERMINAL_JOB } from '../format.js';
import * as live from '../live.js';
import { confirmDialog } from './dialog.js';
import { itemsSection } from './job_items.js';
import { stagesView } from './job_stages.js';
import { timeline } from './job_timeline.js';

/** How often the page re-reads the job while its events flow. */
const REREAD_MS = 500;
const JOB_ENDS = new Set(['job.completed', 'job.failed', 'job.cancelled']);

/**
 * `fn` run one at a time: a call while one runs makes it run once more
 * after, so the last read always starts after the last change.
 */
function serial(fn) {
  let running = null;
  let again = false;
  const run = async () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await fn();
      } while (again);
    })();
    try {
      await running;
    } finally {
      running = null;
    }
  };
  return run;
}

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
  let progress = null;
  const title = h('h1', null, 'Job ', h('span', { class: 'mono' }, shortId(id)));
  const statusBox = h('span', { id: 'job-status', 'aria-live': 'polite' });
  const actionsBox = h('div', { class: 'head-actions' });
  const head = h('div', { class: 'page-head' }, title, statusBox, h('a', { href: `#/jobs/${id}/report`, class: 'button secondary', id: 'report-link' }, 'Report'), actionsBox);
  const summaryBox = h('div');
  const stagesBox = h('div', { id: 'progress', 'aria-busy': 'true' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const events = timeline(id);
  const items = itemsSection(id);

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

  /** Reads the job and its progress; the page's numbers come from here. */
  const reread = serial(async () => {
    let fresh;
    let counts;
    try {
      [fresh, counts] = await Promise.all([api(`/v1/jobs/${id}`), api(`/v1/jobs/${id}/progress`)]);
    } catch (e) {
      if (closed) return;
      error.textContent = e.status === 404 ? `There is no job ${id}.` : `Could not load the job: ${e.message}`;
      return;
    }
    if (closed) return;
    error.textContent = '';
    const statusChanged = !job || job.status !== fresh.status;
    job = fresh;
    progress = counts;
    if (statusChanged) {
      replace(statusBox, badge(job.status, 'job-status'));
      replace(summaryBox, summary(job));
    }
    replace(actionsBox, actions(job, () => rereadAll()));
    replace(stagesBox, stagesView(job, progress));
    stagesBox.setAttribute('aria-busy', 'false');
    items.setCounts(progress.items);
  });
  const rereadSoon = debounce(reread, REREAD_MS);
  const refreshItems = debounce(() => items.refresh(), 2 * REREAD_MS);

  async function rereadAll() {
    await Promise.all([reread(), items.refresh(), events.load()]);
  }

  const sub = live.stream.subscribe(`job:${id}`, {
    resume: 'live',
    onEvent: (ev) => {
      events.add(ev);
      if (JOB_ENDS.has(ev.type)) {
        rereadSoon.cancel();
        reread().then(() => items.refresh());
        return;
      }
      rereadSoon();
      if (ev.type.startsWith('item.')) refreshItems();
    },
    // Back after a lost stream: what was missed is in the store.
    onResync: () => rereadAll(),
  });
  const started = performance.now();
  Promise.all([reread(), items.load(), events.load()]).then(() => {
    if (!closed) head.dataset.loadedMs = String(Math.round(performance.now() - started));
  });
  return () => {
    closed = true;
    sub.close();
    rereadSoon.cancel();
    refreshItems.cancel();
    items.close();
    events.close();
  };
}
