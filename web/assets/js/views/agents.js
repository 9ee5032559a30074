// Agents: one row per agent, live from the `agents` topic. Rows appear,
// change and turn offline as agents connect, degrade and drop; the "last
// heartbeat" column counts up by itself. Admins can drain a connected agent.

import { api } from '../api.js';
import { can } from '../auth.js';
import { debounce, h, replace, since, stackable, toast } from '../dom.js';
import { badge, capabilityNames, shortId } from '../format.js';
import * as live from '../live.js';
import { mountNodes } from './nodes.js';

const ORDER = { connected: 0, draining: 1, disconnected: 2, offline: 3 };

function sorted() {
  return [...live.agents.values()].sort(
    (a, b) => (ORDER[a.session_state] ?? 9) - (ORDER[b.session_state] ?? 9) || String(a.name).localeCompare(String(b.name)),
  );
}

async function drain(agent, button) {
  button.disabled = true;
  try {
    await api(`/v1/agents/${agent.id}/drain`, { method: 'POST' });
    toast(`Draining ${agent.name}: it finishes its running work and takes no new work.`, 'ok');
  } catch (e) {
    button.disabled = false;
    toast(`Could not drain ${agent.name}: ${e.message}`, 'error');
  }
}

function row(agent, admin) {
  const caps = capabilityNames(agent.capabilities);
  const capacity = agent.capacity || 0;
  const inFlight = agent.in_flight || 0;
  const live_ = agent.session_state === 'connected' || agent.session_state === 'draining';
  return h(
    'tr',
    { dataset: { agentId: agent.id, agentName: agent.name, state: agent.session_state } },
    h('th', { scope: 'row' }, h('span', { class: 'agent-name' }, agent.name), h('br'), h('small', { class: 'muted mono' }, shortId(agent.id))),
    h('td', null, badge(agent.session_state || 'unknown', 'agent-state')),
    h('td', null, live_ ? badge(agent.health || 'active', 'agent-health') : h('span', { class: 'muted' }, '—')),
    h('td', { class: 'caps' }, caps.length ? caps.map((c) => h('code', { class: 'cap' }, c)) : h('span', { class: 'muted' }, 'none')),
    h(
      'td',
      { class: 'load' },
      h('meter', { min: 0, max: Math.max(1, capacity), value: inFlight, 'aria-label': `${inFlight} of ${capacity} slots busy` }),
      h('span', { class: 'num' }, ` ${inFlight}/${capacity}`),
    ),
    h('td', { class: 'num opt' }, Number.isFinite(agent.trust_score) ? agent.trust_score.toFixed(2) : '—'),
    h('td', { class: 'heartbeat' }, since(agent.last_heartbeat_at)),
    admin
      ? h(
        'td',
        null,
        agent.session_state === 'connected'
          ? h('button', { type: 'button', class: 'secondary small', dataset: { action: 'drain' }, 'aria-label': `Drain ${agent.name}`, onclick: (e) => drain(agent, e.currentTarget) }, 'Drain')
          : null,
      )
      : null,
  );
}

export function renderAgents(main) {
  const admin = can('admin');
  const body = h('div');
  const summary = h('p', { class: 'muted', id: 'agents-summary', 'aria-live': 'polite' });
  const nodes = h('section', { class: 'card', 'aria-label': 'Nodes' });
  main.append(
    h('h1', null, 'Agents'),
    summary,
    h('section', { class: 'card', 'aria-label': 'Agents' }, body),
    nodes,
  );
  const stopNodes = mountNodes(nodes);
  const draw = () => {
    const list = sorted();
    const online = list.filter((a) => a.session_state === 'connected' || a.session_state === 'draining').length;
    summary.textContent = `${online} online, ${list.length - online} not connected.`;
    if (!list.length) {
      replace(body, h('p', { class: 'muted' }, 'No agent has connected to this hub yet.'));
      return;
    }
    const focused = document.activeElement && document.activeElement.closest('tr');
    const focusedId = focused && focused.dataset.agentId;
    replace(
      body,
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { id: 'agents' },
          h(
            'thead',
            null,
            h(
              'tr',
              null,
              h('th', { scope: 'col' }, 'Agent'),
              h('th', { scope: 'col' }, 'Session'),
              h('th', { scope: 'col' }, 'Health'),
              h('th', { scope: 'col' }, 'Capabilities'),
              h('th', { scope: 'col' }, 'In flight'),
              h('th', { scope: 'col', class: 'num opt' }, 'Trust'),
              h('th', { scope: 'col' }, 'Last heartbeat'),
              admin ? h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')) : null,
            ),
          ),
          h('tbody', null, list.map((a) => row(a, admin))),
        ),
      ),
    );
    stackable(body.querySelector('table'));
    if (focusedId) {
      const again = body.querySelector(`tr[data-agent-id="${CSS.escape(focusedId)}"] button`);
      if (again) again.focus();
    }
  };
  draw();
  const off = live.on('agents', debounce(draw, 100));
  return () => {
    off();
    stopNodes();
  };
}
