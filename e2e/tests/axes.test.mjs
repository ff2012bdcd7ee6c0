// The dashboard's chart axes at small counts (1, 2 and 3 events): every
// axis label is distinct, counts step by whole numbers (no "0, 1, 1, 1, 0"),
// and rates by as many decimals as their step needs. The page is saved as
// target/dashboard-small-counts.png, the test's artifact.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PERSON_USER_AGENT, openDashboard } from '../lib/browser.mjs';
import { useSuite, lamed, browser } from '../lib/suite.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SCREENSHOT = path.resolve(here, '../../target/dashboard-small-counts.png');
const NS = 'small';

/** Sends one event the way AlephBet does, as a person's browser. */
async function track(experiment, variant, event, uuid) {
  const q = new URLSearchParams({ namespace: NS, experiment, variant, event, uuid });
  const res = await fetch(`${lamed.base}/track?${q}`, { headers: { 'User-Agent': PERSON_USER_AGENT } });
  assert.equal(res.status, 200, await res.text());
}

// experiment: [variant, participants, conversions] — one, two and three events.
const SEEDS = {
  'one event': [['red', 1, 0]],
  'two events': [['red', 1, 1]],
  'three events': [['red', 1, 0], ['blue', 2, 0]],
};

useSuite({
  site: false,
  timeout: 120_000,
  setup: async () => {
    for (const [experiment, variants] of Object.entries(SEEDS)) {
      for (const [variant, participants, conversions] of variants) {
        for (let i = 0; i < participants; i++) {
          const uuid = `${experiment}-${variant}-${i}`;
          await track(experiment, variant, 'participate', uuid);
          if (i < conversions) await track(experiment, variant, 'checkout', uuid);
        }
      }
    }
  },
});

test('chart axes at 1 to 3 events never repeat a label', { timeout: 120_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1300, height: 1100 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  try {
    await openDashboard(page, lamed, NS);
    for (const experiment of Object.keys(SEEDS)) {
      await page.locator(`section[data-experiment="${experiment}"] figure svg`).first().waitFor();
    }
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    // Most participants a variant has in each experiment, on its one day.
    const most = { 'one event': 1, 'two events': 1, 'three events': 2 };
    for (const [experiment, top] of Object.entries(most)) {
      const charts = page.locator(`section[data-experiment="${experiment}"] figure svg`);
      assert.ok(await charts.count() >= 1, `${experiment}: no chart`);
      for (let i = 0; i < await charts.count(); i++) {
        const chart = charts.nth(i);
        const title = await chart.getAttribute('aria-label');
        const y = await chart.locator('text.y-tick').allTextContents();
        const x = await chart.locator('text.x-tick').allTextContents();
        assert.ok(y.length >= 2, `${experiment} / ${title}: y labels ${y}`);
        assert.equal(new Set(y).size, y.length, `${experiment} / ${title}: y labels repeat: ${y}`);
        assert.equal(new Set(x).size, x.length, `${experiment} / ${title}: x labels repeat: ${x}`);
        if (title === 'Participants per day') {
          // Whole numbers from 0 up to the most participants: 0, 1 (, 2).
          assert.deepEqual(y, Array.from({ length: top + 1 }, (_, n) => String(n)), `${experiment}: ${y}`);
        } else {
          assert.ok(y.every((label) => /^\d+(\.\d+)?%$/.test(label)), `${experiment} / ${title}: ${y}`);
          assert.equal(y[0].replace(/[.0]/g, ''), '%', `${experiment} / ${title}: starts at 0: ${y}`);
        }
      }
    }
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
