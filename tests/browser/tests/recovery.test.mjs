// The page recovers by itself when the hub restarts: it shows that it lost
// the stream, reconnects with backoff once the hub is back, resumes from the
// last event it saw, and carries on showing live changes. No reload.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createJob, launchBrowser, nav, openPage, screenshot, signIn, startHub, stopAll, token } from '../lib/harness.mjs';

describe('hub restart', () => {
  let hub;
  let browser;
  let page;

  before(async () => {
    hub = await startHub({ name: 'recovery-hub' });
    browser = await launchBrowser();
    page = await openPage(browser, hub);
    await signIn(page, token('operator', 'olga'));
    await page.evaluate(() => {
      window.__sameDocument = true;
    });
  });

  after(async () => {
    if (browser) await browser.close();
    await stopAll();
  });

  it('reconnects and resumes the job timeline after the hub comes back', async () => {
    const job = await createJob(hub, { prompt: 'Wait for an agent that never comes', pipeline: 'nobody.home' });
    await page.evaluate((id) => {
      window.location.hash = `#/jobs/${id}`;
    }, job.id);
    await page.locator('#events li[data-type="job.created"]').waitFor();
    await page.locator('#conn[data-state="open"]').waitFor({ timeout: 15000 });

    await hub.stop('SIGKILL');
    await page.locator('#conn[data-state="reconnecting"]').waitFor({ timeout: 15000 });
    await screenshot(page, 'recovery-reconnecting-1280-light');

    hub = await startHub({ port: hub.port, dataDir: hub.dataDir, name: 'recovery-hub-2' });
    await page.locator('#conn[data-state="open"]').waitFor({ timeout: 30000 });

    // A change made after the restart arrives live, exactly once.
    await hub.api(`/v1/jobs/${job.id}`, { method: 'DELETE' });
    await page.locator('#job-status [data-status="cancelled"]').waitFor({ timeout: 15000 });
    await page.locator('#events li[data-type="job.cancelled"]').waitFor();
    assert.equal(await page.locator('#events li[data-type="job.created"]').count(), 1, 'no event shown twice');
    assert.equal(await page.locator('#events li[data-type="job.cancelled"]').count(), 1, 'no event shown twice');
    const seqs = await page.locator('#events li').evaluateAll((lis) => lis.map((li) => Number(li.dataset.seq)));
    assert.deepEqual(seqs, [...seqs].sort((a, b) => b - a), 'newest first, in sequence order');
    assert.equal(new Set(seqs).size, seqs.length);

    // And the jobs list picks up new jobs live too.
    await nav(page, 'Jobs').click();
    await page.locator(`#jobs tr[data-job-id="${job.id}"]`).waitFor();
    const second = await createJob(hub, { prompt: 'Created after the restart', pipeline: 'nobody.home' });
    await page.locator(`#jobs tr[data-job-id="${second.id}"][data-status="queued"]`).waitFor({ timeout: 15000 });
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page must not have reloaded');
    await screenshot(page, 'recovery-after-restart-1280-light');
  });
});
