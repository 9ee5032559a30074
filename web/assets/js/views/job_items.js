// The items of one job (requirements, in the reference pipeline), a page
// at a time, filtered on the server by status and text
// (`GET /v1/jobs/{id}/items?status=&q=&cursor=&limit=`). The page never
// holds more than one page of items, however big the job: a 20,000-item
// job is 100 rows and a count.
//
// Totals come from the job's stored counts (`counts`, set by the job page
// from `GET /v1/jobs/{id}/progress`), so the line above the table says the
// same as the REST API. Live changes re-read the page shown (`refresh`,
// which the job page throttles), so the table converges on the stored state.

import { api } from '../api.js';
import { debounce, h, replace, stackable } from '../dom.js';
import { badge, fmtNumber, ITEM_STATUSES } from '../format.js';

export const PAGE_SIZE = 100;

function text(item) {
  const d = item.data || {};
  return d.text || d.name || d.title || JSON.stringify(d);
}

export function itemsSection(jobId) {
  let closed = false;
  let counts = null;
  // Cursors of the pages before the one shown; `current` is its own cursor.
  const previous = [];
  let current = null;
  let next = null;
  let shown = [];
  let loading = null;

  const status = h('select', { id: 'item-status' }, h('option', { value: '' }, 'any'), ITEM_STATUSES.map((v) => h('option', { value: v }, v)));
  const search = h('input', { type: 'search', id: 'item-search', placeholder: 'Search text', 'aria-label': 'Search items' });
  const count = h('p', { class: 'muted', id: 'items-count', 'aria-live': 'polite' });
  const prevButton = h('button', { type: 'button', class: 'secondary', id: 'items-prev', disabled: true }, '← Previous');
  const nextButton = h('button', { type: 'button', class: 'secondary', id: 'items-next', disabled: true }, 'Next →');
  const pager = h('div', { class: 'pager', role: 'group', 'aria-label': 'Item pages' }, prevButton, nextButton);
  const filters = h('div', { class: 'filters', role: 'search' }, h('label', { class: 'inline' }, 'Status ', status), search);
  const tbody = h('tbody');
  const table = h(
    'table',
    { id: 'items' },
    h('thead', null, h('tr', null,
      h('th', { scope: 'col' }, 'Item'),
      h('th', { scope: 'col' }, 'Status'),
      h('th', { scope: 'col' }, 'Priority'),
      h('th', { scope: 'col', class: 'opt' }, 'Tags'),
      h('th', { scope: 'col', class: 'opt' }, 'Citations'),
      h('th', { scope: 'col' }, 'Reason'))),
    tbody,
  );
  const wrap = h('div', { class: 'table-wrap scroll-y', tabindex: '0', 'aria-label': 'Items table' }, table);
  const element = h(
    'section',
    { class: 'card', 'aria-labelledby': 'items-title' },
    h('h2', { id: 'items-title' }, 'Items'),
    filters,
    count,
    wrap,
    pager,
  );

  function row(item) {
    const d = item.data || {};
    return h(
      'tr',
      { dataset: { itemId: item.id, status: item.status } },
      h('td', { class: 'item-text' }, text(item), d.name ? [h('br'), h('small', { class: 'muted mono' }, d.name)] : null),
      h('td', null, badge(item.status, 'item-status')),
      h('td', null, d.priority ? h('span', { class: `prio prio-${d.priority}` }, d.priority) : '—'),
      h('td', { class: 'opt' }, (d.tags || []).map((t) => h('span', { class: 'tag' }, t))),
      h('td', { class: 'opt small' }, (d.citations || []).join(', ')),
      h('td', { class: 'small' }, item.rejection_reason || item.last_error || ''),
    );
  }

  /** Items of the job matching the status filter, from the stored counts. */
  function matching() {
    if (!counts) return null;
    return status.value ? counts[status.value] ?? 0 : counts.total ?? 0;
  }

  function drawCount() {
    const total = counts ? counts.total ?? 0 : null;
    if (total === 0 && !shown.length) {
      count.textContent = 'No items yet.';
      return;
    }
    const start = previous.length * PAGE_SIZE;
    const q = search.value.trim();
    let bits;
    if (!q && matching() !== null) {
      bits = `${fmtNumber(matching())} of ${fmtNumber(total)} items`;
    } else if (!previous.length && !next) {
      bits = `${fmtNumber(shown.length)} of ${total === null ? '?' : fmtNumber(total)} items`;
    } else {
      bits = `${next ? 'more than ' : ''}${fmtNumber(start + shown.length)} of ${total === null ? '?' : fmtNumber(total)} items match`;
    }
    const range = shown.length && (previous.length || next) ? `; showing ${fmtNumber(start + 1)}–${fmtNumber(start + shown.length)}` : '';
    count.textContent = `${bits}${range}.`;
  }

  function draw() {
    replace(tbody, shown.map(row));
    table.hidden = shown.length === 0;
    stackable(table);
    prevButton.disabled = previous.length === 0;
    nextButton.disabled = !next;
    pager.hidden = previous.length === 0 && !next;
    drawCount();
  }

  /** Reads the page starting at `cursor` (null: the first). */
  async function read(cursor) {
    const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (cursor) q.set('cursor', cursor);
    if (status.value) q.set('status', status.value);
    const text = search.value.trim();
    if (text) q.set('q', text);
    return api(`/v1/jobs/${jobId}/items?${q}`);
  }

  async function show(cursor) {
    const mine = Symbol('read');
    loading = mine;
    let page;
    try {
      page = await read(cursor);
    } catch (e) {
      if (!closed && loading === mine) count.textContent = `Could not load the items: ${e.message}`;
      return;
    }
    if (closed || loading !== mine) return;
    if (cursor !== current) wrap.scrollTop = 0;
    current = cursor;
    shown = page.items;
    next = page.next_cursor;
    draw();
  }

  const restart = () => {
    previous.length = 0;
    return show(null);
  };
  const restartSoon = debounce(restart, 250);
  status.addEventListener('change', restart);
  search.addEventListener('input', restartSoon);
  nextButton.addEventListener('click', () => {
    if (!next) return;
    previous.push(current);
    show(next);
  });
  prevButton.addEventListener('click', () => {
    if (!previous.length) return;
    show(previous.pop());
  });

  return {
    element,
    /** Reads the first page. */
    load: restart,
    /** Reads the page shown again (live changes). */
    refresh: () => show(current),
    /** The job's item counts by status, from the store. */
    setCounts(c) {
      counts = c;
      drawCount();
    },
    close() {
      closed = true;
      restartSoon.cancel();
    },
  };
}
