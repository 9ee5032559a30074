// Formatting of ids, times, numbers and statuses, in one place.

import { h } from './dom.js';

/** Job statuses, in lifecycle order (server: domain/status.rs). */
export const JOB_STATUSES = ['waiting', 'queued', 'running', 'completed', 'failed', 'cancelled'];
export const TERMINAL_JOB = new Set(['completed', 'failed', 'cancelled']);
/** Item statuses, in lifecycle order. */
export const ITEM_STATUSES = ['pending', 'validating', 'integrated', 'rejected', 'failed'];
export const TERMINAL_ITEM = new Set(['integrated', 'rejected', 'failed']);

/** The colour family of a status word: ok, bad, warn, busy or idle. */
const TONE = {
  completed: 'ok', integrated: 'ok', succeeded: 'ok', connected: 'ok', active: 'ok', enabled: 'ok',
  failed: 'bad', cancelled: 'idle', rejected: 'warn', offline: 'bad', disabled: 'idle',
  running: 'busy', validating: 'busy', assigned: 'busy', draining: 'warn', degraded: 'warn',
  disconnected: 'warn', queued: 'idle', waiting: 'idle', pending: 'idle', retrying: 'warn',
  delivered: 'ok', failing: 'warn', alive: 'ok', dead: 'bad', stopped: 'idle', leader: 'busy',
};

export function tone(status) {
  return TONE[status] || 'idle';
}

/** A status pill: text always present, colour only as a hint. */
export function badge(status, extraClass = '') {
  return h('span', { class: `badge tone-${tone(status)} ${extraClass}`.trim(), dataset: { status } }, status);
}

/** The last 8 hex digits of a UUID: ids are UUIDv7, whose leading digits
 * are a timestamp shared by everything created in the same millisecond. */
export function shortId(id) {
  return typeof id === 'string' ? id.slice(-8) : '';
}

const pad = (n) => String(n).padStart(2, '0');

/** The short name of the browser's time zone at `d` (`UTC`, `CET`, `GMT+1`). */
export function zoneName(d) {
  const part = new Intl.DateTimeFormat(undefined, { timeZoneName: 'short' })
    .formatToParts(d)
    .find((p) => p.type === 'timeZoneName');
  return part ? part.value : 'UTC';
}

/**
 * Every date on the dashboard has one form, in the browser's time zone with
 * the zone written out: `2026-12-05 09:30:15 CET`.
 */
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtClock(d)} ${zoneName(d)}`;
}

/** The time of day, 24-hour: `09:30:15` (the zone is in the page's dates). */
export function fmtClock(iso) {
  if (!iso) return '';
  const d = iso instanceof Date ? iso : new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** 0.6 s, 42 s, 3 min 5 s, 2 h 10 min, 3 d 4 h. */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  if (seconds < 9.95) return `${Math.max(0, seconds).toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return m % 60 ? `${hr} h ${m % 60} min` : `${hr} h`;
  return `${Math.floor(hr / 24)} d ${hr % 24} h`;
}

export function fmtNumber(n, digits = 0) {
  if (n === null || n === undefined || !Number.isFinite(Number(n))) return '—';
  return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function fmtMs(ms) {
  if (!Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

export function fmtBytes(n) {
  if (!Number.isFinite(n)) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Names of capabilities, whether given as strings or `{name}` objects. */
export function capabilityNames(caps) {
  if (!Array.isArray(caps)) return [];
  return caps.map((c) => (typeof c === 'string' ? c : c && c.name)).filter(Boolean);
}
