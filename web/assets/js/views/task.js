// One task (`#/tasks/<id>`): where it belongs, how it stands, and each of
// its attempts with the agent that had it, when it was handed out, started
// and ended, how it ended, the error and the usage the agent reported
// (`GET /v1/tasks/{id}`; the hub reads the attempts back from the task's
// events). Task ids in a job's events link here.
//
// The page follows the task's own events (`task:<id>` on the stream) and
// re-reads the task at most once a second when one arrives, so a running
// attempt's end shows by itself.

import { api } from '../api.js';
import { debounce, h, replace } from '../dom.js';
import { badge, fmtDuration, fmtTime, shortId } from '../format.js';
import * as live from '../live.js';

function agentName(id) {
  if (!id) return '—';
  const a = live.agents.get(id);
  return a ? [h('strong', null, a.name), ' ', h('small', { class: 'muted mono' }, shortId(id))] : h('span', { class: 'mono' }, shortId(id));
}

function usageText(usage) {
  if (!usage || typeof usage !== 'object') return '—';
  const parts = Object.entries(usage)
    .filter(([, v]) => v !== null && v !== undefined && typeof v !== 'object')
    .map(([k, v]) => `${k.replace(/_/g, ' ')}: ${v}`);
  return parts.length ? parts.join(', ') : '—';
}

function took(a) {
  const from = a.started_at || a.assigned_at;
  if (!from || !a.finished_at) return '';
  return ` (${fmtDuration((Date.parse(a.finished_at) - Date.parse(from)) / 1000)})`;
}

function summary(task) {
  const row = (term, ...value) => [h('dt', null, term), h('dd', null, ...value)];
  return h(
    'dl',
    { class: 'summary' },
    row('Job', h('a', { href: `#/jobs/${task.job_id}`, class: 'mono' }, shortId(task.job_id))),
    row('Stage', `${task.stage + 1} `, h('code', { class: 'cap' }, task.capability)),
    row('Status', badge(task.status, 'task-status')),
    task.item_id ? row('Item', h('span', { class: 'mono' }, task.item_id)) : null,
    row('Attempts', `${task.attempt} handed out, ${task.failures} failed, at most ${task.max_attempts}`),
    row('Created', fmtTime(task.created_at)),
    row('Updated', fmtTime(task.updated_at)),
    task.error ? row('Error', h('span', { class: 'failure-text' }, task.error)) : null,
  );
}

function attemptsTable(attempts) {
  if (!attempts.length) return h('p', { class: 'muted' }, 'Not handed to an agent yet.');
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { id: 'attempts' },
      h('thead', null, h('tr', null,
        h('th', { scope: 'col', class: 'num' }, '#'),
        h('th', { scope: 'col' }, 'Agent'),
        h('th', { scope: 'col' }, 'Handed out'),
        h('th', { scope: 'col' }, 'Started'),
        h('th', { scope: 'col' }, 'Ended'),
        h('th', { scope: 'col' }, 'Outcome'),
        h('th', { scope: 'col' }, 'Error'),
        h('th', { scope: 'col' }, 'Usage'))),
      h('tbody', null, attempts.map((a) => h(
        'tr',
        { dataset: { attempt: String(a.attempt), outcome: a.outcome } },
        h('td', { class: 'num' }, String(a.attempt)),
        h('td', null, agentName(a.agent_id)),
        h('td', { class: 'small' }, fmtTime(a.assigned_at)),
        h('td', { class: 'small' }, fmtTime(a.started_at)),
        h('td', { class: 'small' }, a.finished_at ? `${fmtTime(a.finished_at)}${took(a)}` : '—'),
        h('td', null, badge(a.outcome, 'attempt-outcome'), a.verdict ? [' ', h('small', { class: 'muted' }, a.verdict)] : null),
        h('td', { class: 'small failure-text' }, a.error || ''),
        h('td', { class: 'small usage' }, usageText(a.usage)),
      ))),
    ),
  );
}

export function renderTask(main, { id }) {
  let closed = false;
  const status = h('span', { id: 'task-status-head' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const summaryBox = h('div');
  const attemptsBox = h('div');
  const crumbs = h('p', { class: 'crumbs' }, h('a', { href: '#/jobs' }, '← Jobs'));
  main.append(
    crumbs,
    h('div', { class: 'page-head' }, h('h1', null, 'Task ', h('span', { class: 'mono' }, shortId(id))), status),
    error,
    h('section', { class: 'card', 'aria-labelledby': 'task-sum-title' }, h('h2', { id: 'task-sum-title' }, 'Summary'), summaryBox),
    h('section', { class: 'card', 'aria-labelledby': 'attempts-title' }, h('h2', { id: 'attempts-title' }, 'Attempts'), attemptsBox),
  );
  let sub = null;

  async function load() {
    let view;
    try {
      view = await api(`/v1/tasks/${id}`);
    } catch (e) {
      if (!closed) error.textContent = e.status === 404 ? `There is no task ${id}.` : `Could not load the task: ${e.message}`;
      return;
    }
    if (closed) return;
    error.textContent = '';
    const { task, attempts } = view;
    replace(crumbs, h('a', { href: `#/jobs/${task.job_id}` }, '← Job'));
    replace(status, badge(task.status, 'task-status'));
    replace(summaryBox, summary(task));
    replace(attemptsBox, attemptsTable(attempts));
    if (!sub) {
      sub = live.stream.subscribe(`task:${id}`, {
        resume: 'live',
        onEvent: () => reload(),
        onResync: () => reload(),
      });
    }
  }
  const reload = debounce(load, 1000);
  load();
  return () => {
    closed = true;
    reload.cancel();
    if (sub) sub.close();
  };
}
