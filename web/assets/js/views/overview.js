// Overview: the fleet at a glance (agents by state; jobs running, queued
// and failed, counted in the store by `GET /v1/jobs/counts`), capabilities
// with work waiting and no agent to do it (a warning), the ready queues,
// tasks per second and dispatch latency as live charts, the last 24 hours
// per minute (`GET /v1/throughput`, kept in the hub's memory), and recent
// failures. Everything re-renders on the `stats` push (every second) and on
// events; the job counts are re-read when a job event says they changed (at
// most twice a second); the 24-hour history is read once and each `stats` push
// adds its second to the current minute.

import { api } from '../api.js';
import { sparkline } from '../chart.js';
import { debounce, h, hubNow, replace, since } from '../dom.js';
import { badge, capabilityNames, fmtDuration, fmtMs, fmtNumber, shortId } from '../format.js';
import * as live from '../live.js';

const CHART_SECONDS = 60;
const HISTORY_MINUTES = 24 * 60;
/** Job counts from the store; null until read. */
let jobCounts = null;

/** Agent counts from the latest stats push, else from the agent snapshots. */
function agentCounts() {
  const s = live.stats && live.stats.agents;
  if (s) {
    return { online: (s.connected || 0) + (s.draining || 0), degraded: s.degraded || 0, draining: s.draining || 0, offline: s.offline || 0 };
  }
  const c = { online: 0, degraded: 0, draining: 0, offline: 0 };
  for (const a of live.agents.values()) {
    if (a.session_state === 'connected' || a.session_state === 'draining') c.online += 1;
    else c.offline += 1;
    if (a.session_state === 'draining') c.draining += 1;
    if (a.health === 'degraded') c.degraded += 1;
  }
  return c;
}

function cards() {
  const c = agentCounts();
  const queues = Object.values((live.stats && live.stats.queues) || {});
  const waiting = queues.reduce((n, q) => n + (q.depth || 0), 0);
  const card = (label, value, tone, id) => h('div', { class: `stat tone-${tone}`, id }, h('span', { class: 'stat-value' }, fmtNumber(value)), h('span', { class: 'stat-label' }, label));
  return h(
    'div',
    { class: 'stats-grid', role: 'group', 'aria-label': 'Fleet summary' },
    card('agents online', c.online, 'ok', 'stat-online'),
    card('degraded', c.degraded, c.degraded ? 'warn' : 'idle', 'stat-degraded'),
    card('offline', c.offline, c.offline ? 'bad' : 'idle', 'stat-offline'),
    card('tasks waiting', waiting, waiting ? 'busy' : 'idle', 'stat-waiting'),
    jobCounts ? card('jobs running', jobCounts.running, jobCounts.running ? 'busy' : 'idle', 'stat-jobs-running') : null,
    jobCounts ? card('jobs queued', jobCounts.queued + jobCounts.waiting, jobCounts.queued ? 'busy' : 'idle', 'stat-jobs-queued') : null,
    jobCounts ? card('jobs failed', jobCounts.failed, jobCounts.failed ? 'bad' : 'idle', 'stat-jobs-failed') : null,
  );
}

/** Capabilities with tasks waiting and no connected agent offering them. */
export function orphanedCapabilities() {
  const served = new Set();
  for (const a of live.agents.values()) {
    if (a.session_state === 'connected' || a.session_state === 'draining') {
      for (const c of capabilityNames(a.capabilities)) served.add(c);
    }
  }
  return Object.entries((live.stats && live.stats.queues) || {})
    .filter(([cap, q]) => q.depth > 0 && !served.has(cap))
    .sort(([a], [b]) => a.localeCompare(b));
}

function warnings() {
  const orphaned = orphanedCapabilities();
  if (!orphaned.length) return null;
  return h(
    'div',
    { class: 'warning-box', role: 'alert' },
    h('strong', null, 'Work is waiting that no connected agent can do:'),
    h('ul', { id: 'capability-warnings' }, orphaned.map(([cap, q]) => h(
      'li',
      { dataset: { capability: cap } },
      h('code', null, cap), ` — ${fmtNumber(q.depth)} task${q.depth === 1 ? '' : 's'} waiting for ${fmtDuration(q.oldest_seconds)}; start an agent with this capability.`,
    ))),
  );
}

/** The last 24 hours at one value per minute (gaps are zero). */
function historyChart(byMinute) {
  if (!byMinute) return h('p', { class: 'muted' }, 'Reading the throughput history…');
  const now = Math.floor(hubNow() / 60000);
  const values = [];
  for (let m = now - HISTORY_MINUTES + 1; m <= now; m += 1) values.push(byMinute.get(m) || 0);
  return sparkline({ id: 'throughput-history', title: 'Tasks finished per minute', values, format: (v) => fmtNumber(v), unit: '/min', span: '24 h (this hub node, since it started)' });
}

function queuesTable() {
  const queues = Object.entries((live.stats && live.stats.queues) || {}).sort(([a], [b]) => a.localeCompare(b));
  if (!live.stats) return h('p', { class: 'muted' }, 'Waiting for the first statistics from the hub…');
  if (!queues.length) return h('p', { class: 'muted' }, 'No capability has a queue yet.');
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { id: 'queues' },
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Capability'), h('th', { scope: 'col', class: 'num' }, 'Waiting'), h('th', { scope: 'col', class: 'num' }, 'Oldest waiting'))),
      h(
        'tbody',
        null,
        queues.map(([cap, q]) => h('tr', { dataset: { capability: cap } }, h('td', null, h('code', null, cap)), h('td', { class: 'num' }, fmtNumber(q.depth)), h('td', { class: 'num' }, q.depth ? fmtDuration(q.oldest_seconds) : '—'))),
      ),
    ),
  );
}

function series(map, pick) {
  const now = Math.floor(hubNow() / 1000) - 1; // the current second is still filling
  const out = [];
  for (let sec = now - CHART_SECONDS + 1; sec <= now; sec += 1) out.push(pick(map.get(sec)));
  return out;
}

function charts() {
  const finished = series(live.finishedPerSecond, (n) => n || 0);
  const latency = series(live.latencyPerSecond, (b) => (b ? b.sum / b.n : null));
  return h(
    'div',
    { class: 'charts' },
    sparkline({ title: 'Tasks finished per second', values: finished, format: (v) => fmtNumber(v, 1), unit: '/s' }),
    sparkline({ title: 'Dispatch latency (mean)', values: latency, format: fmtMs }),
  );
}

function describeFailure(ev) {
  const p = ev.payload || {};
  const what = p.error || p.reason || p.status || '';
  return typeof what === 'string' ? what : JSON.stringify(what);
}

function failuresList() {
  if (!live.failures.length) return h('p', { class: 'muted' }, 'No failures seen recently.');
  return h(
    'ol',
    { class: 'timeline', id: 'failures' },
    live.failures.slice(0, 12).map((ev) =>
      h(
        'li',
        null,
        since(ev.created_at),
        ' ',
        badge(ev.type.split('.')[1], 'small'),
        ' ',
        h('code', null, ev.type),
        ev.job_id ? [' job ', h('a', { href: `#/jobs/${ev.job_id}` }, shortId(ev.job_id))] : null,
        ev.payload && ev.payload.capability ? [' · ', h('code', null, ev.payload.capability)] : null,
        h('span', { class: 'failure-text' }, describeFailure(ev)),
      ),
    ),
  );
}

export function renderOverview(main) {
  let closed = false;
  /** Tasks finished per minute (epoch minute → n), and the seconds already added. */
  let byMinute = null;
  let lastSecond = 0;
  const warningsBox = h('div');
  const historyBox = h('div');
  const cardsBox = h('div');
  const queuesBox = h('div');
  const chartsBox = h('div');
  const failuresBox = h('div');
  main.append(
    h('h1', null, 'Overview'),
    cardsBox,
    warningsBox,
    h('div', { class: 'columns' },
      h('section', { class: 'card', 'aria-labelledby': 'q-title' }, h('h2', { id: 'q-title' }, 'Queues'), queuesBox),
      h('section', { class: 'card', 'aria-labelledby': 'c-title' }, h('h2', { id: 'c-title' }, 'Throughput'), chartsBox)),
    h('section', { class: 'card', 'aria-labelledby': 'h-title' }, h('h2', { id: 'h-title' }, 'Last 24 hours'), historyBox),
    h('section', { class: 'card', 'aria-labelledby': 'f-title' }, h('h2', { id: 'f-title' }, 'Recent failures'), failuresBox),
  );
  const draw = () => {
    replace(cardsBox, cards());
    replace(warningsBox, warnings());
    replace(queuesBox, queuesTable());
    replace(chartsBox, charts());
  };
  const drawFailures = debounce(() => replace(failuresBox, failuresList()), 250);
  const drawSoon = debounce(draw, 250);
  const readCounts = debounce(async () => {
    try {
      const counts = await api('/v1/jobs/counts');
      jobCounts = counts.by_status;
      if (!closed) drawSoon();
    } catch (e) {
      console.warn('could not count the jobs', e);
    }
  }, 500);
  const readHistory = async () => {
    let history;
    try {
      history = await api('/v1/throughput?resolution=minute');
    } catch (e) {
      console.warn('could not read the throughput history', e);
      return;
    }
    if (closed) return;
    byMinute = new Map(history.buckets.map((b) => [Math.floor(Date.parse(b.at) / 60000), b.tasks_succeeded + b.tasks_failed]));
    // The minute still filling is counted from the next second on.
    lastSecond = Math.floor(hubNow() / 1000);
    replace(historyBox, historyChart(byMinute));
  };
  /** A `stats` push's last second goes into its minute, once. */
  const addSecond = (msg) => {
    const b = msg && msg.throughput;
    if (!byMinute || !b) return;
    const sec = Math.floor(Date.parse(b.at) / 1000);
    if (!(sec > lastSecond)) return;
    lastSecond = sec;
    const minute = Math.floor(sec / 60);
    byMinute.set(minute, (byMinute.get(minute) || 0) + b.tasks_succeeded + b.tasks_failed);
    replace(historyBox, historyChart(byMinute));
  };
  readHistory();
  replace(historyBox, historyChart(null));
  readCounts();
  draw();
  replace(failuresBox, failuresList());
  const offs = [
    live.on('stats', (msg) => {
      draw();
      addSecond(msg);
    }),
    live.on('agents', drawSoon),
    live.on('event', (ev) => {
      // Replayed history reaches the charts without waiting for the next stats push.
      drawSoon();
      if (ev.type.startsWith('job.')) readCounts();
      if (ev.type.endsWith('.failed') || ev.type === 'task.retrying') drawFailures();
    }),
  ];
  return () => {
    closed = true;
    readCounts.cancel();
    offs.forEach((off) => off());
    drawFailures.cancel();
    drawSoon.cancel();
  };
}
