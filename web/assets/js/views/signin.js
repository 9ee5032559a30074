// Sign in: paste a token once. It is checked (shape, role, expiry, then the
// hub itself) before it is kept in sessionStorage.

import { api, ApiError } from '../api.js';
import { decodeClaims, signIn, TokenError } from '../auth.js';
import { h } from '../dom.js';

export function renderSignIn(main, { reason, onSignedIn }) {
  const input = h('textarea', {
    id: 'token',
    name: 'token',
    rows: 4,
    required: true,
    autocomplete: 'off',
    autocapitalize: 'off',
    spellcheck: 'false',
    'aria-describedby': 'token-help',
    class: 'token-input',
  });
  const error = h('p', { class: 'form-error', id: 'signin-error', role: 'alert' });
  const button = h('button', { type: 'submit' }, 'Sign in');

  async function submit(e) {
    e.preventDefault();
    error.textContent = '';
    const text = input.value.trim().replace(/^Bearer\s+/i, '');
    if (!text) {
      error.textContent = 'Paste a token first.';
      input.focus();
      return;
    }
    try {
      decodeClaims(text);
    } catch (err) {
      error.textContent = err instanceof TokenError ? err.message : String(err);
      input.focus();
      return;
    }
    button.disabled = true;
    button.textContent = 'Checking…';
    try {
      await api('/v1/jobs?limit=1', { authToken: text });
    } catch (err) {
      button.disabled = false;
      button.textContent = 'Sign in';
      if (err instanceof ApiError && err.status === 401) {
        error.textContent = `The hub rejected this token: ${err.message}`;
      } else if (err instanceof ApiError && err.status === 403) {
        error.textContent = `This token may not read from the hub: ${err.message}`;
      } else {
        error.textContent = err.message || String(err);
      }
      input.focus();
      return;
    }
    input.value = '';
    signIn(text);
    onSignedIn();
  }

  main.append(
    h(
      'section',
      { class: 'signin card', 'aria-labelledby': 'signin-title' },
      h('h1', { id: 'signin-title' }, 'Sign in to Switchyard'),
      reason ? h('p', { class: 'notice' }, reason) : null,
      h(
        'form',
        { onsubmit: submit, novalidate: true, autocomplete: 'off' },
        h('label', { for: 'token' }, 'Access token'),
        input,
        h(
          'p',
          { id: 'token-help', class: 'muted' },
          'Paste a viewer, operator or admin token (',
          h('code', null, 'switchyard token issue --role viewer --sub you'),
          '). It is kept only in this browser tab and sent only to this hub.',
        ),
        error,
        h('div', { class: 'actions' }, button),
      ),
    ),
  );
  input.focus();
  return null;
}
