// The built-in dashboard, driven in Chromium: it asks for the API key once,
// shows the same numbers as the report API for a seeded experiment, draws
// its charts, exports CSV, and deletes an experiment only after the
// confirmation is accepted. A screenshot is saved as target/dashboard.png.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getExperiments } from '../lib/lamed.mjs';
import { PERSON_USER_AGENT, openDashboard } from '../lib/browser.mjs';
import { useSuite, lamed, browser } from '../lib/suite.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SCREENSHOT = path.resolve(here, '../../target/dashboard.png');
const NS = 'shop';

/** Sends one event the way AlephBet does. */
async function track(experiment, variant, event, uuid) {
  const q = new URLSearchParams({ namespace: NS, experiment, variant, event, uuid });
  // A person's browser: the bot filter ignores Node's own User-Agent.
  const res = await fetch(`${lamed.base}/track?${q}`, { headers: { 'User-Agent': PERSON_USER_AGENT } });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  assert.ok(!text.includes('ignored'), `counted, not ignored: ${text}`);
}

/** Seeds two experiments with known counts, through the tracking endpoint. */
async function seed() {
  const seeds = [
    ['button color', 'red', 200, 20],
    ['button color', 'blue', 200, 34],
    ['headline', 'short', 30, 3],
    ['headline', 'long', 30, 5],
  ];
  for (const [experiment, variant, participants, conversions] of seeds) {
    for (let i = 0; i < participants; i++) {
      await track(experiment, variant, 'participate', `${experiment}-${variant}-${i}`);
      if (i < conversions) await track(experiment, variant, 'checkout', `${experiment}-${variant}-${i}`);
    }
  }
}

useSuite({ site: false, setup: seed, timeout: 120_000 });

async function report(experiment) {
  const res = await fetch(`${lamed.base}/api/experiments/${encodeURIComponent(experiment)}/report?namespace=${NS}`, {
    headers: { 'X-Api-Key': lamed.apiKey },
  });
  assert.equal(res.status, 200);
  return res.json();
}

const pct = (x, digits) => `${(x * 100).toFixed(digits)}%`;

test('the dashboard shows the report, charts, CSV export and deletes after confirmation', { timeout: 120_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1300, height: 1100 }, acceptDownloads: true });
  const page = await context.newPage();
  const urls = [];
  page.on('request', (request) => urls.push(request.url()));
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));

  await openDashboard(page, lamed, NS);
  const card = page.locator('section[data-experiment="button color"]');
  await card.locator('table[data-goal="checkout"]').waitFor();

  // The key stays in this tab's session storage, never in a URL.
  assert.equal(await page.evaluate(() => sessionStorage.getItem('lamed-api-key')), lamed.apiKey);
  assert.ok(urls.every((url) => !url.includes(lamed.apiKey)), 'the API key appeared in a URL');

  // Same numbers as the API.
  const api = await report('button color');
  const goal = api.goals.find((g) => g.goal === 'checkout');
  assert.equal(await card.locator('.verdict').first().textContent(), goal.verdict);
  for (const v of goal.analysis.variants) {
    const cells = await card.locator(`tr[data-variant="${v.label}"] td`).allTextContents();
    assert.equal(cells[0], v.label + (v.is_control ? ' (control)' : ''));
    assert.equal(cells[1], v.trials.toLocaleString('en-US'));
    assert.equal(cells[2], v.successes.toLocaleString('en-US'));
    assert.ok(cells[3].startsWith(pct(v.rate, 2)), `${cells[3]} vs ${v.rate}`);
    if (v.comparison) {
      assert.ok(cells[4].startsWith(pct(v.comparison.uplift.estimate, 1)), cells[4]);
      assert.equal(cells[6], pct(v.comparison.chance_to_beat_control, 1));
    }
    assert.equal(cells[7], pct(v.chance_to_be_best, 1));
  }

  // Charts: participants per day and cumulative conversion, one line per variant.
  const charts = card.locator('figure svg');
  assert.equal(await charts.count(), 2);
  for (let i = 0; i < 2; i++) {
    assert.equal(await charts.nth(i).locator('polyline.series').count(), 2);
    assert.ok(await charts.nth(i).locator('circle').count() >= 2, 'a point per variant and day');
  }
  assert.equal(await charts.nth(1).locator('polygon.band').count(), 2, 'interval bands');
  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  // CSV export.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    card.locator('button', { hasText: 'Export CSV' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'button color.csv');
  const csv = (await readFile(await download.path(), 'utf8')).trim().split('\n').map((line) => line.split(','));
  assert.equal(csv[0][0], 'experiment');
  const row = (variant) => csv.find((r) => r[1] === 'checkout' && r[2] === variant);
  assert.deepEqual(row('red').slice(4, 6), ['200', '20']);
  assert.deepEqual(row('blue').slice(4, 6), ['200', '34']);

  // Delete: dismissing the confirmation keeps the experiment; accepting removes it.
  const headline = page.locator('section[data-experiment="headline"]');
  await headline.locator('table').first().waitFor();
  page.once('dialog', (dialog) => dialog.dismiss());
  await headline.locator('button', { hasText: 'Delete' }).click();
  await page.waitForTimeout(300);
  assert.equal(await headline.count(), 1);
  assert.ok((await getExperiments(lamed, { namespace: NS })).some((e) => e.experiment === 'headline'));
  let message = '';
  page.once('dialog', (dialog) => { message = dialog.message(); dialog.accept(); });
  await headline.locator('button', { hasText: 'Delete' }).click();
  await page.locator('#status', { hasText: 'Deleted headline.' }).waitFor();
  assert.match(message, /Delete experiment "headline"/);
  assert.equal(await page.locator('section[data-experiment="headline"]').count(), 0);
  const left = await getExperiments(lamed, { namespace: NS });
  assert.deepEqual(left.slice(1).map((e) => e.experiment), ['button color']);

  // A wrong key is refused and asked for again.
  await page.evaluate(() => sessionStorage.setItem('lamed-api-key', 'wrong-key-wrong-key'));
  await page.reload();
  await page.locator('#key-form:not([hidden])').waitFor();
  assert.match(await page.locator('#status').textContent(), /refused/);
  assert.deepEqual(errors, []);
  await context.close();
});
