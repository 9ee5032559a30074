// The cluster's nodes (`GET /v1/nodes`), shown on the Agents page: which
// hub processes share the database, which one answers (this), which one
// runs the monitor (leader), and which are alive. Re-read every few seconds
// while shown: node liveness is a heartbeat in the database, not a stream
// event.

import { api } from '../api.js';
import { h, replace, since, stackable } from '../dom.js';
import { badge, fmtTime } from '../format.js';

const EVERY_MS = 3000;

function row(node) {
  const state = node.alive ? 'alive' : node.stopped_at ? 'stopped' : 'dead';
  return h(
    'tr',
    { dataset: { nodeId: node.id, state, this: String(node.this), leader: String(node.leader) } },
    h(
      'th',
      { scope: 'row' },
      h('span', { class: 'mono' }, node.name),
      node.this ? h('small', { class: 'muted' }, ' (this node)') : null,
    ),
    h('td', null, badge(state, 'node-state')),
    h('td', null, node.leader ? badge('leader', 'node-role') : h('span', { class: 'muted' }, '—')),
    h('td', { class: 'mono opt' }, node.url),
    h('td', { class: 'opt' }, node.version),
    h('td', { class: 'opt' }, fmtTime(node.started_at)),
    h('td', { class: 'heartbeat' }, since(node.heartbeat_at)),
  );
}

/** Renders the nodes card into `section`; returns a stop function. */
export function mountNodes(section) {
  const body = h('div', { id: 'nodes-body' });
  const summary = h('p', { class: 'muted', id: 'nodes-summary', 'aria-live': 'polite' });
  replace(section, h('h2', null, 'Nodes'), summary, body);
  let stopped = false;
  let timer = null;
  const load = async () => {
    try {
      const list = await api('/v1/nodes');
      if (stopped) return;
      const nodes = list.nodes || [];
      const alive = nodes.filter((n) => n.alive).length;
      summary.textContent = alive === 1
        ? 'One hub node: agents and clients all talk to it.'
        : `${alive} live hub nodes share the database; an agent may be connected to any of them.`;
      replace(
        body,
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { id: 'nodes' },
            h(
              'thead',
              null,
              h(
                'tr',
                null,
                h('th', { scope: 'col' }, 'Node'),
                h('th', { scope: 'col' }, 'State'),
                h('th', { scope: 'col' }, 'Role'),
                h('th', { scope: 'col', class: 'opt' }, 'URL'),
                h('th', { scope: 'col', class: 'opt' }, 'Version'),
                h('th', { scope: 'col', class: 'opt' }, 'Started'),
                h('th', { scope: 'col' }, 'Last heartbeat'),
              ),
            ),
            h('tbody', null, nodes.map(row)),
          ),
        ),
      );
      stackable(body.querySelector('table'));
    } catch (e) {
      if (!stopped) summary.textContent = `Could not read the nodes: ${e.message}`;
    }
    if (!stopped) timer = setTimeout(load, EVERY_MS);
  };
  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
