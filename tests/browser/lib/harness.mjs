// What every browser test needs: a real hub (the `switchyard` binary on a
// free port with a temp data dir and SQLite), tokens signed with the hub's
// secret, the SDK's example agents as real processes, and Debian's Chromium
// driven by playwright-core. Everything started here is stopped by
// `stopAll()` (and on process exit).

import { spawn } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
// `SWITCHYARD_BROWSER_PROFILE=release` runs the release build (measurements).
const PROFILE = process.env.SWITCHYARD_BROWSER_PROFILE || 'debug';
export const BIN = join(ROOT, `target/${PROFILE}/switchyard`);
export const EXAMPLES = join(ROOT, `target/${PROFILE}/examples`);
export const SCREENSHOTS = join(ROOT, 'target/browser-screenshots');
export const LOGS = join(ROOT, 'target/browser-logs');
export const SAMPLE_SPEC = join(ROOT, 'agent-sdk/tests/fixtures/sample-spec.md');
export const CHROMIUM = process.env.SWITCHYARD_CHROMIUM || '/usr/bin/chromium';

const JWT_SECRET = `browser-tests-${randomUUID()}-${randomUUID()}`;
const children = new Set();
const tempDirs = new Set();

mkdirSync(SCREENSHOTS, { recursive: true });
mkdirSync(LOGS, { recursive: true });

/** A port nobody listens on right now. */
export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

function base64url(data) {
  return Buffer.from(data).toString('base64url');
}

/** An HS256 token for the hub started here. */
export function token(role, sub, ttlSeconds = 3600) {
  const now = Math.floor(Date.now() / 1000);
  const header = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const claims = base64url(JSON.stringify({ sub, role, iat: now, exp: now + ttlSeconds, jti: randomUUID() }));
  const sig = createHmac('sha256', JWT_SECRET).update(`${header}.${claims}`).digest('base64url');
  return `${header}.${claims}.${sig}`;
}

/** The environment of a child: ours minus database settings (tests use
 * SQLite unless `extra` names a database), plus `extra`. */
function childEnv(extra) {
  const env = { ...process.env };
  delete env.DATABASE_URL;
  delete env.SWITCHYARD_DATABASE_URL;
  return { ...env, ...extra };
}

function track(name, child) {
  const log = createWriteStream(join(LOGS, `${name}.log`), { flags: 'a' });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

async function waitFor(what, check, timeoutMs) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

/**
 * Starts `switchyard serve`. Options: `port` (to restart on the same one),
 * `dataDir` (same), `env` (extra settings), `config` (switchyard.toml
 * text), `name` (log file).
 */
export async function startHub({ port, dataDir, env = {}, config, name = 'hub' } = {}) {
  const listenPort = port || (await freePort());
  const dir = dataDir || mkdtempSync(join(tmpdir(), 'switchyard-browser-'));
  tempDirs.add(dir);
  const args = ['serve', '--listen', `127.0.0.1:${listenPort}`, '--data-dir', dir];
  if (config) {
    const file = join(dir, 'switchyard.toml');
    writeFileSync(file, config);
    args.push('--config', file);
  }
  const child = track(
    name,
    spawn(BIN, args, {
      env: childEnv({
        SWITCHYARD_JWT_SECRET: JWT_SECRET,
        SWITCHYARD_LOG_FORMAT: 'pretty',
        SWITCHYARD_HEARTBEAT_INTERVAL: '500ms',
        SWITCHYARD_HEARTBEAT_MISSES: '2',
        SWITCHYARD_RECONNECT_GRACE: '1s',
        SWITCHYARD_RATE_LIMIT_PER_SECOND: '0',
        ...env,
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const url = `http://127.0.0.1:${listenPort}`;
  let exited = null;
  child.on('exit', (code) => {
    exited = code;
  });
  await waitFor('the hub to answer /health', async () => {
    if (exited !== null) throw new Error(`the hub exited with ${exited}; see target/browser-logs/${name}.log`);
    const res = await fetch(`${url}/health`);
    return res.ok;
  }, 30000);
  return {
    url,
    port: listenPort,
    dataDir: dir,
    child,
    /** Stops the hub (SIGKILL simulates a crash). */
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode) return;
      const gone = new Promise((ok) => child.once('exit', ok));
      child.kill(signal);
      await gone;
    },
    /** A REST call as `role`. */
    async api(path, { method = 'GET', json, role = 'admin' } = {}) {
      const headers = { Authorization: `Bearer ${token(role, `test-${role}`)}` };
      if (json !== undefined) headers['Content-Type'] = 'application/json';
      const res = await fetch(`${url}${path}`, { method, headers, body: json === undefined ? undefined : JSON.stringify(json) });
      const body = (res.headers.get('content-type') || '').includes('json') ? await res.json() : await res.text();
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(body)}`);
      return body;
    },
  };
}

/**
 * Creates a job over REST as an admin: multipart with a `document` (a file
 * path), JSON without. Resolves to the created job.
 */
export async function createJob(hub, { prompt, pipeline, priority, document } = {}) {
  const fields = { prompt: prompt || 'Extract the requirements' };
  if (pipeline) fields.pipeline = pipeline.split(',');
  if (priority !== undefined) fields.priority = priority;
  const headers = { Authorization: `Bearer ${token('admin', 'test-admin')}` };
  let body;
  if (document) {
    // Multipart, like the dashboard's form with a file.
    body = new FormData();
    for (const [k, v] of Object.entries(fields)) body.append(k, Array.isArray(v) ? v.join(',') : String(v));
    body.append('document', new Blob([readFileSync(document)], { type: 'text/markdown' }), document.split('/').pop());
  } else {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(fields);
  }
  const res = await fetch(`${hub.url}/v1/jobs`, { method: 'POST', headers, body });
  const job = await res.json();
  if (res.status !== 201) throw new Error(`POST /v1/jobs: ${res.status} ${JSON.stringify(job)}`);
  return job;
}

/** Waits until the job has `status` (checked over REST). */
export async function waitForJob(hub, id, status, timeoutMs = 60000) {
  await waitFor(`job ${id} to be ${status}`, async () => (await hub.api(`/v1/jobs/${id}`)).status === status, timeoutMs);
}

/** Starts an SDK example agent (`creator` or `validator`) as a process. */
export function startAgent(hub, kind, name) {
  const child = track(
    `agent-${name}`,
    spawn(join(EXAMPLES, kind), [], {
      env: childEnv({
        SWITCHYARD_URL: `ws://127.0.0.1:${hub.port}/v1/agents/connect`,
        SWITCHYARD_TOKEN: token('agent', name),
        SWITCHYARD_AGENT_NAME: name,
        RUST_LOG: 'info',
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  return {
    name,
    child,
    async stop(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode) return;
      const gone = new Promise((ok) => child.once('exit', ok));
      child.kill(signal);
      await gone;
    },
  };
}

/** Debian's Chromium, headless, with no network beyond what the page asks for. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/**
 * A new page at the hub. Collects console errors, page errors and failed
 * requests in `page.problems` so a test can assert there were none.
 */
export async function openPage(browser, hub, { width = 1280, height = 900, colorScheme = 'light' } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, colorScheme, reducedMotion: 'reduce' });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') page.problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => page.problems.push(`page error: ${err.message}`));
  await page.goto(`${hub.url}/`);
  return page;
}

/** Pastes `tokenText` into the sign-in form and waits for the navigation. */
export async function signIn(page, tokenText) {
  await page.getByLabel('Access token').fill(tokenText);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#main-nav').waitFor({ state: 'visible' });
}

/** A new page at the hub, signed in with `tokenText`, its live stream open. */
export async function signedInPage(browser, hub, tokenText) {
  const page = await openPage(browser, hub);
  await signIn(page, tokenText);
  await page.locator('#conn[data-state="open"]').waitFor({ timeout: 15000 });
  return page;
}

/** Saves a full-page screenshot as target/browser-screenshots/<name>.png. */
export async function screenshot(page, name) {
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

export async function stopAll() {
  for (const child of [...children]) {
    if (child.exitCode === null && !child.signalCode) {
      const gone = new Promise((ok) => child.once('exit', ok));
      child.kill('SIGKILL');
      await gone;
    }
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** The main navigation's link called `name`. */
export function nav(page, name) {
  return page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true });
}
