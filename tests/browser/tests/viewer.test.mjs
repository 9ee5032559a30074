// A viewer sees everything and can change nothing: no action button on any
// page. (The hub enforces the roles anyway; the last test proves that too.)

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  createJob, launchBrowser, nav, openPage, SAMPLE_SPEC, screenshot, signIn, startAgent, startHub, stopAll, token,
  waitForJob,
} from '../lib/harness.mjs';

describe('dashboard as a viewer', () => {
  let hub;
  let browser;
  let page;
  let done;
  let queued;

  before(async () => {
    hub = await startHub({ name: 'viewer-hub' });
    startAgent(hub, 'creator', 'creator-1');
    startAgent(hub, 'validator', 'validator-1');
    done = await createJob(hub, { prompt: 'Extract the requirements', document: SAMPLE_SPEC });
    queued = await createJob(hub, { prompt: 'Nobody can do this', pipeline: 'nobody.home' });
    await waitForJob(hub, done.id, 'completed');
    browser = await launchBrowser();
    page = await openPage(browser, hub);
    await signIn(page, token('viewer', 'victor'));
  });

  after(async () => {
    if (browser) await browser.close();
    await stopAll();
  });

  async function noActions(where) {
    assert.equal(await page.locator('button[data-action]').count(), 0, `${where}: no action buttons`);
    assert.equal(await page.locator('button.danger').count(), 0, `${where}: no destructive buttons`);
    assert.equal(await page.locator('#new-job-panel, #new-job').count(), 0, `${where}: no new-job form`);
  }

  it('shows the role it read from the token', async () => {
    assert.equal((await page.locator('#who').innerText()).replace(/\s+/g, ' ').trim(), 'victor viewer');
  });

  it('finds no action buttons on any page', async () => {
    await nav(page, 'Agents').click();
    await page.locator('#agents tr[data-agent-name="validator-1"][data-state="connected"]').waitFor({ timeout: 20000 });
    await noActions('agents');

    await nav(page, 'Jobs').click();
    await page.locator(`#jobs tr[data-job-id="${done.id}"]`).waitFor();
    await noActions('jobs');
    await screenshot(page, 'viewer-jobs-1280-light');

    await page.locator(`#jobs tr[data-job-id="${queued.id}"] a`).click();
    await page.locator('#job-status [data-status="queued"]').waitFor();
    await page.locator('#events li[data-type="job.created"]').waitFor();
    await noActions('queued job');
    await screenshot(page, 'viewer-job-queued-1280-light');

    await nav(page, 'Jobs').click();
    await page.locator(`#jobs tr[data-job-id="${done.id}"] a`).click();
    await page.locator('#job-status [data-status="completed"]').waitFor();
    await page.locator('#items-count', { hasText: '15 of 15 items' }).waitFor();
    await noActions('completed job');

    await nav(page, 'Webhooks').click();
    await page.locator('h1', { hasText: 'Webhooks' }).waitFor();
    await page.locator('#main .notice, #main table, #main .muted, #main .form-error').first().waitFor();
    await noActions('webhooks');

    await nav(page, 'Overview').click();
    await page.locator('#stat-online').waitFor();
    await noActions('overview');
  });

  it('is refused by the hub when it tries anyway', async () => {
    const status = await page.evaluate(async (id) => {
      const res = await fetch(`/v1/jobs/${id}`, {
        method: 'DELETE',
        headers: { Authorization: `Bearer ${sessionStorage.getItem('switchyard.token')}` },
      });
      return res.status;
    }, queued.id);
    assert.equal(status, 403);
    assert.equal((await hub.api(`/v1/jobs/${queued.id}`)).status, 'queued');
  });
});
