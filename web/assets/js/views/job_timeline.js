// The live events timeline of one job, newest first. Only the latest
// events stay in the page, so a job with 100,000 items does not make it slow.

import { h } from '../dom.js';
import { fmtClock, shortId, tone } from '../format.js';

const MAX_SHOWN = 300;

/** One line saying what an event means. */
export function describe(ev) {
  const p = ev.payload || {};
  const bits = [];
  if (p.capability) bits.push(p.capability);
  if (p.stage !== undefined && p.capability === undefined) bits.push(`stage ${p.stage + 1}`);
  if (p.item_id) bits.push(`item ${shortId(p.item_id)}`);
  if (p.task_id) bits.push(`task ${shortId(p.task_id)}`);
  if (Number.isInteger(p.attempt) && p.attempt > 1) bits.push(`attempt ${p.attempt}`);
  if (p.agent_id) bits.push(`agent ${shortId(p.agent_id)}`);
  if (p.verdict) bits.push(p.verdict);
  if (p.reason) bits.push(String(p.reason));
  if (p.error) bits.push(typeof p.error === 'string' ? p.error : JSON.stringify(p.error));
  return bits.join(' · ');
}

export function timeline() {
  const list = h('ol', { class: 'timeline', id: 'events', 'aria-live': 'off' });
  const empty = h('p', { class: 'muted' }, 'Waiting for events…');
  const count = h('p', { class: 'muted small' });
  let total = 0;
  const element = h('div', null, count, empty, list);
  return {
    element,
    add(ev) {
      total += 1;
      empty.hidden = true;
      const verb = ev.type.split('.')[1] || ev.type;
      list.prepend(
        h(
          'li',
          { dataset: { type: ev.type, seq: String(ev.seq) } },
          h('time', { datetime: ev.created_at }, fmtClock(ev.created_at)),
          ' ',
          h('span', { class: `badge small tone-${tone(verb)}` }, ev.type),
          ' ',
          h('span', { class: 'event-text' }, describe(ev)),
        ),
      );
      while (list.childElementCount > MAX_SHOWN) list.lastElementChild.remove();
      count.textContent = total > MAX_SHOWN ? `${total} events; the latest ${MAX_SHOWN} are shown.` : `${total} events.`;
    },
  };
}
