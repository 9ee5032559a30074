// The operator's day, in a real browser against a real hub and real agents:
// sign in, watch agents appear, run a job with a document to completion
// live, read its report, cancel a job nobody can run, and see an agent that
// stops go offline — all without reloading the page.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  launchBrowser, nav, openPage, SAMPLE_SPEC, screenshot, signIn, startAgent, startHub, stopAll, token,
} from '../lib/harness.mjs';

/** Console noise that is not a defect: failed fetches are shown in the page. */
const real = (problems) => problems.filter((p) => !p.includes('Failed to load resource'));

describe('dashboard as an admin', () => {
  let hub;
  let browser;
  let page;
  const agents = {};
  let jobId;
  let receiver;
  const received = [];

  before(async () => {
    hub = await startHub({ name: 'dashboard-hub', config: '[webhooks]\nallow_loopback = true\n' });
    // A webhook receiver on loopback that accepts everything.
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        received.push(JSON.parse(body).type);
        res.writeHead(204).end();
      });
    });
    await new Promise((ok) => receiver.listen(0, '127.0.0.1', ok));
    await hub.api('/v1/webhooks', {
      method: 'POST',
      json: {
        url: `http://127.0.0.1:${receiver.address().port}/hook`,
        event_types: ['job.completed', 'job.cancelled'],
        description: 'browser test receiver',
      },
    });
    browser = await launchBrowser();
    page = await openPage(browser, hub);
  });

  after(async () => {
    if (browser) await browser.close();
    if (receiver) receiver.close();
    await stopAll();
  });

  it('signs in with a pasted token and keeps it out of the URL', async () => {
    const admin = token('admin', 'alice');
    await signIn(page, admin);
    await page.evaluate(() => {
      window.__sameDocument = true;
    });
    assert.ok(!page.url().includes(admin), 'the token must never be in the URL');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('switchyard.token')), admin);
    assert.equal((await page.locator('#who').innerText()).replace(/\s+/g, ' ').trim(), 'alice admin');
    await page.locator('#conn[data-state="open"]').waitFor({ timeout: 15000 });
  });

  it('shows agents as they connect, live', async () => {
    await nav(page, 'Agents').click();
    await page.getByText('No agent has connected to this hub yet.').waitFor();
    agents.creator = startAgent(hub, 'creator', 'creator-1');
    agents.validator = startAgent(hub, 'validator', 'validator-1');
    for (const name of ['creator-1', 'validator-1']) {
      await page.locator(`#agents tr[data-agent-name="${name}"][data-state="connected"]`).waitFor({ timeout: 20000 });
    }
    const creatorRow = page.locator('#agents tr[data-agent-name="creator-1"]');
    assert.match(await creatorRow.innerText(), /requirements\.extract/);
    assert.match(await creatorRow.locator('.heartbeat').innerText(), /^\d+ s ago$/);
    assert.equal(await page.locator('#agents button[data-action="drain"]').count(), 2, 'admins get a drain button per connected agent');
    await screenshot(page, 'agents-1280-light');
    // The cluster: this hub is its only node, alive and leading.
    const node = page.locator('#nodes tbody tr[data-this="true"]');
    await node.waitFor({ timeout: 10000 });
    assert.equal(await page.locator('#nodes tbody tr').count(), 1);
    assert.equal(await node.getAttribute('data-state'), 'alive');
    assert.equal(await node.getAttribute('data-leader'), 'true');
    assert.match(await node.innerText(), /this node/);
    assert.match(await page.locator('#nodes-summary').innerText(), /One hub node/);
  });

  it('creates a job with a document through the form and sees it complete live', async () => {
    await nav(page, 'Jobs').click();
    await page.locator('#new-job-panel summary').click();
    await page.getByLabel('Prompt').fill('Extract the requirements of the sample specification');
    await page.getByLabel('Priority').fill('7');
    await page.getByLabel('Document').setInputFiles(SAMPLE_SPEC);
    await page.getByRole('button', { name: 'Create job' }).click();
    await page.waitForURL(/#\/jobs\/[0-9a-f-]{36}$/);
    jobId = page.url().split('/').pop();

    await page.locator('#job-status [data-status="completed"]').waitFor({ timeout: 60000 });
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page must not have reloaded');
    await page.locator('#items-count', { hasText: '15 of 15 items' }).waitFor({ timeout: 10000 });
    // The table converges on the stored state (the job can finish before the
    // page has read every item; it reads the list again when the job ends).
    await page.waitForFunction(
      () => document.querySelectorAll('#items tbody tr[data-status="integrated"]').length === 12,
      null,
      { timeout: 10000 },
    );
    assert.equal(await page.locator('#items tbody tr[data-status="integrated"]').count(), 12);
    assert.equal(await page.locator('#items tbody tr[data-status="rejected"]').count(), 3);
    assert.match(await page.locator('.items-line').innerText(), /Items: 15 — 12 integrated, 3 rejected, 0 failed/);
    assert.match(await page.locator('#stages li[data-stage="1"] .stage-head').innerText(), /15\/15 tasks/);
    assert.ok(await page.locator('#events li[data-type="job.completed"]').count() === 1, 'the timeline shows job.completed');
    assert.equal(await page.locator('.summary button.link').innerText(), 'sample-spec.md');

    // The item filters work in the page.
    await page.locator('#item-status').selectOption('rejected');
    await page.locator('#items-count', { hasText: '3 of 15 items' }).waitFor();
    await page.locator('#item-status').selectOption('');
    await page.locator('#item-search').fill('zzz-no-such-text');
    await page.locator('#items-count', { hasText: '0 of 15 items' }).waitFor();
    await page.locator('#item-search').fill('');
    await page.locator('#items-count', { hasText: '15 of 15 items' }).waitFor();
    await screenshot(page, 'job-completed-1280-light');
  });

  it('shows the overview with the live charts and queues', async () => {
    await nav(page, 'Overview').click();
    await page.locator('#stat-online .stat-value', { hasText: '2' }).waitFor({ timeout: 10000 });
    // The chart leaves out the second still filling, and the job may have
    // finished within it: the peak shows at the next redraw (every second).
    await page
      .waitForFunction(() => !/^peak 0 /.test(document.querySelector('.chart-foot')?.innerText ?? ''), null, { timeout: 5000 })
      .catch(() => {});
    const peak = await page.locator('.chart-foot').first().innerText();
    assert.doesNotMatch(peak, /^peak 0 /, `tasks finished per second should have a peak: ${peak}`);
    await page.locator('#queues tr[data-capability="requirements.validate"]').waitFor();
    await screenshot(page, 'overview-1280-light');
  });

  it('opens the job report', async () => {
    await page.evaluate((id) => {
      window.location.hash = `#/jobs/${id}`;
    }, jobId);
    await page.locator('#job-status [data-status="completed"]').waitFor();
    await page.locator('#report-link').click();
    await page.waitForURL(/\/report$/);
    const report = page.locator('#report[aria-busy="false"]');
    await report.waitFor({ timeout: 15000 });
    const text = await report.innerText();
    assert.match(text, /integrated/i);
    assert.match(text, /12/);
    assert.match(text, /rejected/i);
    await screenshot(page, 'report-1280-light');
    await page.getByLabel('Format').selectOption('json');
    await page.locator('#report[aria-busy="false"] pre.json').waitFor({ timeout: 15000 });
    const data = JSON.parse(await page.locator('#report pre.json').innerText());
    assert.equal(JSON.stringify(data).includes(jobId), true, 'the JSON report is about this job');
  });

  it('cancels a job that no agent can run', async () => {
    await nav(page, 'Jobs').click();
    await page.locator('#new-job-panel summary').click();
    await page.getByLabel('Prompt').fill('Nobody can do this');
    await page.getByLabel('Pipeline').fill('nobody.home');
    // A bad field is refused by the hub and shown next to that field.
    await page.getByLabel('Priority').fill('12');
    await page.getByRole('button', { name: 'Create job' }).click();
    await page.locator('#job-priority-error', { hasText: 'out of range' }).waitFor();
    assert.equal(await page.getByLabel('Priority').getAttribute('aria-invalid'), 'true');
    await page.getByLabel('Priority').fill('5');
    await page.getByRole('button', { name: 'Create job' }).click();
    await page.waitForURL(/#\/jobs\/[0-9a-f-]{36}$/);
    await page.locator('#job-status [data-status="queued"]').waitFor();
    await page.locator('button[data-action="cancel"]').click();
    await page.getByRole('dialog').getByRole('button', { name: 'Yes, cancel the job' }).click();
    await page.locator('#job-status [data-status="cancelled"]').waitFor({ timeout: 10000 });
    await page.locator('#events li[data-type="job.cancelled"]').waitFor();
    assert.equal(await page.locator('button[data-action="cancel"]').count(), 0, 'a cancelled job has no cancel button');
    await screenshot(page, 'job-cancelled-1280-light');

    // The list shows both jobs with their final states.
    await nav(page, 'Jobs').click();
    await page.locator('#jobs tbody tr[data-status="cancelled"]').waitFor();
    await page.locator(`#jobs tbody tr[data-job-id="${jobId}"][data-status="completed"]`).waitFor();
    await page.locator('#status-filter').selectOption('cancelled');
    await page.waitForURL(/status=cancelled$/);
    // The filtered list replaces the full one once it is read.
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#jobs tbody tr')];
      return rows.length > 0 && rows.every((r) => r.dataset.status === 'cancelled');
    }, null, { timeout: 10000 });
    assert.equal(await page.locator('#jobs tbody tr').count(), 1);
    await screenshot(page, 'jobs-1280-light');
  });

  it('shows webhook deliveries with their answers, and replays them', async () => {
    await nav(page, 'Webhooks').click();
    const row = page.locator('#webhooks tbody tr');
    await row.first().waitFor();
    assert.equal(await row.count(), 1);
    assert.match(await row.innerText(), /browser test receiver/);
    await row.getByRole('button', { name: /Deliveries/ }).click();
    // Both deliveries arrive; the page re-reads them as events come in, or on Refresh.
    const delivered = page.locator('#deliveries tr[data-status="delivered"]');
    for (let i = 0; i < 50 && (await delivered.count()) < 2; i += 1) {
      await sleep(200);
      if (i % 5 === 4) await page.getByRole('button', { name: 'Refresh' }).click();
    }
    assert.equal(await delivered.count(), 2);
    assert.deepEqual(await page.locator('#deliveries .delivery-code').allInnerTexts(), ['204', '204']);
    assert.deepEqual([...received].sort(), ['job.cancelled', 'job.completed']);
    await screenshot(page, 'webhooks-1280-light');

    await page.getByLabel('Send again the events after sequence').fill('0');
    await page.locator('button[data-action="replay"]').click();
    await page.getByText(/Replay queued: 2 deliveries/).waitFor();
    const replayed = page.locator('#deliveries tr[data-generation="1"][data-status="delivered"]');
    for (let i = 0; i < 50 && (await replayed.count()) < 2; i += 1) {
      await sleep(200);
      if (i % 5 === 4) await page.getByRole('button', { name: 'Refresh' }).click();
    }
    assert.equal(await replayed.count(), 2);
    assert.equal(received.length, 4);
  });

  it('sees an agent go offline live when its process stops', async () => {
    await nav(page, 'Agents').click();
    await page.locator('#agents tr[data-agent-name="validator-1"][data-state="connected"]').waitFor();
    await agents.validator.stop('SIGKILL');
    await page.locator('#agents tr[data-agent-name="validator-1"][data-state="offline"]').waitFor({ timeout: 20000 });
    await page.locator('#agents tr[data-agent-name="creator-1"][data-state="connected"]').waitFor();
    assert.equal(await page.locator('#agents tr[data-agent-name="validator-1"] button[data-action="drain"]').count(), 0);
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page must not have reloaded');
    await screenshot(page, 'agent-offline-1280-light');

    // An admin drains the remaining agent; its row follows live.
    await page.getByRole('button', { name: 'Drain creator-1' }).click();
    await page.locator('#agents tr[data-agent-name="creator-1"][data-state="draining"]').waitFor({ timeout: 10000 });
    assert.equal(await page.locator('#agents button[data-action="drain"]').count(), 0);
    assert.deepEqual(real(page.problems), []);
  });
});
