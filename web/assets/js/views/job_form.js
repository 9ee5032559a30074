// The "new job" form (operators and admins): prompt, pipeline, priority,
// labels and an optional document, sent to `POST /v1/jobs` as multipart
// with a document, as JSON without one.
// Field errors from the hub (422 details) are shown next to their fields.

import { api, ApiError } from '../api.js';
import { h, toast } from '../dom.js';
import { shortId } from '../format.js';

function field(id, label, control, help) {
  return h(
    'div',
    { class: 'field', dataset: { field: id } },
    h('label', { for: `job-${id}` }, label),
    control,
    help ? h('small', { class: 'muted', id: `job-${id}-help` }, help) : null,
    h('small', { class: 'field-error', id: `job-${id}-error` }),
  );
}

export function newJobForm() {
  const prompt = h('textarea', { id: 'job-prompt', name: 'prompt', rows: 3, required: true, 'aria-describedby': 'job-prompt-error' });
  const pipeline = h('input', {
    id: 'job-pipeline', name: 'pipeline', type: 'text', placeholder: 'hub default', autocomplete: 'off',
    'aria-describedby': 'job-pipeline-help job-pipeline-error',
  });
  const priority = h('input', { id: 'job-priority', name: 'priority', type: 'number', min: 0, max: 9, step: 1, value: '5', 'aria-describedby': 'job-priority-help job-priority-error' });
  const labels = h('input', { id: 'job-labels', name: 'labels', type: 'text', autocomplete: 'off', 'aria-describedby': 'job-labels-help job-labels-error' });
  const documentInput = h('input', { id: 'job-document', name: 'document', type: 'file', 'aria-describedby': 'job-document-error' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit' }, 'Create job');
  const form = h(
    'form',
    { id: 'new-job', novalidate: true },
    field('prompt', 'Prompt', prompt),
    h(
      'div',
      { class: 'field-row' },
      field('pipeline', 'Pipeline', pipeline, 'Capabilities in order, comma-separated'),
      field('priority', 'Priority', priority, '0 (lowest) to 9 (highest)'),
      field('labels', 'Labels', labels, 'Comma-separated'),
    ),
    field('document', 'Document', documentInput),
    error,
    h('div', { class: 'actions' }, submit),
  );

  function clearErrors() {
    error.textContent = '';
    for (const el of form.querySelectorAll('.field-error')) el.textContent = '';
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors();
    if (!prompt.value.trim()) {
      form.querySelector('#job-prompt-error').textContent = 'Write what the agents should do.';
      prompt.setAttribute('aria-invalid', 'true');
      prompt.focus();
      return;
    }
    // The hub takes multipart only with a document; without one, JSON.
    const list = (text) => text.split(',').map((x) => x.trim()).filter(Boolean);
    const file = documentInput.files && documentInput.files[0];
    const fields = { prompt: prompt.value };
    if (pipeline.value.trim()) fields.pipeline = list(pipeline.value);
    if (priority.value.trim()) fields.priority = Number(priority.value);
    if (labels.value.trim()) fields.labels = list(labels.value);
    let request;
    if (file) {
      const multipart = new FormData();
      multipart.append('prompt', fields.prompt);
      if (fields.pipeline) multipart.append('pipeline', fields.pipeline.join(','));
      if (priority.value.trim()) multipart.append('priority', priority.value.trim());
      if (fields.labels) multipart.append('labels', fields.labels.join(','));
      multipart.append('document', file, file.name);
      request = { method: 'POST', form: multipart };
    } else {
      request = { method: 'POST', json: fields };
    }
    submit.disabled = true;
    submit.textContent = 'Creating…';
    try {
      const job = await api('/v1/jobs', request);
      form.reset();
      toast(`Job ${shortId(job.id)} created.`, 'ok');
      window.location.hash = `#/jobs/${job.id}`;
    } catch (err) {
      if (err instanceof ApiError && err.details.length) {
        let first = null;
        for (const d of err.details) {
          const slot = form.querySelector(`#job-${CSS.escape(d.field)}-error`);
          const input = form.querySelector(`#job-${CSS.escape(d.field)}`);
          if (slot) slot.textContent = d.message;
          if (input) {
            input.setAttribute('aria-invalid', 'true');
            first = first || input;
          }
        }
        error.textContent = err.message;
        if (first) first.focus();
      } else {
        error.textContent = `The job was not created: ${err.message}`;
      }
    } finally {
      submit.disabled = false;
      submit.textContent = 'Create job';
    }
  });

  return h(
    'details',
    { class: 'card new-job', id: 'new-job-panel' },
    h('summary', null, h('span', { class: 'summary-title' }, 'New job')),
    form,
  );
}
