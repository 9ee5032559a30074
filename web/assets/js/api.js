// The REST client: bearer token from the session, JSON in and out, and one
// error type carrying the hub's `{error, message, details}`.

import { token } from './auth.js';

export class ApiError extends Error {
  constructor(status, code, message, details = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** The message with the per-field details, for showing to a person. */
  describe() {
    if (!this.details || !this.details.length) return this.message;
    return `${this.message} (${this.details.map((d) => `${d.field}: ${d.message}`).join('; ')})`;
  }
}

/** Fired on `window` when the hub rejects the token (401). */
export const UNAUTHORIZED = 'switchyard:unauthorized';

/**
 * Calls the hub. `json` sends a JSON body, `form` a FormData (multipart);
 * `accept: 'text'` returns the body as text. Resolves to the parsed body (null
 * for an empty one); rejects with ApiError.
 */
export async function api(path, { method = 'GET', json, form, accept = 'json', authToken } = {}) {
  const headers = { Accept: accept === 'json' ? 'application/json' : 'text/plain, text/markdown, */*' };
  const bearer = authToken || token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body, cache: 'no-store', credentials: 'omit', redirect: 'error' });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `The hub cannot be reached (${e.message}).`);
  }
  if (res.status === 401 && !authToken) window.dispatchEvent(new CustomEvent(UNAUTHORIZED));
  const type = res.headers.get('content-type') || '';
  if (!res.ok) {
    let code = `http_${res.status}`;
    let message = `${method} ${path} failed with HTTP ${res.status}.`;
    let details = [];
    if (type.includes('json')) {
      const problem = await res.json().catch(() => null);
      if (problem && typeof problem === 'object') {
        code = problem.error || code;
        message = problem.message || message;
        details = Array.isArray(problem.details) ? problem.details : [];
      }
    }
    throw new ApiError(res.status, code, message, details);
  }
  if (res.status === 204) return null;
  if (accept === 'json' && type.includes('json')) return res.json();
  if (accept === 'blob') return res.blob();
  const text = await res.text();
  if (accept === 'json') return text ? JSON.parse(text) : null;
  return text;
}

/** True when this hub does not have the endpoint (yet): a 404 from the
 * router ("no route for ..."), or 405/501. */
export function isMissing(err) {
  if (!(err instanceof ApiError)) return false;
  if (err.status === 405 || err.status === 501) return true;
  return err.status === 404 && /^no route/i.test(err.message);
}
