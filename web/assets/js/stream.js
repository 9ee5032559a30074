// The client of the hub's WebSocket stream (`/v1/stream`, see
// docs/events.md): every live update of the dashboard comes through it.
//
// - Authentication: a single-use ticket from `POST /v1/stream/tickets`
//   (bearer token in a header), passed as `?ticket=`; the token itself never
//   goes into a URL.
// - Subscriptions are remembered. After any disconnect (hub restart, network
//   loss, `lagged`), the client reconnects with exponential backoff and
//   jitter and resubscribes. A `replay` subscription resubscribes with
//   `after` = the last sequence number it saw, so the server replays exactly
//   what was missed. A `live` subscription (views whose state is read over
//   REST, e.g. a job page) resubscribes from the hub's current position and
//   is told to re-read (`onResync`): replaying the 40,000 events a lag
//   skipped would only lag again.
// - `types` narrows an event subscription to those event types, so a page
//   that shows failures is not sent every item event of every job.
// - Events at or below a subscription's last seen sequence are dropped, so a
//   replay never shows anything twice.
//
// States (the `state` event's detail): idle, connecting, open, reconnecting,
// unavailable (the hub has no stream endpoint), closed.

import { api, ApiError } from './api.js';

const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 15000;

export class StreamClient extends EventTarget {
  #ws = null;
  #subs = new Map();
  #nextId = 1;
  #attempt = 0;
  #timer = null;
  #running = false;
  state = 'idle';
  retryAt = null;
  /** How many times the hub closed this client's stream as lagged. */
  lagged = 0;

  /** Connects and keeps reconnecting until `stop()`. */
  start() {
    if (this.#running) return;
    this.#running = true;
    this.#attempt = 0;
    this.#connect();
  }

  stop() {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = null;
    const ws = this.#ws;
    this.#ws = null;
    if (ws) ws.close(1000, 'signed out');
    this.#subs.clear();
    this.#setState('closed');
  }

  /** Reconnects now if waiting for a retry (e.g. the browser came online). */
  nudge() {
    if (this.#running && !this.#ws && this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
      this.#connect();
    }
  }

  /**
   * Subscribes to `topic` (`*`, `job:<uuid>`, `agents`, `stats`).
   * `after`: replay stored events with a greater seq first (event topics).
   * `types`: only these event types. `resume`: `replay` (default) or `live`
   * (see the module docs). Handlers: `onEvent(event)`, `onMessage(msg)` for
   * agents/stats pushes, `onSubscribed(msg)`, `onResync()` (a `live`
   * subscription is back after a disconnect). Returns `{close()}`.
   */
  subscribe(topic, { after = null, types = null, resume = 'replay', onEvent, onMessage, onSubscribed, onResync } = {}) {
    const sub = {
      id: `s${this.#nextId++}`, topic, lastSeq: after, types, resume, onEvent, onMessage, onSubscribed, onResync, sent: false,
    };
    this.#subs.set(sub.id, sub);
    this.#sendSubscribe(sub);
    return {
      id: sub.id,
      close: () => {
        if (!this.#subs.delete(sub.id)) return;
        this.#send({ type: 'unsubscribe', id: sub.id });
      },
    };
  }

  #setState(state, detail = {}) {
    this.state = state;
    this.retryAt = detail.retryAt || null;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, ...detail } }));
  }

  #send(msg) {
    if (this.#ws && this.#ws.readyState === WebSocket.OPEN) {
      this.#ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  #sendSubscribe(sub) {
    const msg = { type: 'subscribe', id: sub.id, topic: sub.topic };
    // A live subscription subscribed before starts again from now.
    const again = sub.sent && sub.resume === 'live';
    if (again) sub.lastSeq = null;
    if (Number.isInteger(sub.lastSeq) && sub.lastSeq >= 0) msg.after = sub.lastSeq;
    if (Array.isArray(sub.types) && sub.types.length) msg.types = sub.types;
    if (this.#send(msg)) {
      sub.resync = again;
      sub.sent = true;
    }
  }

  async #connect() {
    this.#timer = null;
    this.#setState(this.#attempt === 0 ? 'connecting' : 'reconnecting');
    let ticket;
    try {
      const res = await api('/v1/stream/tickets', { method: 'POST' });
      ticket = res && res.ticket;
      if (!ticket) throw new ApiError(500, 'bad_ticket', 'The hub answered without a ticket.');
    } catch (err) {
      if (!this.#running) return;
      if (err instanceof ApiError && err.status === 401) {
        // The api layer has announced the rejected token; stop trying.
        this.#running = false;
        this.#setState('closed');
        return;
      }
      const unavailable = err instanceof ApiError && (err.status === 404 || err.status === 405);
      this.#retry(unavailable ? 'unavailable' : 'reconnecting');
      return;
    }
    if (!this.#running) return;
    const url = new URL('/v1/stream', window.location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('ticket', ticket);
    const ws = new WebSocket(url);
    this.#ws = ws;
    ws.addEventListener('open', () => {
      if (this.#ws !== ws) return;
      for (const sub of this.#subs.values()) this.#sendSubscribe(sub);
      this.#setState('open');
    });
    ws.addEventListener('message', (m) => {
      if (this.#ws === ws) this.#onMessage(m.data);
    });
    ws.addEventListener('close', () => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      if (this.#running) this.#retry('reconnecting');
    });
  }

  #retry(state) {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** this.#attempt);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.#attempt += 1;
    this.#setState(state, { retryAt: Date.now() + delay });
    this.#timer = setTimeout(() => this.#connect(), delay);
  }

  #onMessage(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    const sub = msg.id ? this.#subs.get(msg.id) : null;
    switch (msg.type) {
      case 'subscribed':
        this.#attempt = 0;
        if (!sub) return;
        // A live-only subscription resumes from here after a reconnect.
        if (!Number.isInteger(sub.lastSeq) && Number.isInteger(msg.latest_seq)) sub.lastSeq = msg.latest_seq;
        if (sub.onSubscribed) sub.onSubscribed(msg);
        if (sub.resync) {
          sub.resync = false;
          if (sub.onResync) sub.onResync(msg);
        }
        return;
      case 'event': {
        if (!sub || !msg.event) return;
        const seq = msg.event.seq;
        if (Number.isInteger(sub.lastSeq) && seq <= sub.lastSeq) return;
        sub.lastSeq = seq;
        if (sub.onEvent) sub.onEvent(msg.event);
        return;
      }
      case 'lagged':
        // The server closes next; resume at once (replay subscriptions from
        // where they stopped, live ones from now, with a re-read).
        this.#attempt = 0;
        this.lagged += 1;
        this.dispatchEvent(new CustomEvent('lagged', { detail: msg }));
        return;
      case 'error':
        console.warn('stream error', msg.code, msg.message);
        this.dispatchEvent(new CustomEvent('problem', { detail: msg }));
        return;
      default:
        if (sub && sub.onMessage) sub.onMessage(msg);
    }
  }
}
