// Weighted variants (AlephBet's `weight` option) over 200 fresh visitors: the
// split is within binomial bounds and lamed counts exactly 200 participants,
// each in the variant its browser chose.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectCounts } from '../lib/lamed.mjs';
import { experimentPage } from '../lib/browser.mjs';
import { useSuite, lamed, site, visitor } from '../lib/suite.mjs';

const VISITORS = 200;
const WORKERS = 4; // browser contexts visiting in parallel, storage cleared between visitors
const WEIGHTS = { red: 80, blue: 20 };

useSuite();

test(`80/20 weighted variants over ${VISITORS} fresh visitors`, { timeout: 180_000 }, async () => {
  const ns = 'e2e-weights';
  const name = 'weighted 80/20';
  const page = (completeOnLoad) => site.add(experimentPage({
    url: lamed.trackUrl, namespace: ns, name,
    variants: { red: { weight: WEIGHTS.red }, blue: { weight: WEIGHTS.blue } },
    goals: [{ name: 'checkout' }],
    completeOnLoad,
  }), 'weights');
  const browsing = page([]); // even visitors only participate
  const buying = page(['checkout']); // odd visitors also complete the goal at once

  const chosen = []; // [variant, bought]
  let next = 0;
  let failed = false;
  const worker = async () => {
    const v = await visitor();
    try {
      await visitLoop(v);
    } catch (e) {
      failed = true; // the other workers stop too
      throw e;
    }
  };
  const visitLoop = async (v) => {
    while (next < VISITORS && !failed) {
      const i = next++;
      await v.clearStorage().catch(() => {}); // about:blank of a new context has no storage
      await v.goto(i % 2 ? buying : browsing);
      await v.settle({ quietMs: 50 });
      const variant = await v.page.evaluate(() => window.activeVariant);
      assert.ok(variant in WEIGHTS, `visitor ${i}: variant ${variant}`);
      chosen.push([variant, i % 2 === 1]);
    }
    assert.deepEqual(v.pageErrors, []);
    assert.deepEqual(v.consoleErrors, []);
  };
  await Promise.all(Array.from({ length: WORKERS }, worker));
  assert.equal(chosen.length, VISITORS);

  const expected = { red: [0, 0], blue: [0, 0] };
  for (const [variant, bought] of chosen) {
    expected[variant][1] += 1;
    if (bought) expected[variant][0] += 1;
  }
  for (const k of Object.keys(expected)) if (expected[k][1] === 0) delete expected[k];

  // The browsers' choices follow the weights (n=200, p=0.8: sd ~5.7, +-4 sd).
  const p = WEIGHTS.red / (WEIGHTS.red + WEIGHTS.blue);
  const mean = VISITORS * p;
  const sd = Math.sqrt(VISITORS * p * (1 - p));
  const red = expected.red?.[1] ?? 0;
  assert.ok(Math.abs(red - mean) <= 4 * sd, `red got ${red} of ${VISITORS}, expected ${mean} +- ${(4 * sd).toFixed(1)}`);

  // lamed counted every visitor once, in the variant the browser chose.
  const counts = await expectCounts(lamed, ns, { [name]: { checkout: expected } }, { timeoutMs: 20_000 });
  const trials = Object.values(counts[name].checkout).reduce((sum, [, t]) => sum + t, 0);
  assert.equal(trials, VISITORS);
});
