// An adaptive experiment, as an owner sets it up: `lamed experiments create
// --adaptive` registers it and prints a snippet, which, pasted into a page,
// reads the period's weights before building the experiment. Fresh visitors
// get a variant and count once each; a returning visitor keeps theirs without
// counting again; the goal counts; and the page asked for the weights.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expectCounts, extractSnippet, LAMED_BIN } from '../lib/lamed.mjs';
import { useSuite, lamed, site, cdnVisitor as visitor } from '../lib/suite.mjs';

const NS = 'e2e-adaptive';
const NAME = 'adaptive headline';
const VARIANTS = ['short', 'long', 'bold'];

useSuite();

test('the adaptive snippet reads the weights, then counts like any experiment', { timeout: 90_000 }, async () => {
  const { stdout } = await promisify(execFile)(LAMED_BIN, [
    'experiments', 'create', NAME, '--variants', VARIANTS.join(','), '--goals', 'buy',
    '--adaptive', 'buy', '--namespace', NS, '--server', lamed.base, '--api-key', lamed.apiKey,
  ]);
  const snippet = extractSnippet(stdout);
  assert.ok(snippet, `a snippet:\n${stdout}`);
  assert.ok(snippet.includes('/weights?namespace='), snippet);
  const page = site.add(`<!doctype html>
<html><head><meta charset="utf-8"><title>News</title></head>
<body><h1>Headline</h1>
${snippet}
</body></html>
`, 'adaptive');

  const counts = Object.fromEntries(VARIANTS.map((v) => [v, [0, 0]]));
  let first;
  for (let i = 0; i < 9; i++) {
    const v = await visitor();
    await v.goto(page);
    await v.settle();
    const variant = await v.storedVariant(NAME);
    assert.ok(VARIANTS.includes(variant), `visitor ${i}: ${variant}`);
    assert.ok(v.requests.some((r) => r.url.includes('/weights?') && r.status === 200),
      `visitor ${i} read the weights: ${JSON.stringify(v.requests.map((r) => [r.url, r.status]))}`);
    assert.deepEqual(v.pageErrors, []);
    counts[variant][1] += 1;
    if (i === 0) first = { v, variant };
  }
  // The first visitor returns, keeps the variant, counts no second time,
  // and buys.
  await first.v.goto(page);
  await first.v.settle();
  assert.equal(await first.v.storedVariant(NAME), first.variant);
  await first.v.page.evaluate('window.goal.complete()');
  await first.v.settle();
  counts[first.variant][0] += 1;
  for (const k of VARIANTS) if (counts[k][1] === 0) delete counts[k];
  await expectCounts(lamed, NS, { [NAME]: { buy: counts } });

  // The weights the pages read: the period's, summing to 100, in the
  // registered order (equal during the burn-in).
  const res = await fetch(`${lamed.base}/api/experiments/${encodeURIComponent(NAME)}/weights?namespace=${NS}`);
  const answer = await res.json();
  assert.deepEqual(Object.keys(answer.weights), VARIANTS);
  assert.equal(Object.values(answer.weights).reduce((a, b) => a + b, 0), 100);
  assert.equal(answer.burn_in, true);
  assert.match(res.headers.get('cache-control'), /^public, max-age=\d+$/);
});
