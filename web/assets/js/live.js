// The live picture of the hub, kept up to date by the stream:
// agents (the `agents` topic's snapshots), queue and fleet statistics (the
// `stats` topic, every second, which also carries the hub's tasks finished
// and dispatch latency of the last second, after a first read of
// `GET /v1/throughput?resolution=second`), and the events views react to:
// job status changes, failures and agent state changes. Only those types are
// subscribed to: a browser never follows the item and task events of every
// job (a 20,000-item job makes 60,000 of them), which is what made it lag.
//
// Views register listeners with `on(kind, fn)` (kinds: event, agents, stats,
// state) and get an unsubscribe function back.

import { api } from './api.js';
import { hubNow, setClockOffset } from './dom.js';
import { StreamClient } from './stream.js';

/** How far back in the log to look for recent failures on page load. */
const HISTORY_EVENTS = 5000;
/** Seconds of history the charts keep. */
export const WINDOW_SECONDS = 120;
const FAILURE_TYPES = new Set(['job.failed', 'task.failed', 'task.retrying', 'item.failed']);
const AGENT_TYPES = ['agent.connected', 'agent.draining', 'agent.disconnected', 'agent.offline'];
/** The event types the dashboard as a whole follows. */
export const GLOBAL_TYPES = [
  'job.created', 'job.queued', 'job.started', 'job.completed', 'job.failed', 'job.cancelled',
  'task.failed', 'task.retrying', 'item.failed', 'webhook.disabled', ...AGENT_TYPES,
];
const MAX_FAILURES = 25;

export const stream = new StreamClient();

/** Agents by id: the merged view of the REST list and the live snapshots. */
export const agents = new Map();
export let stats = null;
export const failures = [];
/** Per-second buckets (epoch second → value) on the hub's clock. */
export const finishedPerSecond = new Map();
export const latencyPerSecond = new Map();

const listeners = { event: new Set(), agents: new Set(), stats: new Set(), state: new Set() };

export function on(kind, fn) {
  listeners[kind].add(fn);
  return () => listeners[kind].delete(fn);
}

function emit(kind, value) {
  for (const fn of [...listeners[kind]]) {
    try {
      fn(value);
    } catch (e) {
      console.error(`dashboard ${kind} listener failed`, e);
    }
  }
}

let subs = [];

/** Starts the stream and the global subscriptions (after sign-in). */
export async function start() {
  stop();
  stream.addEventListener('state', onState);
  stream.start();
  subs.push(stream.subscribe('agents', { onMessage: onAgents }));
  subs.push(
    stream.subscribe('stats', {
      onMessage: onStats,
      onSubscribed: (msg) => {
        // Once: the events views react to, from a little in the past for
        // the recent failures.
        if (subs.some((s) => s.topic === '*')) return;
        const after = Number.isInteger(msg.latest_seq) ? Math.max(0, msg.latest_seq - HISTORY_EVENTS) : null;
        const all = stream.subscribe('*', { after, types: GLOBAL_TYPES, onEvent });
        all.topic = '*';
        subs.push(all);
      },
    }),
  );
  loadThroughput();
  try {
    const list = await api('/v1/agents');
    for (const a of (list && list.agents) || []) {
      if (!agents.has(a.id)) agents.set(a.id, a);
    }
    emit('agents', agents);
  } catch (e) {
    console.warn('could not list agents', e);
  }
}

export function stop() {
  for (const sub of subs) sub.close();
  subs = [];
  stream.removeEventListener('state', onState);
  stream.stop();
  agents.clear();
  stats = null;
  failures.length = 0;
  finishedPerSecond.clear();
  latencyPerSecond.clear();
}

/** The last two minutes of throughput, once, so the charts start full. */
async function loadThroughput() {
  try {
    const history = await api('/v1/throughput?resolution=second');
    for (const b of (history && history.buckets) || []) addBucket(b);
    pruneBuckets();
    if (stats) emit('stats', stats);
  } catch (e) {
    console.warn('could not read the throughput history', e);
  }
}

function addBucket(b) {
  const sec = second(b.at);
  if (Number.isNaN(sec)) return;
  finishedPerSecond.set(sec, (b.tasks_succeeded || 0) + (b.tasks_failed || 0));
  if (b.dispatched && b.dispatch_latency_ms_avg !== null && b.dispatch_latency_ms_avg !== undefined) {
    latencyPerSecond.set(sec, { sum: b.dispatch_latency_ms_avg * b.dispatched, n: b.dispatched, max: b.dispatch_latency_ms_max || 0 });
  } else {
    latencyPerSecond.delete(sec);
  }
}

function onState(e) {
  emit('state', e.detail);
}

function onAgents(msg) {
  const seen = new Set();
  for (const a of msg.agents || []) {
    seen.add(a.id);
    agents.set(a.id, { ...(agents.get(a.id) || {}), ...a });
  }
  // Known agents missing from a snapshot are gone from the hub: offline.
  for (const [id, a] of agents) {
    if (!seen.has(id) && a.session_state !== 'offline') {
      agents.set(id, { ...a, session_state: 'offline', in_flight: 0 });
    }
  }
  emit('agents', agents);
}

function onStats(msg) {
  stats = msg;
  if (msg.at) setClockOffset(Date.parse(msg.at) - Date.now());
  if (msg.throughput) addBucket(msg.throughput);
  pruneBuckets();
  emit('stats', msg);
}

function second(iso) {
  return Math.floor(Date.parse(iso) / 1000);
}

function onEvent(ev) {
  const p = ev.payload || {};
  switch (ev.type) {
    case 'agent.offline':
    case 'agent.disconnected':
    case 'agent.draining':
    case 'agent.connected': {
      const a = agents.get(p.agent_id);
      if (a) {
        agents.set(p.agent_id, { ...a, session_state: ev.type.slice('agent.'.length) });
        emit('agents', agents);
      }
      break;
    }
    default:
  }
  if (FAILURE_TYPES.has(ev.type)) {
    failures.unshift(ev);
    if (failures.length > MAX_FAILURES) failures.length = MAX_FAILURES;
  }
  emit('event', ev);
}

function pruneBuckets() {
  const oldest = Math.floor(hubNow() / 1000) - WINDOW_SECONDS;
  for (const map of [finishedPerSecond, latencyPerSecond]) {
    for (const sec of map.keys()) if (sec < oldest) map.delete(sec);
  }
}
