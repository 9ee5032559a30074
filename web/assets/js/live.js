// The live picture of the hub, kept up to date by the stream alone:
// agents (the `agents` topic's snapshots), queue and fleet statistics (the
// `stats` topic, every second), and what the event log says (`*`): recent
// failures, tasks finished per second and dispatch latency (the time from a
// task becoming ready, `task.created`/`task.requeued`/`task.retrying`, to
// `task.assigned`), bucketed by the events' own timestamps.
//
// Views register listeners with `on(kind, fn)` (kinds: event, agents, stats,
// state) and get an unsubscribe function back.

import { api } from './api.js';
import { hubNow, setClockOffset } from './dom.js';
import { StreamClient } from './stream.js';

/** How many past events to replay on page load, for charts and failures. */
const HISTORY_EVENTS = 1000;
/** Seconds of history the charts keep. */
export const WINDOW_SECONDS = 120;
const FAILURE_TYPES = new Set(['job.failed', 'task.failed', 'task.retrying', 'item.failed']);
const MAX_FAILURES = 25;
const MAX_READY_TRACKED = 20000;

export const stream = new StreamClient();

/** Agents by id: the merged view of the REST list and the live snapshots. */
export const agents = new Map();
export let stats = null;
export const failures = [];
/** Per-second buckets (epoch second → value) on the hub's clock. */
export const finishedPerSecond = new Map();
export const latencyPerSecond = new Map();
const readyAt = new Map();

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
        // Once: the firehose, starting a little in the past for the charts.
        if (subs.some((s) => s.topic === '*')) return;
        const after = Number.isInteger(msg.latest_seq) ? Math.max(0, msg.latest_seq - HISTORY_EVENTS) : null;
        const all = stream.subscribe('*', { after, onEvent });
        all.topic = '*';
        subs.push(all);
      },
    }),
  );
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
  readyAt.clear();
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
  pruneBuckets();
  emit('stats', msg);
}

function second(iso) {
  return Math.floor(Date.parse(iso) / 1000);
}

function bump(map, sec, fn) {
  map.set(sec, fn(map.get(sec)));
}

function onEvent(ev) {
  const p = ev.payload || {};
  const at = Date.parse(ev.created_at);
  switch (ev.type) {
    case 'task.created':
    case 'task.requeued':
      remember(p.task_id, at);
      break;
    case 'task.retrying':
      remember(p.task_id, p.next_run_at ? Date.parse(p.next_run_at) : at);
      break;
    case 'task.assigned': {
      const ready = readyAt.get(p.task_id);
      if (ready !== undefined) {
        readyAt.delete(p.task_id);
        const ms = Math.max(0, at - ready);
        bump(latencyPerSecond, second(ev.created_at), (b = { sum: 0, n: 0, max: 0 }) => ({
          sum: b.sum + ms,
          n: b.n + 1,
          max: Math.max(b.max, ms),
        }));
      }
      break;
    }
    case 'task.succeeded':
    case 'task.failed':
      bump(finishedPerSecond, second(ev.created_at), (n = 0) => n + 1);
      break;
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

function remember(taskId, at) {
  if (!taskId || Number.isNaN(at)) return;
  readyAt.set(taskId, at);
  if (readyAt.size > MAX_READY_TRACKED) readyAt.delete(readyAt.keys().next().value);
}

function pruneBuckets() {
  const oldest = Math.floor(hubNow() / 1000) - WINDOW_SECONDS;
  for (const map of [finishedPerSecond, latencyPerSecond]) {
    for (const sec of map.keys()) if (sec < oldest) map.delete(sec);
  }
}
