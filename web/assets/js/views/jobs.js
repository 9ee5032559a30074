// Jobs: the list (newest first, 50 at a time with "Load older jobs"),
// filtered on the server by status, label, prompt text and creation time
// (kept in the address, e.g. `#/jobs?status=running&label=team-a&q=gdpr`,
// so a reload keeps them), with live status and progress, and the "new job"
// form for operators.
//
// Live: `job.*` events update a row's status (new jobs that match the
// filters are fetched once and added on top). Progress is items finished
// (integrated, rejected or failed) over items created, as the store counts
// them (`GET /v1/jobs/{id}`): read per row, again when a job ends, and for
// running jobs at most once a second while the hub's `stats` push ticks. The
// page never follows item events: a big job makes tens of thousands.

import { api } from '../api.js';
import { can } from '../auth.js';
import { debounce, h, since } from '../dom.js';
import { badge, JOB_STATUSES, shortId, TERMINAL_JOB } from '../format.js';
import * as live from '../live.js';
import { newJobForm } from './job_form.js';

const PAGE = 50;
/** Filters kept in the address besides `status`. */
const TEXT_FILTERS = ['label', 'q', 'after', 'before'];

/** A `datetime-local` value (the browser's zone) as an RFC 3339 instant. */
function instant(local) {
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** The filters form; submitting it moves to the filtered address. */
function filtersForm(status, params) {
  const select = h(
    'select',
    { id: 'status-filter', name: 'status' },
    h('option', { value: '' }, 'all'),
    JOB_STATUSES.map((s) => h('option', { value: s }, s)),
  );
  select.value = status;
  const input = (name, props) => {
    const el = h('input', { id: `jobs-${name}`, name, ...props });
    el.value = params.get(name) || '';
    return el;
  };
  const label = input('label', { type: 'text', class: 'short', placeholder: 'any' });
  const q = input('q', { type: 'search', placeholder: 'Text in the prompt…', 'aria-label': 'Search job texts' });
  const after = input('after', { type: 'datetime-local', step: 1 });
  const before = input('before', { type: 'datetime-local', step: 1 });
  const go = () => {
    const next = new URLSearchParams();
    if (select.value) next.set('status', select.value);
    for (const el of [label, q, after, before]) if (el.value.trim()) next.set(el.name, el.value.trim());
    const text = next.toString();
    window.location.hash = text ? `#/jobs?${text}` : '#/jobs';
  };
  select.addEventListener('change', go);
  const field = (text, el) => h('label', { class: 'inline' }, `${text} `, el);
  return h(
    'form',
    {
      class: 'filters', role: 'search', id: 'jobs-filters', novalidate: true,
      onsubmit: (e) => {
        e.preventDefault();
        go();
      },
    },
    field('Status', select),
    field('Label', label),
    q,
    field('Created after', after),
    field('before', before),
    h('button', { type: 'submit', class: 'secondary small' }, 'Filter'),
    [...params.keys()].some((k) => k === 'status' || TEXT_FILTERS.includes(k))
      ? h('a', { href: '#/jobs', class: 'small', id: 'jobs-clear' }, 'Clear filters')
      : null,
  );
}

/** A progress cell: a <progress> and "done/total". */
export function progressCell(job) {
  const c = job.items;
  if (!c) return h('span', { class: 'muted' }, '…');
  const done = (c.integrated || 0) + (c.rejected || 0) + (c.failed || 0);
  const total = c.total || 0;
  if (!total) {
    return h('span', { class: 'muted' }, TERMINAL_JOB.has(job.status) ? 'no items' : 'no items yet');
  }
  return h(
    'span',
    { class: 'progress-cell' },
    h('progress', { max: total, value: done, 'aria-label': `${done} of ${total} items finished` }),
    h('span', { class: 'num' }, ` ${done}/${total}`),
  );
}

export function renderJobs(main, { params }) {
  const status = JOB_STATUSES.includes(params.get('status')) ? params.get('status') : '';
  const label = (params.get('label') || '').trim();
  const text = (params.get('q') || '').trim();
  const after = params.get('after') ? instant(params.get('after')) : null;
  const before = params.get('before') ? instant(params.get('before')) : null;
  const filtered = !!(status || label || text || after || before);
  const jobs = new Map();
  let nextCursor = null;
  let closed = false;

  /** Whether a job read live passes the filters (the server applies them to lists). */
  function matches(job) {
    if (status && job.status !== status) return false;
    if (label && !(job.labels || []).includes(label)) return false;
    // ASCII letters in any case, as the hub compares.
    const lower = (s) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
    if (text && !lower(job.prompt).includes(lower(text))) return false;
    const created = Date.parse(job.created_at);
    if (after && created < Date.parse(after)) return false;
    if (before && created >= Date.parse(before)) return false;
    return true;
  }

  const tbody = h('tbody');
  const empty = h('p', { class: 'muted', hidden: true }, filtered ? 'No job matches these filters.' : 'No jobs yet.');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true, onclick: () => load(nextCursor) }, 'Load older jobs');
  const error = h('p', { class: 'form-error', role: 'alert' });

  main.append(
    h('h1', null, 'Jobs'),
    can('operate') ? newJobForm() : null,
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'jobs-title' },
      h('div', { class: 'section-head' }, h('h2', { id: 'jobs-title' }, filtered ? 'Jobs matching' : 'All jobs')),
      filtersForm(status, params),
      error,
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { id: 'jobs' },
          h(
            'thead',
            null,
            h(
              'tr',
              null,
              h('th', { scope: 'col' }, 'Job'),
              h('th', { scope: 'col' }, 'Status'),
              h('th', { scope: 'col' }, 'Progress'),
              h('th', { scope: 'col', class: 'num opt' }, 'Priority'),
              h('th', { scope: 'col', class: 'opt' }, 'Pipeline'),
              h('th', { scope: 'col' }, 'Created'),
            ),
          ),
          tbody,
        ),
      ),
      empty,
      more,
    ),
  );

  function rowOf(job) {
    const prompt = job.prompt.length > 90 ? `${job.prompt.slice(0, 90)}…` : job.prompt;
    return h(
      'tr',
      { dataset: { jobId: job.id, status: job.status } },
      h('th', { scope: 'row' }, h('a', { href: `#/jobs/${job.id}`, class: 'mono' }, shortId(job.id)), h('div', { class: 'prompt' }, prompt)),
      h('td', null, badge(job.status, 'job-status')),
      h('td', null, progressCell(job)),
      h('td', { class: 'num opt' }, String(job.priority)),
      h('td', { class: 'opt' }, job.pipeline.map((p) => h('code', { class: 'cap' }, p))),
      h('td', null, since(job.created_at), h('br'), h('small', { class: 'muted' }, job.created_by)),
    );
  }

  function redraw(id) {
    const job = jobs.get(id);
    const old = tbody.querySelector(`tr[data-job-id="${id}"]`);
    if (!job) {
      if (old) old.remove();
    } else if (old) {
      old.replaceWith(rowOf(job));
    }
    empty.hidden = jobs.size > 0;
  }

  async function fillCounts(job) {
    try {
      const full = await api(`/v1/jobs/${job.id}`);
      if (closed || !jobs.has(job.id)) return;
      jobs.set(job.id, { ...jobs.get(job.id), items: full.items, status: full.status });
      redraw(job.id);
    } catch (e) {
      console.warn('job counts', e);
    }
  }

  async function load(cursor) {
    error.textContent = '';
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (status) q.set('status', status);
    if (label) q.set('label', label);
    if (text) q.set('q', text);
    if (after) q.set('created_after', after);
    if (before) q.set('created_before', before);
    if (cursor) q.set('cursor', cursor);
    try {
      const page = await api(`/v1/jobs?${q}`);
      if (closed) return;
      for (const job of page.jobs) {
        if (jobs.has(job.id)) continue;
        jobs.set(job.id, job);
        tbody.append(rowOf(job));
      }
      nextCursor = page.next_cursor;
      more.hidden = !nextCursor;
      empty.hidden = jobs.size > 0;
      // One read per row for its item counts, a few at a time.
      const queue = page.jobs.filter((j) => !j.items);
      const worker = async () => {
        while (queue.length && !closed) await fillCounts(queue.shift());
      };
      await Promise.all([worker(), worker(), worker()]);
    } catch (e) {
      error.textContent = `Could not list jobs: ${e.message}`;
    }
  }

  async function added(jobId) {
    try {
      const job = await api(`/v1/jobs/${jobId}`);
      if (closed || jobs.has(job.id) || !matches(job)) return;
      jobs.set(job.id, job);
      tbody.prepend(rowOf(job));
      empty.hidden = true;
    } catch (e) {
      console.warn('new job', e);
    }
  }

  function onEvent(ev) {
    if (!ev.job_id) return;
    if (ev.type === 'job.created') {
      if (!jobs.has(ev.job_id)) added(ev.job_id);
      return;
    }
    const job = jobs.get(ev.job_id);
    if (!job) return;
    if (ev.type.startsWith('job.') && ev.payload && ev.payload.status) {
      job.status = ev.payload.status;
      if (status && job.status !== status) {
        jobs.delete(job.id);
      } else if (TERMINAL_JOB.has(job.status)) {
        fillCounts(job);
      }
      redraw(job.id);
    }
  }

  // Running jobs' progress, re-read while the hub ticks.
  const refreshRunning = debounce(() => {
    for (const job of jobs.values()) if (job.status === 'running') fillCounts(job);
  }, 1000);

  load(null);
  const offs = [live.on('event', onEvent), live.on('stats', refreshRunning)];
  return () => {
    closed = true;
    refreshRunning.cancel();
    offs.forEach((off) => off());
  };
}
