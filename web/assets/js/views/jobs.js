// Jobs: the list (newest first) with a status filter and live status and
// progress, and the "new job" form for operators.
//
// Live: `job.*` events update a row's status (new jobs are fetched once and
// added on top); `item.*` events move its progress bar. Progress is items
// finished (integrated, rejected or failed) over items created, starting from
// the counts of one `GET /v1/jobs/{id}` per row.

import { api } from '../api.js';
import { can } from '../auth.js';
import { h, since } from '../dom.js';
import { badge, JOB_STATUSES, shortId, TERMINAL_ITEM, TERMINAL_JOB } from '../format.js';
import * as live from '../live.js';
import { newJobForm } from './job_form.js';

const PAGE = 50;

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
  const jobs = new Map();
  let nextCursor = null;
  let closed = false;

  const filter = h(
    'select',
    { id: 'status-filter', name: 'status' },
    h('option', { value: '' }, 'all'),
    JOB_STATUSES.map((s) => h('option', { value: s }, s)),
  );
  filter.value = status;
  filter.addEventListener('change', () => {
    window.location.hash = filter.value ? `#/jobs?status=${filter.value}` : '#/jobs';
  });
  const tbody = h('tbody');
  const empty = h('p', { class: 'muted', hidden: true }, status ? `No ${status} jobs.` : 'No jobs yet.');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true, onclick: () => load(nextCursor) }, 'Load older jobs');
  const error = h('p', { class: 'form-error', role: 'alert' });

  main.append(
    h('h1', null, 'Jobs'),
    can('operate') ? newJobForm() : null,
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'jobs-title' },
      h('div', { class: 'section-head' }, h('h2', { id: 'jobs-title' }, 'All jobs'), h('label', { class: 'inline' }, 'Status ', filter)),
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
      if (closed || jobs.has(job.id) || (status && job.status !== status)) return;
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
      return;
    }
    if (!job.items) return;
    if (ev.type === 'item.created') {
      job.items = { ...job.items, total: job.items.total + 1, pending: job.items.pending + 1 };
      redraw(job.id);
    } else if (ev.type.startsWith('item.') && TERMINAL_ITEM.has(ev.type.slice(5))) {
      const to = ev.type.slice(5);
      job.items = { ...job.items, [to]: (job.items[to] || 0) + 1 };
      redraw(job.id);
    }
  }

  load(null);
  const off = live.on('event', onEvent);
  return () => {
    closed = true;
    off();
  };
}
