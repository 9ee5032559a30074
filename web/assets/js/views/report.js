// A job's report, rendered: `GET /v1/jobs/{id}/report?format=markdown`
// (or `json`, shown as data). When the hub has no report endpoint, the page
// says so and shows a summary computed here from the job and its items.

import { api, isMissing } from '../api.js';
import { h, replace, toast } from '../dom.js';
import { fmtTime, ITEM_STATUSES, shortId } from '../format.js';
import { renderMarkdown } from '../markdown.js';

const MAX_ITEMS = 20000;

async function allItems(id) {
  const out = [];
  let cursor = null;
  do {
    const q = new URLSearchParams({ limit: '1000' });
    if (cursor) q.set('cursor', cursor);
    const page = await api(`/v1/jobs/${id}/items?${q}`);
    out.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && out.length < MAX_ITEMS);
  return out;
}

function countBy(items, key) {
  const counts = new Map();
  for (const it of items) {
    const values = key(it);
    for (const v of Array.isArray(values) ? values : [values]) {
      if (v === undefined || v === null || v === '') continue;
      counts.set(v, (counts.get(v) || 0) + 1);
    }
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0])));
}

function table(caption, headers, rows) {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      null,
      h('caption', null, caption),
      h('thead', null, h('tr', null, headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', null, rows.map((r) => h('tr', null, r.map((c) => h('td', null, String(c)))))),
    ),
  );
}

/** The report computed in the browser (no report endpoint on this hub). */
async function localReport(id) {
  const [job, items] = await Promise.all([api(`/v1/jobs/${id}`), allItems(id)]);
  const byStatus = Object.fromEntries(ITEM_STATUSES.map((s) => [s, 0]));
  for (const it of items) byStatus[it.status] = (byStatus[it.status] || 0) + 1;
  const rejected = items.filter((it) => it.status === 'rejected');
  const failed = items.filter((it) => it.status === 'failed');
  const textOf = (it) => (it.data && (it.data.text || it.data.name)) || it.id;
  return h(
    'div',
    { class: 'report local-report' },
    h('p', { class: 'notice' }, 'This hub has no report endpoint yet; this summary is computed in your browser from the job and its items.'),
    h('h2', null, 'Summary'),
    h(
      'dl',
      { class: 'summary' },
      h('dt', null, 'Status'), h('dd', null, job.status),
      h('dt', null, 'Pipeline'), h('dd', null, job.pipeline.join(' → ')),
      h('dt', null, 'Priority'), h('dd', null, String(job.priority)),
      h('dt', null, 'Submitted'), h('dd', null, `${fmtTime(job.created_at)} by ${job.created_by}`),
      job.finished_at ? [h('dt', null, 'Finished'), h('dd', null, fmtTime(job.finished_at))] : null,
    ),
    h('h2', null, 'Items'),
    table('Items by status', ['Status', 'Items'], [['total', items.length], ...ITEM_STATUSES.map((s) => [s, byStatus[s] || 0])]),
    h('h2', null, 'Breakdown'),
    table('Items by tag', ['Tag', 'Items'], countBy(items, (it) => it.data && it.data.tags)),
    table('Items by priority', ['Priority', 'Items'], countBy(items, (it) => it.data && it.data.priority)),
    table('Citations', ['Source', 'Items citing it'], countBy(items, (it) => it.data && it.data.citations)),
    h('h2', null, `Rejected items (${rejected.length})`),
    rejected.length ? h('ul', null, rejected.map((it) => h('li', null, textOf(it), ' — ', h('em', null, it.rejection_reason || 'no reason given')))) : h('p', { class: 'muted' }, 'None.'),
    h('h2', null, `Failed items (${failed.length})`),
    failed.length ? h('ul', null, failed.map((it) => h('li', null, textOf(it), ' — ', h('em', null, it.last_error || 'no error recorded')))) : h('p', { class: 'muted' }, 'None.'),
  );
}

export function renderReport(main, { id }) {
  let closed = false;
  const format = h('select', { id: 'report-format' }, h('option', { value: 'markdown' }, 'Rendered'), h('option', { value: 'json' }, 'JSON'));
  const body = h('div', { class: 'report-body', id: 'report', 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading the report…'));
  let lastText = null;
  const download = h('button', {
    type: 'button', class: 'secondary',
    onclick: () => {
      if (lastText === null) return;
      const ext = format.value === 'json' ? 'json' : 'md';
      const url = URL.createObjectURL(new Blob([lastText], { type: format.value === 'json' ? 'application/json' : 'text/markdown' }));
      const a = h('a', { href: url, download: `report-${shortId(id)}.${ext}` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    },
  }, 'Download');

  main.append(
    h('p', { class: 'crumbs' }, h('a', { href: `#/jobs/${id}` }, '← Job'), ' · ', h('a', { href: '#/jobs' }, 'Jobs')),
    h('div', { class: 'page-head' }, h('h1', null, 'Report for job ', h('span', { class: 'mono' }, shortId(id))), h('label', { class: 'inline' }, 'Format ', format), download),
    h('section', { class: 'card' }, body),
  );

  async function load() {
    body.setAttribute('aria-busy', 'true');
    lastText = null;
    download.disabled = true;
    try {
      if (format.value === 'json') {
        const data = await api(`/v1/jobs/${id}/report?format=json`);
        if (closed) return;
        lastText = JSON.stringify(data, null, 2);
        replace(body, h('pre', { class: 'json' }, lastText));
      } else {
        const text = await api(`/v1/jobs/${id}/report?format=markdown`, { accept: 'text' });
        if (closed) return;
        lastText = text;
        replace(body, h('div', { class: 'report markdown' }, renderMarkdown(text)));
      }
      download.disabled = false;
    } catch (e) {
      if (closed) return;
      if (isMissing(e)) {
        try {
          replace(body, await localReport(id));
        } catch (inner) {
          replace(body, h('p', { class: 'form-error' }, `Could not build the report: ${inner.message}`));
        }
      } else {
        replace(body, h('p', { class: 'form-error', role: 'alert' }, `Could not load the report: ${e.message}`));
        toast(e.message, 'error');
      }
    } finally {
      body.setAttribute('aria-busy', 'false');
    }
  }
  format.addEventListener('change', load);
  load();
  return () => {
    closed = true;
  };
}
