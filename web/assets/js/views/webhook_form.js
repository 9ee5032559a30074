// What admins do to webhook subscriptions from the page: create one (the
// hub answers with its signing secret, shown here once: it is never shown
// again, not after a reload, not in the list), pause and resume it, and
// delete it after a confirmation. The hub enforces the same rules (admins
// only; URLs and event types checked there, errors shown per field).

import { api } from '../api.js';
import { h, replace, toast } from '../dom.js';
import { confirmDialog } from './dialog.js';

/** The secret of a subscription just created, with a way to dismiss it. */
function secretBox(webhook, onDismiss) {
  const value = h('code', { class: 'secret-value', id: 'webhook-secret-value' }, webhook.secret);
  return h(
    'div',
    { class: 'notice secret', id: 'webhook-secret', role: 'status' },
    h('p', null, h('strong', null, 'Signing secret for '), h('code', null, webhook.url)),
    h('p', null, value),
    h('p', { class: 'small muted' }, 'Copy it now into the receiver\'s configuration: the hub shows it only this once. Rotate it later with POST /v1/webhooks/{id}/rotate-secret.'),
    h('button', { type: 'button', class: 'secondary small', dataset: { action: 'dismiss-secret' }, onclick: onDismiss }, 'I have copied it'),
  );
}

/**
 * The "New subscription" form. `onCreated(webhook)` runs after the hub
 * accepted it. Returns the element.
 */
export function createForm(onCreated) {
  const url = h('input', { type: 'url', id: 'webhook-url', required: true, placeholder: 'https://receiver.example/hooks/switchyard', autocomplete: 'off' });
  const types = h('input', { type: 'text', id: 'webhook-types', placeholder: 'job.completed, job.failed (empty: every event)' });
  const label = h('input', { type: 'text', id: 'webhook-label', placeholder: 'optional' });
  const description = h('input', { type: 'text', id: 'webhook-description', placeholder: 'optional' });
  const error = h('p', { class: 'form-error', id: 'webhook-form-error', role: 'alert' });
  const secret = h('div');
  const field = (id, text, input) => h('div', { class: 'field' }, h('label', { for: id }, text), input);
  const form = h(
    'form',
    {
      novalidate: true,
      onsubmit: async (e) => {
        e.preventDefault();
        error.textContent = '';
        const body = { url: url.value.trim() };
        const names = types.value.split(',').map((t) => t.trim()).filter(Boolean);
        if (names.length) body.event_types = names;
        if (label.value.trim()) body.label = label.value.trim();
        if (description.value.trim()) body.description = description.value.trim();
        let created;
        try {
          created = await api('/v1/webhooks', { method: 'POST', json: body });
        } catch (err) {
          error.textContent = err.describe ? err.describe() : err.message;
          return;
        }
        form.reset();
        replace(secret, secretBox(created, () => replace(secret)));
        toast('Subscription created.', 'ok');
        onCreated(created);
      },
    },
    field('webhook-url', 'Target URL', url),
    field('webhook-types', 'Event types (comma-separated)', types),
    h('div', { class: 'field-row' }, field('webhook-label', 'Only jobs with label', label), field('webhook-description', 'Description', description)),
    error,
    h('button', { type: 'submit', dataset: { action: 'create-webhook' } }, 'Create subscription'),
  );
  return h(
    'div',
    null,
    secret,
    h('details', { class: 'new-job', id: 'new-webhook-panel' }, h('summary', null, 'New subscription'), form),
  );
}

/** Pause/Resume and Delete buttons for one subscription. */
export function rowActions(webhook, onChanged) {
  const toggle = h('button', {
    type: 'button',
    class: 'secondary small',
    dataset: { action: webhook.enabled ? 'pause' : 'resume' },
    'aria-label': `${webhook.enabled ? 'Pause' : 'Resume'} deliveries to ${webhook.url}`,
    onclick: async () => {
      try {
        await api(`/v1/webhooks/${webhook.id}`, { method: 'PATCH', json: { enabled: !webhook.enabled } });
        toast(webhook.enabled ? 'Paused. Events from while it is paused are not sent (replay them after resuming if you want them).' : 'Resumed: queued deliveries go out again, from the newest event on.', 'ok');
        onChanged();
      } catch (err) {
        toast(`Could not change the subscription: ${err.message}`, 'error');
      }
    },
  }, webhook.enabled ? 'Pause' : 'Resume');
  const remove = h('button', {
    type: 'button',
    class: 'danger small',
    dataset: { action: 'delete' },
    'aria-label': `Delete the subscription to ${webhook.url}`,
    onclick: async () => {
      const ok = await confirmDialog({
        title: 'Delete this subscription?',
        body: `Nothing more is sent to ${webhook.url}, and its delivery history is deleted with it.`,
        confirm: 'Yes, delete it',
        cancel: 'Keep it',
      });
      if (!ok) return;
      try {
        await api(`/v1/webhooks/${webhook.id}`, { method: 'DELETE' });
        toast('Subscription deleted.', 'ok');
        onChanged();
      } catch (err) {
        toast(`Could not delete the subscription: ${err.message}`, 'error');
      }
    },
  }, 'Delete');
  return [toggle, ' ', remove];
}
