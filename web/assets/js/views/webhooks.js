// Webhooks (admins): the subscriptions, created, paused, resumed and
// deleted here (webhook_form.js), the recent deliveries of the selected one
// with every attempt's status code, latency and error, and replay. Deliveries are read again when events arrive (debounced), never on
// a timer. A hub without webhook endpoints, or a non-admin, gets a notice.

import { api, isMissing } from '../api.js';
import { can } from '../auth.js';
import { debounce, h, replace, since, stackable, toast } from '../dom.js';
import { badge, fmtMs, fmtTime, shortId } from '../format.js';
import * as live from '../live.js';
import { createForm, rowActions } from './webhook_form.js';

const DELIVERIES = 50;

function stateBadge(w) {
  if (!w.enabled) return badge('disabled');
  if (w.failing_since) return badge('failing');
  return badge('enabled');
}

function codeBadge(attempt) {
  if (!attempt) return h('span', { class: 'muted' }, '—');
  const ok = Number.isInteger(attempt.status_code) && attempt.status_code >= 200 && attempt.status_code < 300;
  return h('span', { class: `badge tone-${ok ? 'ok' : 'bad'}` }, attempt.status_code ? String(attempt.status_code) : 'no answer');
}

function deliveryRow(d) {
  const log = Array.isArray(d.attempt_log) ? d.attempt_log : [];
  const last = log[log.length - 1];
  return h(
    'tr',
    { dataset: { deliveryId: d.id, status: d.status, generation: String(d.generation) } },
    h('td', null, since(d.created_at)),
    h(
      'td',
      null,
      h('code', null, d.event_type),
      h('small', { class: 'muted' }, ` #${d.event_seq}`),
      d.job_id ? [h('br'), h('small', null, 'job ', h('a', { href: `#/jobs/${d.job_id}`, class: 'mono' }, shortId(d.job_id)))] : null,
      d.generation > 0 ? [h('br'), h('small', { class: 'muted' }, `replay ${d.generation}`)] : null,
    ),
    h('td', null, badge(d.status, 'delivery-status')),
    h('td', { class: 'delivery-code' }, codeBadge(last)),
    h('td', { class: 'num' }, last ? fmtMs(last.latency_ms) : '—'),
    h(
      'td',
      { class: 'num' },
      log.length > 1
        ? h(
          'details',
          null,
          h('summary', null, String(d.attempts)),
          h('ol', { class: 'attempts' }, log.map((a) => h('li', null, `${a.status_code || 'no answer'} · ${fmtMs(a.latency_ms)}${a.error ? ` · ${a.error}` : ''}`))),
        )
        : String(d.attempts),
    ),
    h(
      'td',
      { class: 'small' },
      last && last.error ? last.error : '',
      d.status === 'pending' && d.next_attempt_at ? h('span', { class: 'muted' }, ` next try ${fmtTime(d.next_attempt_at)}`) : null,
    ),
  );
}

export function renderWebhooks(main) {
  let closed = false;
  let selected = null;
  const listBox = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const detailBox = h('div');
  main.append(
    h('h1', null, 'Webhooks'),
    h('section', { class: 'card', 'aria-labelledby': 'wh-title' }, h('h2', { id: 'wh-title' }, 'Subscriptions'), can('admin') ? createForm(() => load()) : null, listBox),
    detailBox,
  );

  function replayForm(w) {
    if (!can('admin')) return null;
    const seq = h('input', { type: 'number', min: 0, step: 1, id: 'replay-since', value: '0', class: 'short', required: true });
    return h(
      'form',
      {
        class: 'inline-form',
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          try {
            const out = await api(`/v1/webhooks/${w.id}/replay`, { method: 'POST', json: { since_seq: Number(seq.value) || 0 } });
            toast(`Replay queued: ${out.queued} deliveries (events #${out.after_seq + 1} to #${out.until_seq}).`, 'ok');
            loadDeliveries();
          } catch (err) {
            toast(isMissing(err) ? 'Replay is not available on this hub version.' : `Replay failed: ${err.describe ? err.describe() : err.message}`, 'error');
          }
        },
      },
      h('label', { for: 'replay-since' }, 'Send again the events after sequence'),
      seq,
      h('button', { type: 'submit', class: 'secondary', dataset: { action: 'replay' } }, 'Replay'),
    );
  }

  async function loadDeliveries() {
    if (!selected || closed) return;
    const w = selected;
    let rows;
    let problem = null;
    try {
      const res = await api(`/v1/webhooks/${w.id}/deliveries?limit=${DELIVERIES}`);
      rows = (res && res.deliveries) || [];
    } catch (e) {
      problem = e;
    }
    if (closed || selected !== w) return;
    let body;
    if (problem) body = h('p', { class: 'form-error' }, `Could not load deliveries: ${problem.message}`);
    else if (!rows.length) body = h('p', { class: 'muted' }, 'No deliveries yet.');
    else {
      body = h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { id: 'deliveries' },
          h('thead', null, h('tr', null, ['Queued', 'Event', 'Delivery', 'Last answer', 'Latency', 'Attempts', 'Error'].map((x) => h('th', { scope: 'col', class: x === 'Latency' || x === 'Attempts' ? 'num' : null }, x)))),
          h('tbody', null, rows.map(deliveryRow)),
        ),
      );
      stackable(body.querySelector('table'));
    }
    replace(
      detailBox,
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'dl-title' },
        h(
          'div',
          { class: 'section-head' },
          h('h2', { id: 'dl-title' }, 'Recent deliveries to ', h('code', null, w.url)),
          h('button', { type: 'button', class: 'secondary small', onclick: loadDeliveries }, 'Refresh'),
        ),
        replayForm(w),
        body,
      ),
    );
  }
  const reloadDeliveries = debounce(loadDeliveries, 1500);

  async function load() {
    let hooks;
    try {
      const res = await api('/v1/webhooks');
      hooks = (res && res.webhooks) || [];
    } catch (e) {
      if (closed) return;
      if (isMissing(e)) replace(listBox, h('p', { class: 'notice' }, 'This hub has no webhook endpoints.'));
      else if (e.status === 403) replace(listBox, h('p', { class: 'notice' }, 'Only admins can see webhook subscriptions.'));
      else replace(listBox, h('p', { class: 'form-error' }, `Could not list webhooks: ${e.message}`));
      return;
    }
    if (closed) return;
    if (!hooks.length) {
      replace(listBox, h('p', { class: 'muted' }, 'No webhook subscriptions yet. Create one above, with POST /v1/webhooks or with `switchyard webhooks create`.'));
      return;
    }
    replace(
      listBox,
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { id: 'webhooks' },
          h('thead', null, h('tr', null, ['Target', 'Events', 'State', 'Description', h('span', { class: 'visually-hidden' }, 'Actions')].map((x) => h('th', { scope: 'col' }, x)))),
          h(
            'tbody',
            null,
            hooks.map((w) => h(
              'tr',
              { dataset: { webhookId: w.id, enabled: String(w.enabled) } },
              h('td', { class: 'mono small target' }, w.url, w.label ? [h('br'), h('span', { class: 'tag' }, `label ${w.label}`)] : null),
              h('td', null, (w.event_types.length ? w.event_types : ['*']).map((t) => h('code', { class: 'cap' }, t === '*' ? 'all events' : t))),
              h('td', null, stateBadge(w), w.disabled_reason ? [h('br'), h('small', { class: 'muted' }, w.disabled_reason)] : null),
              h('td', null, w.description || ''),
              h('td', { class: 'row-actions' }, h('button', {
                type: 'button', class: 'secondary small', 'aria-label': `Deliveries to ${w.url}`,
                onclick: () => {
                  selected = w;
                  loadDeliveries();
                },
              }, 'Deliveries'), can('admin') ? [' ', rowActions(w, () => {
                if (selected && selected.id === w.id) {
                  selected = null;
                  replace(detailBox);
                }
                load();
              })] : null),
            )),
          ),
        ),
      ),
    );
  }
  load();
  const off = live.on('event', () => {
    if (selected) reloadDeliveries();
  });
  return () => {
    closed = true;
    off();
    reloadDeliveries.cancel();
  };
}
