// How the dashboard is served and how it looks: strict headers with
// revalidation, and every page readable at 1280 px and at phone width, in
// the light and the dark theme (screenshots of each for a person to look at).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  createJob, launchBrowser, nav, openPage, SAMPLE_SPEC, screenshot, signIn, startAgent, startHub, stopAll, token,
  waitForJob,
} from '../lib/harness.mjs';

const VIEWPORTS = [
  { name: '1280', width: 1280, height: 900 },
  { name: 'phone', width: 390, height: 844 },
];
const SCHEMES = ['light', 'dark'];

describe('layout and headers', () => {
  let hub;
  let browser;
  let done;

  before(async () => {
    hub = await startHub({ name: 'layout-hub' });
    startAgent(hub, 'creator', 'creator-1');
    startAgent(hub, 'validator', 'validator-1');
    done = await createJob(hub, { prompt: 'Extract the requirements of the sample specification', priority: 7, document: SAMPLE_SPEC });
    await createJob(hub, { prompt: 'Nobody can do this', pipeline: 'nobody.home' });
    await waitForJob(hub, done.id, 'completed');
    browser = await launchBrowser();
  });

  after(async () => {
    if (browser) await browser.close();
    await stopAll();
  });

  it('serves the pages with a strict policy and revalidation', async () => {
    const res = await fetch(`${hub.url}/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    const csp = res.headers.get('content-security-policy');
    for (const part of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) {
      assert.ok(csp.includes(part), `CSP has ${part}: ${csp}`);
    }
    assert.ok(!csp.includes('unsafe-inline'), csp);
    const etag = res.headers.get('etag');
    assert.match(etag, /^"[0-9a-f]{32}"$/);
    const again = await fetch(`${hub.url}/`, { headers: { 'If-None-Match': etag } });
    assert.equal(again.status, 304);

    const js = await fetch(`${hub.url}/assets/js/main.js`);
    assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
    const css = await fetch(`${hub.url}/assets/app.css`);
    assert.equal(css.headers.get('content-type'), 'text/css; charset=utf-8');
    const missing = await fetch(`${hub.url}/assets/nope.js`);
    assert.equal(missing.status, 404);
  });

  it('can be used with the keyboard alone', async () => {
    const page = await openPage(browser, hub);
    try {
      await signIn(page, token('operator', 'olga'));
      const focused = () => page.evaluate(() => {
        const el = document.activeElement;
        return `${el.tagName.toLowerCase()}:${(el.textContent || el.id || '').trim().slice(0, 40)}`;
      });
      // The first Tab reaches the skip link, then the navigation.
      await page.keyboard.press('Tab');
      assert.equal(await focused(), 'a:Skip to content');
      let found = false;
      for (let i = 0; i < 10 && !found; i += 1) {
        await page.keyboard.press('Tab');
        found = (await focused()) === 'a:Jobs';
      }
      assert.ok(found, 'Tab reaches the Jobs link');
      await page.keyboard.press('Enter');
      await page.waitForURL(/#\/jobs$/);
      // The URL changes before the view renders and moves the focus.
      await page
        .waitForFunction(() => document.activeElement && document.activeElement.tagName === 'H1', null, { timeout: 5000 })
        .catch(() => {});
      assert.equal(await focused(), 'h1:Jobs', 'a new page moves focus to its heading');
      await page.keyboard.press('Tab');
      assert.equal(await focused(), 'summary:New job');
      await page.keyboard.press('Enter');
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'job-prompt');
      await page.keyboard.type('Typed with the keyboard');
      const order = [];
      for (let i = 0; i < 8 && order[order.length - 1] !== 'button:Create job'; i += 1) {
        await page.keyboard.press('Tab');
        order.push(await page.evaluate(() => {
          const el = document.activeElement;
          return el.tagName === 'BUTTON' ? `button:${el.textContent.trim()}` : el.id;
        }));
      }
      assert.deepEqual(order, ['job-pipeline', 'job-priority', 'job-labels', 'job-document', 'button:Create job']);
      await page.keyboard.press('Enter');
      await page.waitForURL(/#\/jobs\/[0-9a-f-]{36}$/);
      await page.locator('#job-status .badge').waitFor();
      assert.equal(await page.locator('.prompt-full').innerText(), 'Typed with the keyboard');
    } finally {
      await page.context().close();
    }
  });

  for (const vp of VIEWPORTS) {
    for (const scheme of SCHEMES) {
      it(`is readable at ${vp.name} width in the ${scheme} theme`, async () => {
        const page = await openPage(browser, hub, { width: vp.width, height: vp.height, colorScheme: scheme });
        try {
          await screenshot(page, `signin-${vp.name}-${scheme}`);
          await signIn(page, token('admin', 'alice'));
          const tag = `${vp.name}-${scheme}`;
          const noOverflow = async (where) => {
            const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
            if (scroll > width + 1) await screenshot(page, `overflow-${where}-${tag}`);
            assert.ok(scroll <= width + 1, `${where} at ${tag}: the page is ${scroll}px wide in a ${width}px window`);
          };

          await page.locator('#stat-online .stat-value', { hasText: '2' }).waitFor({ timeout: 15000 });
          // The job finished before this page opened: the charts get it from the replayed history.
          await page.waitForFunction(() => {
            const foot = document.querySelector('.chart-foot');
            return foot && !foot.textContent.startsWith('peak 0 ');
          }, null, { timeout: 10000 });
          await noOverflow('overview');
          await screenshot(page, `overview-${tag}`);

          await nav(page, 'Agents').click();
          await page.locator('#agents tr[data-state="connected"]').first().waitFor();
          await noOverflow('agents');
          await screenshot(page, `agents-${tag}`);

          await nav(page, 'Jobs').click();
          await page.locator(`#jobs tr[data-job-id="${done.id}"] progress`).waitFor();
          await page.locator('#new-job-panel summary').click();
          await noOverflow('jobs');
          await screenshot(page, `jobs-${tag}`);

          await page.locator(`#jobs tr[data-job-id="${done.id}"] a`).click();
          await page.locator('#items-count', { hasText: '15 of 15 items' }).waitFor();
          await noOverflow('job');
          await screenshot(page, `job-${tag}`);

          await page.locator('#report-link').click();
          await page.locator('#report[aria-busy="false"]').waitFor({ timeout: 15000 });
          await noOverflow('report');
          await screenshot(page, `report-${tag}`);

          const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
          if (scheme === 'dark') assert.notEqual(bg, 'rgb(245, 246, 248)', 'dark theme has a dark background');
          else assert.equal(bg, 'rgb(245, 246, 248)');
        } finally {
          await page.context().close();
        }
      });
    }
  }
});
