// The events timeline of one job, newest first: the latest page read from
// `GET /v1/jobs/{id}/history`, live events added on top as they come, and
// older pages on demand. Only the newest MAX_SHOWN live entries stay in the
// page, so a job with 100,000 events does not make it slow; live events are
// added in batches, once per animation frame.

import { api } from '../api.js';
import { h } from '../dom.js';
import { fmtClock, shortId, tone } from '../format.js';

const MAX_SHOWN = 300;
const PAGE = 100;

/** One line saying what an event means. */
export function describe(ev) {
  const p = ev.payload || {};
  const bits = [];
  if (p.capability) bits.push(p.capability);
  if (p.stage !== undefined && p.capability === undefined) bits.push(`stage ${p.stage + 1}`);
  if (p.item_id) bits.push(`item ${shortId(p.item_id)}`);
  if (Number.isInteger(p.attempt) && p.attempt > 1) bits.push(`attempt ${p.attempt}`);
  if (p.agent_id) bits.push(`agent ${shortId(p.agent_id)}`);
  if (p.verdict) bits.push(p.verdict);
  if (p.reason) bits.push(String(p.reason));
  if (p.error) bits.push(typeof p.error === 'string' ? p.error : JSON.stringify(p.error));
  return bits.join(' · ');
}

function entry(ev) {
  const verb = ev.type.split('.')[1] || ev.type;
  const p = ev.payload || {};
  return h(
    'li',
    { dataset: { type: ev.type, seq: String(ev.seq) } },
    h('time', { datetime: ev.created_at, title: ev.created_at }, fmtClock(ev.created_at)),
    ' ',
    h('span', { class: `badge small tone-${tone(verb)}` }, ev.type),
    ' ',
    p.task_id ? [h('a', { href: `#/tasks/${p.task_id}`, class: 'mono small' }, `task ${shortId(p.task_id)}`), ' · '] : null,
    h('span', { class: 'event-text' }, describe(ev)),
  );
}

export function timeline(jobId) {
  const list = h('ol', { class: 'timeline', id: 'events', 'aria-live': 'off' });
  const empty = h('p', { class: 'muted' }, 'Waiting for events…');
  const count = h('p', { class: 'muted small', id: 'events-count' });
  const older = h('button', { type: 'button', class: 'secondary', id: 'events-older', hidden: true }, 'Show older events');
  const element = h('div', null, count, empty, list, older);
  const seen = new Set();
  let pending = [];
  let frame = null;
  let nextBefore = null;
  let live = 0;

  function drawCount() {
    empty.hidden = list.childElementCount > 0;
    const n = list.childElementCount;
    count.textContent = n ? `The latest ${n} events, newest first${live > MAX_SHOWN ? ` (${live} arrived live; older ones are trimmed)` : ''}.` : '';
    older.hidden = nextBefore === null || live > MAX_SHOWN;
  }

  function flush() {
    frame = null;
    const batch = pending;
    pending = [];
    batch.sort((a, b) => a.seq - b.seq);
    for (const ev of batch) list.prepend(entry(ev));
    while (list.childElementCount > MAX_SHOWN && live > MAX_SHOWN) list.lastElementChild.remove();
    drawCount();
  }

  async function loadPage(before) {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (before !== null) q.set('before', String(before));
    const page = await api(`/v1/jobs/${jobId}/history?${q}`);
    return page;
  }

  older.addEventListener('click', async () => {
    if (nextBefore === null) return;
    older.disabled = true;
    try {
      const page = await loadPage(nextBefore);
      for (const ev of page.events) {
        if (seen.has(ev.seq)) continue;
        seen.add(ev.seq);
        list.append(entry(ev));
      }
      nextBefore = page.next_before;
    } catch (e) {
      count.textContent = `Could not load older events: ${e.message}`;
    } finally {
      older.disabled = false;
      drawCount();
    }
  });

  return {
    element,
    /** Reads the newest page again (start, and after the stream was lost). */
    async load() {
      let page;
      try {
        page = await loadPage(null);
      } catch (e) {
        count.textContent = `Could not load the events: ${e.message}`;
        return;
      }
      const fresh = page.events.filter((ev) => !seen.has(ev.seq));
      if (fresh.length === page.events.length && list.childElementCount) {
        // A gap (the stream was lost): start over from the store.
        list.textContent = '';
        seen.clear();
        live = 0;
      }
      for (const ev of fresh) seen.add(ev.seq);
      // Entries newer than what the list holds go on top, older ones below.
      const top = Number(list.firstElementChild ? list.firstElementChild.dataset.seq : -1);
      for (const ev of fresh.filter((e) => e.seq < top)) list.append(entry(ev));
      for (const ev of fresh.filter((e) => e.seq > top).reverse()) list.prepend(entry(ev));
      if (nextBefore === null || list.childElementCount <= PAGE) nextBefore = page.next_before;
      drawCount();
    },
    /** A live event. */
    add(ev) {
      if (seen.has(ev.seq)) return;
      seen.add(ev.seq);
      live += 1;
      pending.push(ev);
      if (!frame) frame = requestAnimationFrame(flush);
    },
    close() {
      if (frame) cancelAnimationFrame(frame);
    },
  };
}
