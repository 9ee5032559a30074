// The views operators look for, each against a real hub and real agents:
// the overview's job counts, its warning for work no agent can do and its
// 24-hour throughput; a task's attempts; webhooks created (secret shown
// once), paused, resumed and deleted; jobs filtered by label, status, text
// and date, kept in the address; and one date format with the time zone.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, it } from 'node:test';

import {
  createJob, launchBrowser, nav, SAMPLE_SPEC, screenshot, signedInPage, signIn, startAgent, startHub, stopAll, token, waitForJob,
} from '../lib/harness.mjs';

const real = (problems) => problems.filter((p) => !p.includes('Failed to load resource'));

describe('views operators look for', () => {
  let hub;
  let browser;
  let page;
  let doneJob;
  let receiver;

  before(async () => {
    hub = await startHub({ name: 'views-hub', config: '[webhooks]\nallow_loopback = true\n' });
    receiver = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(204).end());
    });
    await new Promise((ok) => receiver.listen(0, '127.0.0.1', ok));
    startAgent(hub, 'creator', 'creator-1');
    startAgent(hub, 'validator', 'validator-1');
    doneJob = await createJob(hub, { prompt: 'Extract the GDPR requirements', document: SAMPLE_SPEC });
    await waitForJob(hub, doneJob.id, 'completed');
    browser = await launchBrowser();
    page = await signedInPage(browser, hub, token('admin', 'alice'));
  });

  after(async () => {
    if (browser) await browser.close();
    if (receiver) receiver.close();
    await stopAll();
  });

  it('counts jobs from the store and warns about work no agent can do', async () => {
    // Queued for a capability nobody offers; a job waiting on it fails when it is cancelled.
    const stuck = await hub.api('/v1/jobs', { method: 'POST', json: { prompt: 'Nobody home', pipeline: ['nobody.home'] } });
    const dependent = await hub.api('/v1/jobs', { method: 'POST', json: { prompt: 'Waits', pipeline: ['nobody.home'], depends_on: [stuck.id] } });
    await nav(page, 'Overview').click();
    const warning = page.locator('#capability-warnings li[data-capability="nobody.home"]');
    await warning.waitFor({ timeout: 10000 });
    assert.match(await warning.innerText(), /1 task waiting/);
    await page.locator('#stat-jobs-queued .stat-value', { hasText: /^2$/ }).waitFor({ timeout: 10000 });
    await screenshot(page, 'overview-warning');
    await hub.api(`/v1/jobs/${stuck.id}`, { method: 'DELETE' });
    await waitForJob(hub, dependent.id, 'failed');
    const counts = await hub.api('/v1/jobs/counts');
    assert.equal(counts.by_status.failed, 1);
    await page.locator('#stat-jobs-failed .stat-value', { hasText: /^1$/ }).waitFor({ timeout: 10000 });
    await page.locator('#stat-jobs-queued .stat-value', { hasText: /^0$/ }).waitFor({ timeout: 10000 });
    // Cancelled work leaves the queue: the warning goes by itself.
    await warning.waitFor({ state: 'detached', timeout: 10000 });
    // The reference job's tasks are in the 24-hour history.
    const history = page.locator('#throughput-history');
    await history.waitFor();
    const finished = (await hub.api('/v1/throughput?resolution=minute')).buckets.reduce((n, b) => n + b.tasks_succeeded, 0);
    const { tasks } = await hub.api(`/v1/jobs/${doneJob.id}/progress`);
    assert.ok(tasks.succeeded > 1);
    assert.equal(finished, tasks.succeeded);
    assert.match(await history.locator('.chart-foot').innerText(), /^peak \d+ \/min · last 24 h/);
    assert.doesNotMatch(await history.locator('.chart-foot').innerText(), /^peak 0 /);
  });

  it('shows a task with its attempts, linked from the job\'s events', async () => {
    await page.evaluate((id) => {
      window.location.hash = `#/jobs/${id}`;
    }, doneJob.id);
    const link = page.locator('#events li[data-type="task.succeeded"] a[href^="#/tasks/"]').first();
    await link.waitFor({ timeout: 10000 });
    const href = await link.getAttribute('href');
    await link.click();
    await page.waitForURL(new RegExp(`${href}$`));
    const attempt = page.locator('#attempts tr[data-attempt="1"][data-outcome="succeeded"]');
    await attempt.waitFor({ timeout: 10000 });
    const text = await attempt.innerText();
    assert.match(text, /validator-1|creator-1/, 'the agent is named');
    assert.match(text, /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d /, 'times are shown');
    assert.equal(await page.locator('#attempts tbody tr').count(), 1);
    await page.locator('.summary a[href^="#/jobs/"]').waitFor();
    await screenshot(page, 'task-attempts');
    // A task that is waiting follows its own events: cancelled live.
    const waiting = await hub.api('/v1/jobs', { method: 'POST', json: { prompt: 'Nobody', pipeline: ['nobody.home'] } });
    const { events } = await hub.api(`/v1/jobs/${waiting.id}/history`);
    const taskId = events.find((e) => e.type === 'task.created').payload.task_id;
    await page.evaluate((id) => {
      window.location.hash = `#/tasks/${id}`;
    }, taskId);
    await page.locator('#task-status-head [data-status="pending"]').waitFor();
    await page.getByText('Not handed to an agent yet.').waitFor();
    await hub.api(`/v1/jobs/${waiting.id}`, { method: 'DELETE' });
    await page.locator('#task-status-head [data-status="cancelled"]').waitFor({ timeout: 5000 });
    // An unknown task says so.
    await page.evaluate(() => {
      window.location.hash = '#/tasks/0190b8e2-7c4d-7a3e-9f00-1234567890ab';
    });
    await page.getByText('There is no task 0190b8e2-7c4d-7a3e-9f00-1234567890ab.').waitFor();
  });

  it('creates, pauses, resumes and deletes a webhook, showing its secret once', async () => {
    await nav(page, 'Webhooks').click();
    await page.locator('#new-webhook-panel summary').click();
    // A bad URL is refused by the hub, with its reason.
    await page.getByLabel('Target URL').fill('not a url');
    await page.getByRole('button', { name: 'Create subscription' }).click();
    await page.locator('#webhook-form-error', { hasText: /url/i }).waitFor();
    const url = `http://127.0.0.1:${receiver.address().port}/hook`;
    await page.getByLabel('Target URL').fill(url);
    await page.getByLabel('Event types (comma-separated)').fill('job.completed, job.failed');
    await page.getByLabel('Description').fill('from the page');
    await page.getByRole('button', { name: 'Create subscription' }).click();
    const secret = await page.locator('#webhook-secret-value').innerText();
    assert.match(secret, /^whsec_/, secret);
    const row = page.locator('#webhooks tbody tr', { hasText: 'from the page' });
    await row.waitFor();
    assert.equal(await row.getAttribute('data-enabled'), 'true');
    const [stored] = (await hub.api('/v1/webhooks')).webhooks;
    assert.deepEqual(stored.event_types, ['job.completed', 'job.failed']);
    assert.equal(stored.secret ?? null, null, 'the list never shows the secret');
    assert.equal((await page.content()).split(secret).length, 2, 'the secret is on the page once');

    await row.locator('button[data-action="pause"]').click();
    await page.locator('#webhooks tbody tr[data-enabled="false"]').waitFor();
    assert.equal((await hub.api(`/v1/webhooks/${stored.id}`)).enabled, false);
    await page.locator('#webhooks tbody tr button[data-action="resume"]').click();
    await page.locator('#webhooks tbody tr[data-enabled="true"]').waitFor();

    // Gone after leaving the page: it was shown once.
    await nav(page, 'Jobs').click();
    await nav(page, 'Webhooks').click();
    await page.locator('#webhooks tbody tr').first().waitFor();
    assert.equal(await page.locator('#webhook-secret').count(), 0);
    assert.ok(!(await page.content()).includes(secret));

    await page.locator('#webhooks tbody tr button[data-action="delete"]').click();
    await page.getByRole('dialog').getByRole('button', { name: 'Yes, delete it' }).click();
    await page.getByText(/No webhook subscriptions yet/).waitFor();
    assert.equal((await hub.api('/v1/webhooks')).webhooks.length, 0);
  });

  it('filters jobs by label, status, text and date, and keeps the filters in the address', async () => {
    const labelled = await hub.api('/v1/jobs', { method: 'POST', json: { prompt: 'Audit the invoices', pipeline: ['nobody.home'], labels: ['finance'] } });
    await hub.api('/v1/jobs', { method: 'POST', json: { prompt: 'Audit the contracts', pipeline: ['nobody.home'], labels: ['legal'] } });
    await nav(page, 'Jobs').click();
    const rows = () => page.locator('#jobs tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.jobId));
    await page.locator('#jobs-label').fill('finance');
    await page.locator('#jobs-filters button[type="submit"]').click();
    await page.waitForURL(/label=finance/);
    await page.waitForFunction((id) => {
      const trs = [...document.querySelectorAll('#jobs tbody tr')];
      return trs.length === 1 && trs[0].dataset.jobId === id;
    }, labelled.id);

    // Text, ASCII letters in any case, with a status.
    await page.evaluate(() => {
      window.location.hash = '#/jobs?q=AUDIT&status=queued';
    });
    await page.waitForFunction(() => document.querySelectorAll('#jobs tbody tr').length === 2);
    assert.equal(await page.locator('#jobs-q').inputValue(), 'AUDIT', 'the form shows the filters from the address');
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll('#jobs tbody tr').length === 2);
    assert.ok((await rows()).every(Boolean));

    // Dates: nothing was created after tomorrow; everything after yesterday.
    const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
    await page.evaluate((v) => {
      window.location.hash = `#/jobs?after=${v}`;
    }, local(new Date(Date.now() + 86400000)));
    await page.getByText('No job matches these filters.').waitFor();
    await page.evaluate((v) => {
      window.location.hash = `#/jobs?after=${v}`;
    }, local(new Date(Date.now() - 86400000)));
    const all = (await hub.api('/v1/jobs?limit=500')).jobs.length;
    await page.waitForFunction((n) => document.querySelectorAll('#jobs tbody tr').length === n, all);
    await page.locator('#jobs-clear').click();
    await page.waitForURL(/#\/jobs$/);
    assert.deepEqual(real(page.problems), []);
  });

  it('writes every date one way, with the time zone', async () => {
    const context = await browser.newContext({ timezoneId: 'Europe/Berlin', locale: 'en-US' });
    const berlin = await context.newPage();
    try {
      await berlin.goto(`${hub.url}/`);
      await signIn(berlin, token('viewer', 'vera'));
      await berlin.evaluate((id) => {
        window.location.hash = `#/jobs/${id}`;
      }, doneJob.id);
      const created = berlin.locator('.summary dt:text-is("Created") + dd');
      await created.waitFor();
      const at = new Date(doneJob.created_at);
      const wall = new Intl.DateTimeFormat('sv-SE', {
        timeZone: 'Europe/Berlin', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
      }).format(at);
      const zone = new Intl.DateTimeFormat('en-US', { timeZone: 'Europe/Berlin', timeZoneName: 'short' })
        .formatToParts(at).find((p) => p.type === 'timeZoneName').value;
      assert.equal((await created.innerText()).split(' by ')[0].trim(), `${wall} ${zone}`);
    } finally {
      await context.close();
    }
  });
});
