// Building DOM safely, plus the few page-wide widgets (toasts, relative times).
//
// Every piece of text goes through `textContent` or an attribute; nothing is
// ever parsed as HTML, so prompts, item texts and error messages from the hub
// can never inject markup. Together with the hub's Content-Security-Policy
// (no inline script or style) this is the dashboard's XSS defence.

import { fmtTime } from './format.js';

const SVG_NS = 'http://www.w3.org/2000/svg';

function applyProps(el, props) {
  if (!props) return;
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.setAttribute('class', value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else el.setAttribute(key, value === true ? '' : String(value));
  }
}

/** Appends children: nodes, strings (as text), arrays, and skips null/false. */
export function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

/** `h('a', {href: '#/'}, 'text', child)`: an HTML element. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  applyProps(el, props);
  return append(el, children);
}

/** Like `h`, for SVG elements. */
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  applyProps(el, props);
  return append(el, children);
}

/** Replaces all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A short message in the corner; `kind` is `info`, `ok` or `error`. */
export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const item = h('div', { class: `toast toast-${kind}` }, message);
  box.appendChild(item);
  setTimeout(() => item.remove(), kind === 'error' ? 10000 : 5000);
}

// ---------------------------------------------------------------------------
// Relative times ("12 s ago"). One page-wide 1 s timer re-renders only these
// texts; it never talks to the hub.
// ---------------------------------------------------------------------------

let clockOffsetMs = 0;

/** The hub's clock minus ours, learned from the `stats` topic. */
export function setClockOffset(ms) {
  if (Number.isFinite(ms)) clockOffsetMs = ms;
}

/** Now, on the hub's clock (ms). */
export function hubNow() {
  return Date.now() + clockOffsetMs;
}

export function relativeText(iso) {
  if (!iso) return 'never';
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return 'unknown';
  const secs = Math.max(0, Math.round((hubNow() - then) / 1000));
  if (secs < 60) return `${secs} s ago`;
  const mins = Math.floor(secs / 60);
  if (mins < 60) return `${mins} min ago`;
  const hours = Math.floor(mins / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} days ago`;
}

/** A `<time>` that keeps saying how long ago `iso` was. */
export function since(iso) {
  const el = h('time', { datetime: iso || '', title: iso ? fmtTime(iso) : '' });
  el.dataset.since = iso || '';
  el.textContent = relativeText(iso);
  return el;
}

let ticker = null;

/** Starts the one timer that refreshes every `since()` element. */
export function startRelativeTimes() {
  if (ticker) return;
  ticker = setInterval(() => {
    for (const el of document.querySelectorAll('time[data-since]')) {
      const text = relativeText(el.dataset.since);
      if (el.textContent !== text) el.textContent = text;
    }
  }, 1000);
}

/** Calls `fn` at most once per `ms`, with the latest arguments (trailing). */
export function debounce(fn, ms) {
  let timer = null;
  let lastArgs = [];
  const wrapped = (...args) => {
    lastArgs = args;
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn(...lastArgs);
    }, ms);
  };
  wrapped.cancel = () => {
    clearTimeout(timer);
    timer = null;
  };
  return wrapped;
}

/**
 * Marks a table to be shown as one block per row on narrow screens (CSS
 * `table.stack`): each cell gets its column's name as `data-label`, shown
 * before the value. Explicit ARIA roles keep the table's semantics when CSS
 * changes its display. Call again after rows change.
 */
export function stackable(table) {
  table.classList.add('stack');
  table.setAttribute('role', 'table');
  const heads = [...table.querySelectorAll('thead th')].map((th) => th.textContent.trim());
  for (const group of table.querySelectorAll('thead, tbody')) group.setAttribute('role', 'rowgroup');
  for (const tr of table.querySelectorAll('tr')) {
    tr.setAttribute('role', 'row');
    [...tr.children].forEach((cell, i) => {
      if (cell.tagName === 'TH') {
        cell.setAttribute('role', tr.parentElement.tagName === 'THEAD' ? 'columnheader' : 'rowheader');
      } else {
        cell.setAttribute('role', 'cell');
        if (heads[i] && !cell.dataset.label) cell.dataset.label = heads[i];
      }
    });
  }
  return table;
}
