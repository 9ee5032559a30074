// The dashboard at real size: a generated document of 20,500 requirements
// through the reference Creator and Validator agents, watched in Chromium.
//
// While the job runs, the page's counts never exceed what the store holds
// (each page sample is followed by a REST read that must be at least as
// far). The hub runs with a tiny event bus (`event_bus_capacity` 16), so the
// burst of 41,000 events when the Creator's items land makes it close the
// page's stream as lagged; the page must recover by itself. Within 2 s of
// the job's completion, the page's stage counts, item counts and table
// totals equal the REST API's. Then the item pages, the events pages, a
// second job's page in the same tab, and the measurements the issue asks for
// (job page load time, report build time) are written to
// target/browser-logs/scale-measurements.json.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  createJob, launchBrowser, LOGS, screenshot, signedInPage, startAgent, startHub, stopAll, token, waitForJob,
} from '../lib/harness.mjs';

const REQUIREMENTS = 20500;

/** A document with `n` distinct requirement sentences, one per line. */
function generatedDocument(n) {
  const lines = ['# Generated compliance specification', ''];
  for (let i = 1; i <= n; i += 1) {
    lines.push(`R-${i}: The system must keep audit record ${i} for at least ${(i % 90) + 1} days.`);
  }
  const path = join(tmpdir(), `switchyard-scale-${process.pid}.md`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/** What the page shows, read from its data attributes. */
function pageCounts(page) {
  return page.evaluate(() => {
    const stages = [...document.querySelectorAll('#stages li')].map((li) => ({
      total: Number(li.dataset.total),
      done: Number(li.dataset.done),
    }));
    const line = document.querySelector('.items-line');
    const integrated = line ? Number((line.innerText.match(/([\d,]+) integrated/) || [0, '0'])[1].replace(/,/g, '')) : 0;
    return { stages, items: line ? Number(line.dataset.total) : 0, integrated, count: document.querySelector('#items-count')?.innerText || '' };
  });
}

function storeCounts(progress) {
  return {
    stages: progress.stages.map((s) => ({ total: s.tasks.total, done: s.tasks.succeeded + s.tasks.failed + s.tasks.cancelled })),
    items: progress.items.total,
    integrated: progress.items.integrated,
  };
}

async function laggedClosures(hub) {
  const res = await fetch(`${hub.url}/metrics`);
  const text = await res.text();
  const line = text.split('\n').find((l) => l.startsWith('switchyard_stream_lagged_total') && l.includes('kind="websocket"'));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('a 20,000-item job', () => {
  let hub;
  let browser;
  let page;
  let jobId;
  const measured = {};

  before(async () => {
    // SWITCHYARD_SCALE_DATABASE_URL (an empty Postgres database) measures on Postgres.
    const database = process.env.SWITCHYARD_SCALE_DATABASE_URL;
    hub = await startHub({
      name: 'scale-hub',
      env: {
        SWITCHYARD_EVENT_BUS_CAPACITY: '16',
        // Two cores run Chromium, the hub and three agents flat out: give
        // heartbeats room (the harness default is 2 misses of 500 ms).
        SWITCHYARD_HEARTBEAT_INTERVAL: '1s',
        SWITCHYARD_HEARTBEAT_MISSES: '5',
        ...(database ? { SWITCHYARD_DATABASE_URL: database } : {}),
      },
    });
    startAgent(hub, 'creator', 'creator-1');
    startAgent(hub, 'validator', 'validator-1');
    startAgent(hub, 'validator', 'validator-2');
    browser = await launchBrowser();
    page = await signedInPage(browser, hub, token('admin', 'alice'));
  });

  after(async () => {
    if (browser) await browser.close();
    writeFileSync(join(LOGS, 'scale-measurements.json'), `${JSON.stringify(measured, null, 2)}\n`);
    await stopAll();
  });

  it('never shows more than the store holds while it runs, and recovers from a lagged stream', async () => {
    const doc = generatedDocument(REQUIREMENTS);
    const job = await createJob(hub, { prompt: 'Extract and validate every requirement', document: doc });
    jobId = job.id;
    await page.evaluate((id) => {
      window.location.hash = `#/jobs/${id}`;
    }, jobId);
    await page.locator('#stages li[data-stage="0"]').waitFor();

    let samples = 0;
    let sawTwoStages = false;
    for (;;) {
      const shown = await pageCounts(page);
      const progress = await hub.api(`/v1/jobs/${jobId}/progress`);
      const stored = storeCounts(progress);
      shown.stages.forEach((s, i) => {
        assert.ok(s.total <= stored.stages[i].total, `stage ${i}: page shows ${s.total} tasks, the store holds ${stored.stages[i].total}`);
        assert.ok(s.done <= stored.stages[i].done, `stage ${i}: page shows ${s.done} finished, the store ${stored.stages[i].done}`);
      });
      assert.ok(shown.items <= stored.items, `page shows ${shown.items} items, the store holds ${stored.items}`);
      assert.ok(shown.integrated <= stored.integrated, `page shows ${shown.integrated} integrated, the store ${stored.integrated}`);
      samples += 1;
      if (shown.stages[1] && shown.stages[1].total > 0) sawTwoStages = true;
      if (progress.status === 'completed' || progress.status === 'failed') break;
      await sleep(250);
    }
    const done = await hub.api(`/v1/jobs/${jobId}/progress`);
    assert.equal(done.status, 'completed');
    assert.ok(done.items.total >= 20000, `the job has ${done.items.total} items`);
    measured.items = done.items.total;
    measured.samples_while_running = samples;
    assert.ok(sawTwoStages, 'the page showed the validation stage while it ran');

    // Within 2 s of completion the page equals the store.
    const completedAt = Date.now();
    const want = storeCounts(done);
    await page.waitForFunction(
      (w) => {
        const stages = [...document.querySelectorAll('#stages li')].map((li) => [Number(li.dataset.total), Number(li.dataset.done)]);
        const line = document.querySelector('.items-line');
        const count = document.querySelector('#items-count')?.innerText || '';
        const status = document.querySelector('#job-status [data-status]')?.dataset.status;
        return status === 'completed'
          && JSON.stringify(stages) === JSON.stringify(w.stages.map((s) => [s.total, s.done]))
          && line && Number(line.dataset.total) === w.items
          && line.innerText.includes(`${w.integrated.toLocaleString()} integrated`)
          && count.startsWith(`${w.items.toLocaleString()} of ${w.items.toLocaleString()} items`);
      },
      want,
      { timeout: 2000 },
    );
    measured.converged_ms_after_rest_saw_completion = Date.now() - completedAt;

    // The hub closed the stream as lagged, and the page followed on by itself.
    const lagged = await laggedClosures(hub);
    measured.lagged_closures = lagged;
    assert.ok(lagged > 0, 'the tiny event bus made the hub close the stream as lagged');
    await page.locator('#conn[data-state="open"]').waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#eta').count(), 0, 'a finished job has no ETA');
    // The newest events are shown first, ending with the job's completion.
    const newest = await hub.api(`/v1/jobs/${jobId}/history?limit=1`);
    await page.waitForFunction(
      (seq) => Number(document.querySelector('#events li')?.dataset.seq) === seq,
      newest.events[0].seq,
      { timeout: 5000 },
    );
    assert.equal(await page.locator('#events li[data-type="job.completed"]').count(), 1);
    await screenshot(page, 'scale-job-completed');
  });

  it('pages items and events on the server, never loading the whole job', async () => {
    assert.ok((await page.locator('#items tbody tr').count()) <= 100, 'one page of items');
    const firstId = await page.locator('#items tbody tr').first().getAttribute('data-item-id');
    await page.locator('#items-next').click();
    await page.waitForFunction((id) => document.querySelector('#items tbody tr')?.dataset.itemId !== id, firstId);
    assert.match(await page.locator('#items-count').innerText(), /showing 101–200/);
    await page.locator('#items-prev').click();
    await page.waitForFunction((id) => document.querySelector('#items tbody tr')?.dataset.itemId === id, firstId);

    const progress = await hub.api(`/v1/jobs/${jobId}/progress`);
    await page.locator('#item-status').selectOption('rejected');
    const rejected = progress.items.rejected;
    await page.locator('#items-count', { hasText: `${rejected.toLocaleString()} of ${progress.items.total.toLocaleString()} items` }).waitFor();
    if (rejected > 0) {
      assert.ok(await page.locator('#items tbody tr[data-status="rejected"]').count() > 0);
      assert.equal(await page.locator('#items tbody tr:not([data-status="rejected"])').count(), 0);
    }
    await page.locator('#item-status').selectOption('');
    // A text search runs on the server: R-20500 is one item.
    await page.locator('#item-search').fill('R-20500:');
    await page.locator('#items-count', { hasText: /^1 of / }).waitFor();
    assert.equal(await page.locator('#items tbody tr').count(), 1);
    await page.locator('#item-search').fill('');

    const before = await page.locator('#events li').count();
    await page.locator('#events-older').click();
    await page.waitForFunction((n) => document.querySelectorAll('#events li').length > n, before);
    const seqs = await page.locator('#events li').evaluateAll((lis) => lis.map((li) => Number(li.dataset.seq)));
    assert.deepEqual(seqs, [...seqs].sort((a, b) => b - a), 'newest first, older pages below');
    assert.equal(new Set(seqs).size, seqs.length, 'no event twice');
  });

  it('shows another job correctly in the same tab after the lag', async () => {
    const small = await createJob(hub, { prompt: 'A small one', document: generatedDocument(3) });
    await waitForJob(hub, small.id, 'completed');
    await page.evaluate((id) => {
      window.location.hash = `#/jobs/${id}`;
    }, small.id);
    await page.locator('#job-status [data-status="completed"]').waitFor({ timeout: 5000 });
    await page.locator('#stages li[data-stage="1"][data-total="3"][data-done="3"]').waitFor({ timeout: 5000 });
    await page.locator('#events li[data-type="job.completed"]').waitFor({ timeout: 5000 });
  });

  it('measures the job page load and the report build on the big job', async () => {
    // The view's own reads (job, progress, first item page, newest events).
    const loads = [];
    for (let i = 0; i < 5; i += 1) {
      await page.evaluate(() => {
        window.location.hash = '#/jobs';
      });
      await page.locator('#jobs').waitFor();
      await page.evaluate((id) => {
        window.location.hash = `#/jobs/${id}`;
      }, jobId);
      const head = page.locator('.page-head[data-loaded-ms]');
      await head.waitFor({ timeout: 10000 });
      loads.push(Number(await head.getAttribute('data-loaded-ms')));
    }
    // A full reload of the page, from navigation start to the view loaded.
    const reloads = [];
    for (let i = 0; i < 3; i += 1) {
      await page.reload();
      await page.locator('.page-head[data-loaded-ms]').waitFor({ timeout: 10000 });
      reloads.push(await page.evaluate(() => Math.round(performance.now())));
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    measured.job_view_load_ms = { runs: loads, median: median(loads) };
    measured.job_page_reload_ms = { runs: reloads, median: median(reloads) };

    const report = {};
    for (const format of ['json', 'text', 'markdown']) {
      const runs = [];
      for (let i = 0; i < 3; i += 1) {
        const started = performance.now();
        const res = await fetch(`${hub.url}/v1/jobs/${jobId}/report?format=${format}`, {
          headers: { Authorization: `Bearer ${token('admin', 'alice')}` },
        });
        assert.equal(res.status, 200);
        const body = await res.text();
        runs.push(Math.round(performance.now() - started));
        assert.ok(body.length > 0);
      }
      report[format] = { runs, median: median(runs) };
    }
    measured.report_ms = report;
    console.log(`scale measurements: ${JSON.stringify(measured)}`);
    const problems = page.problems.filter((p) => !p.includes('Failed to load resource'));
    assert.deepEqual(problems, [], 'no errors in the page');
  });
});
