// The dashboard's entry point: sign-in gate, hash router, header.
//
// Routes (the hash keeps the page a single document; the token is never in
// it): #/ overview, #/agents, #/jobs[?status=S], #/jobs/<id>,
// #/jobs/<id>/report, #/tasks/<id>, #/webhooks.

import { UNAUTHORIZED } from './api.js';
import { session, signOut } from './auth.js';
import { h, replace, startRelativeTimes } from './dom.js';
import { fmtClock } from './format.js';
import * as live from './live.js';
import { renderAgents } from './views/agents.js';
import { renderJob } from './views/job.js';
import { renderJobs } from './views/jobs.js';
import { renderOverview } from './views/overview.js';
import { renderReport } from './views/report.js';
import { renderSignIn } from './views/signin.js';
import { renderTask } from './views/task.js';
import { renderWebhooks } from './views/webhooks.js';

const UUID = '([0-9a-fA-F-]{36})';
const ROUTES = [
  { re: /^\/?$/, nav: 'overview', title: 'Overview', view: renderOverview },
  { re: /^\/agents$/, nav: 'agents', title: 'Agents', view: renderAgents },
  { re: /^\/jobs$/, nav: 'jobs', title: 'Jobs', view: renderJobs },
  { re: new RegExp(`^/jobs/${UUID}$`), nav: 'jobs', title: 'Job', view: renderJob },
  { re: new RegExp(`^/jobs/${UUID}/report$`), nav: 'jobs', title: 'Report', view: renderReport },
  { re: new RegExp(`^/tasks/${UUID}$`), nav: 'jobs', title: 'Task', view: renderTask },
  { re: /^\/webhooks$/, nav: 'webhooks', title: 'Webhooks', view: renderWebhooks },
];

const main = document.getElementById('main');
let cleanup = null;
let liveStarted = false;
let signedOutReason = '';

function parseHash() {
  const raw = window.location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  return { path, params: new URLSearchParams(query) };
}

function render() {
  if (cleanup) cleanup();
  cleanup = null;
  const current = session();
  document.getElementById('main-nav').hidden = !current;
  document.getElementById('session').hidden = !current;
  if (!current) {
    if (liveStarted) live.stop();
    liveStarted = false;
    document.title = 'Sign in · Switchyard';
    cleanup = renderSignIn(main, { reason: signedOutReason, onSignedIn: () => {
      signedOutReason = '';
      render();
    } });
    return;
  }
  if (!liveStarted) {
    liveStarted = true;
    live.start();
  }
  const who = document.getElementById('who');
  replace(who, h('span', { class: 'who-sub' }, current.claims.sub || 'unknown'), ' ', h('span', { class: `role role-${current.claims.role}` }, current.claims.role));

  const { path, params } = parseHash();
  const route = ROUTES.find((r) => r.re.test(path));
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (route && a.dataset.nav === route.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  main.replaceChildren();
  if (!route) {
    document.title = 'Not found · Switchyard';
    main.append(h('h1', null, 'Page not found'), h('p', null, 'There is no such page. ', h('a', { href: '#/' }, 'Go to the overview.')));
    return;
  }
  document.title = `${route.title} · Switchyard`;
  const match = route.re.exec(path);
  cleanup = route.view(main, { id: match[1], params }) || null;
}

function showConnection(detail) {
  const el = document.getElementById('conn');
  const labels = {
    idle: 'Not connected',
    connecting: 'Connecting…',
    open: 'Live',
    reconnecting: 'Reconnecting…',
    unavailable: 'No live stream on this hub',
    closed: 'Not connected',
  };
  el.dataset.state = detail.state;
  el.textContent = labels[detail.state] || detail.state;
  el.title = detail.retryAt ? `next attempt at ${fmtClock(new Date(detail.retryAt).toISOString())}` : '';
}

document.getElementById('sign-out').addEventListener('click', () => {
  signOut();
  signedOutReason = 'You signed out.';
  render();
});

window.addEventListener(UNAUTHORIZED, () => {
  if (!session()) return;
  signOut();
  signedOutReason = 'The hub no longer accepts your token (expired or revoked). Sign in again.';
  render();
});

window.addEventListener('hashchange', () => {
  render();
  // Move focus to the new page for keyboard and screen-reader users.
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: false });
  }
});
window.addEventListener('online', () => live.stream.nudge());
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') live.stream.nudge();
});
live.on('state', showConnection);

startRelativeTimes();
render();
