// The AlephBet snippet that `lamed serve` prints, pasted as-is into a page of
// another origin, works. The snippet loads AlephBet from the jsDelivr CDN; with
// no internet here, the browser is answered with the very file the CDN serves
// (alephbet@0.27.0's dist/alephbet.min.js from node_modules).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectCounts } from '../lib/lamed.mjs';
import { ALEPHBET_DIST, ALEPHBET_CDN_URL } from '../lib/browser.mjs';
import { useSuite, lamed, site, visitor as openVisitor } from '../lib/suite.mjs';

useSuite({ lamed: { apiKey: null } }); // let lamed generate its key; read it from the banner

/** A visitor whose browser gets AlephBet from node_modules for the CDN URL. */
async function visitor() {
  const v = await openVisitor();
  await v.context.route(ALEPHBET_CDN_URL, (route) => route.fulfill({
    status: 200,
    path: ALEPHBET_DIST,
    headers: { 'Content-Type': 'application/javascript; charset=utf-8', 'Access-Control-Allow-Origin': '*' },
  }));
  return v;
}

test('the printed snippet, pasted into a page, counts participants and the checkout goal', { timeout: 60_000 }, async () => {
  const { snippet } = lamed;
  assert.ok(snippet, `a snippet in the banner:\n${lamed.stdout}`);
  assert.ok(snippet.includes(`<script src="${ALEPHBET_CDN_URL}"></script>`), snippet);
  assert.ok(snippet.includes(`new AlephBet.AlephbetAdapter("${lamed.trackUrl}", "alephbet")`), snippet);
  const page = site.add(`<!doctype html>
<html><head><meta charset="utf-8"><title>My shop</title></head>
<body>
<h1>Welcome</h1>
${snippet}
</body></html>
`, 'snippet');
  const name = 'my first experiment';

  const buyer = await visitor();
  await buyer.goto(page);
  await buyer.settle();
  const variant = await buyer.storedVariant(name);
  assert.ok(['red', 'blue'].includes(variant), `variant ${variant}`);
  // Participation alone: the experiment is listed, with no goals yet.
  await expectCounts(lamed, 'alephbet', { [name]: {} }, { quietMs: 0 });

  await buyer.page.evaluate('goal.complete()'); // the snippet's global `goal`
  await buyer.settle();
  assert.deepEqual(buyer.pageErrors, []);
  assert.deepEqual(buyer.consoleErrors, []);
  const expected = { [name]: { checkout: { [variant]: [1, 1] } } };
  await expectCounts(lamed, 'alephbet', expected);

  // A second visitor who only looks is one more participant.
  const looker = await visitor();
  await looker.goto(page);
  await looker.settle();
  const other = await looker.storedVariant(name);
  const cell = expected[name].checkout[other] ?? [0, 0];
  expected[name].checkout[other] = [cell[0], cell[1] + 1];
  await expectCounts(lamed, 'alephbet', expected);
});
