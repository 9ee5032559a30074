// The items of one job (requirements, in the reference pipeline) with
// filters by status, tag and priority and a text search, all in the page.
// Items are read with `GET /v1/jobs/{id}/items`; live events change their
// status in place. An event about an item the page has not read yet (it was
// created, or changed while a read was under way) and the job's end make the
// page read the list again (debounced), so the table converges on the
// stored state however fast the hub works.

import { api } from '../api.js';
import { debounce, h, replace, stackable } from '../dom.js';
import { badge, ITEM_STATUSES } from '../format.js';

const PAGE = 1000;
const JOB_ENDS = new Set(['job.completed', 'job.failed', 'job.cancelled']);
const MAX_LOADED = 20000;
const MAX_SHOWN = 500;
const PRIORITIES = ['high', 'medium', 'low'];

function text(item) {
  const d = item.data || {};
  return d.text || d.name || d.title || JSON.stringify(d);
}

function select(id, label, values) {
  const el = h('select', { id }, h('option', { value: '' }, 'any'), values.map((v) => h('option', { value: v }, v)));
  return { el, wrap: h('label', { class: 'inline' }, `${label} `, el) };
}

export function itemsSection(jobId) {
  const items = new Map();
  let closed = false;
  let truncated = false;
  const status = select('item-status', 'Status', ITEM_STATUSES);
  const priority = select('item-priority', 'Priority', PRIORITIES);
  const tag = select('item-tag', 'Tag', []);
  const search = h('input', { type: 'search', id: 'item-search', placeholder: 'Search text', 'aria-label': 'Search items' });
  const count = h('p', { class: 'muted', id: 'items-count', 'aria-live': 'polite' });
  const filters = h('div', { class: 'filters', role: 'search', hidden: true }, status.wrap, priority.wrap, tag.wrap, search);
  const tbody = h('tbody');
  const table = h(
    'table',
    { id: 'items' },
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        h('th', { scope: 'col' }, 'Item'),
        h('th', { scope: 'col' }, 'Status'),
        h('th', { scope: 'col' }, 'Priority'),
        h('th', { scope: 'col', class: 'opt' }, 'Tags'),
        h('th', { scope: 'col', class: 'opt' }, 'Citations'),
        h('th', { scope: 'col' }, 'Reason'),
      ),
    ),
    tbody,
  );
  const element = h(
    'section',
    { class: 'card', 'aria-labelledby': 'items-title' },
    h('h2', { id: 'items-title' }, 'Items'),
    filters,
    count,
    h('div', { class: 'table-wrap' }, table),
  );

  function matches(item) {
    const d = item.data || {};
    if (status.el.value && item.status !== status.el.value) return false;
    if (priority.el.value && d.priority !== priority.el.value) return false;
    if (tag.el.value && !(Array.isArray(d.tags) && d.tags.includes(tag.el.value))) return false;
    const q = search.value.trim().toLowerCase();
    if (q && !`${text(item)} ${d.name || ''} ${item.rejection_reason || ''}`.toLowerCase().includes(q)) return false;
    return true;
  }

  function updateTags() {
    const tags = new Set();
    for (const it of items.values()) for (const t of (it.data && it.data.tags) || []) tags.add(t);
    const current = tag.el.value;
    const known = [...tag.el.options].slice(1).map((o) => o.value);
    const sorted = [...tags].sort();
    if (known.join() === sorted.join()) return;
    replace(tag.el, h('option', { value: '' }, 'any'), sorted.map((t) => h('option', { value: t }, t)));
    tag.el.value = sorted.includes(current) ? current : '';
  }

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

  function draw() {
    updateTags();
    const all = [...items.values()];
    const shown = all.filter(matches);
    replace(tbody, shown.slice(0, MAX_SHOWN).map(row));
    table.hidden = shown.length === 0;
    filters.hidden = all.length === 0;
    stackable(table);
    if (!all.length) {
      count.textContent = 'No items yet.';
      return;
    }
    const bits = [`${shown.length} of ${all.length} items`];
    if (shown.length > MAX_SHOWN) bits.push(`the first ${MAX_SHOWN} are listed`);
    if (truncated) bits.push(`only the first ${MAX_LOADED} items are loaded`);
    count.textContent = `${bits.join('; ')}.`;
  }
  const redraw = debounce(draw, 150);
  for (const el of [status.el, priority.el, tag.el]) el.addEventListener('change', draw);
  search.addEventListener('input', redraw);

  async function load() {
    let cursor = null;
    let loaded = 0;
    try {
      do {
        const q = new URLSearchParams({ limit: String(PAGE) });
        if (cursor) q.set('cursor', cursor);
        const page = await api(`/v1/jobs/${jobId}/items?${q}`);
        if (closed) return;
        for (const it of page.items) items.set(it.id, it);
        loaded += page.items.length;
        cursor = page.next_cursor;
      } while (cursor && loaded < MAX_LOADED);
      truncated = !!cursor;
    } catch (e) {
      count.textContent = `Could not load the items: ${e.message}`;
      return;
    }
    draw();
  }
  const reload = debounce(load, 1000);

  function onEvent(ev) {
    if (JOB_ENDS.has(ev.type)) {
      reload();
      return;
    }
    if (!ev.type.startsWith('item.')) return;
    const p = ev.payload || {};
    const item = items.get(p.item_id);
    if (!item) {
      reload();
      return;
    }
    if (ev.type === 'item.created') return;
    item.status = ev.type.slice('item.'.length);
    if (p.reason && item.status === 'rejected') item.rejection_reason = p.reason;
    if (p.reason && item.status === 'failed') item.last_error = p.reason;
    redraw();
  }

  return {
    element,
    load,
    onEvent,
    close() {
      closed = true;
      reload.cancel();
      redraw.cancel();
    },
  };
}
