// The AlephBet snippet that `lamed serve` prints, pasted as-is into a page of
// another origin, works. The snippet loads AlephBet from the jsDelivr CDN; with
// no internet here, the browser is answered with the very file the CDN serves
// (alephbet@0.27.0's dist/alephbet.min.js from node_modules).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { expectCounts, startLamed, removeWorkDir } from '../lib/lamed.mjs';
import { ALEPHBET_CDN_URL, QUEUE } from '../lib/browser.mjs';
import { useSuite, lamed, site, cdnVisitor as visitor } from '../lib/suite.mjs';

useSuite({ lamed: { apiKey: null } }); // let lamed generate its key; read it from the banner

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

/** The snippet pasted into a shop page. */
const shopPage = (snippet, name) => site.add(`<!doctype html>
<html><head><meta charset="utf-8"><title>My shop</title></head>
<body>
<h1>Welcome</h1>
${snippet}
</body></html>
`, name);

let restarted; // the second test's own server, restarted on one port and data dir
after(async () => {
  await restarted?.stop();
  await removeWorkDir(restarted?.work);
}, { timeout: 60_000 });

test('with the printed snippet, events queued while lamed is down arrive on the next page load, once', { timeout: 60_000 }, async () => {
  restarted = await startLamed();
  const { port, apiKey, work } = restarted;
  const page = shopPage(restarted.snippet, 'snippet-down');
  const name = 'my first experiment';
  await restarted.stop('SIGTERM');

  // Down: the participation and the goal wait in AlephBet's queue.
  const buyer = await visitor(restarted);
  await buyer.goto(page);
  await buyer.page.evaluate('goal.complete()');
  let queue = await buyer.settle({ queue: QUEUE.AlephbetAdapter, queueEmpty: false });
  assert.deepEqual(queue.map((e) => e.properties.event).sort(), ['checkout', 'participate']);
  const variant = await buyer.storedVariant(name);

  // Back on the same port: the next page load, which tracks its own
  // participation too, delivers the queue; each event counts once.
  restarted = await startLamed({ port, work, apiKey });
  const sentBefore = buyer.requests.length;
  await buyer.reload();
  queue = await buyer.settle({ queue: QUEUE.AlephbetAdapter });
  assert.deepEqual(queue, []);
  const resent = buyer.sentEvents().slice(sentBefore);
  assert.ok(resent.some((e) => e.event === 'checkout' && e.status === 200), JSON.stringify(resent));
  await expectCounts(restarted, 'alephbet', { [name]: { checkout: { [variant]: [1, 1] } } });

  // Delivered: a further load sends the participation only (a duplicate).
  const sentAfter = buyer.requests.length;
  await buyer.reload();
  await buyer.settle({ queue: QUEUE.AlephbetAdapter });
  assert.ok(buyer.sentEvents().slice(sentAfter).every((e) => e.event === 'participate'));
  await expectCounts(restarted, 'alephbet', { [name]: { checkout: { [variant]: [1, 1] } } });
});
