// Sixpack's JavaScript client (npm sixpack-client 2.1.0) in Chromium against
// lamed's Sixpack API: it loads every answer through a <script> tag (JSONP,
// `callback=sixpack.callbackN`), which only works with the
// `application/javascript` answers lamed sends. Each visitor gets Sixpack's
// own alternative (computed here with node's crypto, independently of lamed),
// converts twice on one KPI (counted once), and the counts read back exact;
// a crawler gets the control and counts nothing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { expectCounts } from '../lib/lamed.mjs';
import { GOOGLEBOT_USER_AGENT } from '../lib/browser.mjs';
import { useSuite, lamed, site, visitor } from '../lib/suite.mjs';

useSuite();

const require = createRequire(import.meta.url);
const SIXPACK_JS = require.resolve('sixpack-client/sixpack.js');
const ALTERNATIVES = ['one-step', 'two-step', 'three-step'];

/** Sixpack's assignment: int(sha1("experiment.client")[:7], 16) % len. */
function sixpackChoice(experiment, clientId, alternatives) {
  const hex = createHash('sha1').update(`${experiment}.${clientId}`).digest('hex');
  return alternatives[parseInt(hex.slice(0, 7), 16) % alternatives.length];
}

/** A page that participates, then converts twice on `kpi`; the answers land in window.answers. */
async function sixpackPage(clientId, { experiment = 'checkout-flow', kpi = 'purchase', timeout = 5000 } = {}) {
  const code = (await readFile(SIXPACK_JS, 'utf8')).replace(/<\/script/gi, '<\\/script');
  const cfg = JSON.stringify({ base_url: lamed.base, client_id: clientId, timeout });
  return site.add(`<!doctype html>
<html><head><meta charset="utf-8"><title>sixpack e2e</title></head><body>
<script>${code}</script>
<script>
window.answers = [];
var session = new sixpack.Session(${cfg});
session.participate(${JSON.stringify(experiment)}, ${JSON.stringify(ALTERNATIVES)}, function (err, res) {
  window.answers.push(err ? String(err) : res);
  session.convert(${JSON.stringify(experiment)}, ${JSON.stringify(kpi)}, function (err, res) {
    window.answers.push(err ? String(err) : res);
    session.convert(${JSON.stringify(experiment)}, ${JSON.stringify(kpi)}, function (err, res) {
      window.answers.push(err ? String(err) : res);
    });
  });
});
</script>
</body></html>
`, 'sixpack');
}

async function answersOf(v) {
  await v.page.waitForFunction(() => window.answers.length === 3, null, { timeout: 20_000 });
  return v.page.evaluate(() => window.answers);
}

test('sixpack-js participates and converts through JSONP, counted exactly', { timeout: 120_000 }, async () => {
  const expected = {};
  for (let i = 0; i < 6; i += 1) {
    const clientId = randomUUID();
    const chosen = sixpackChoice('checkout-flow', clientId, ALTERNATIVES);
    const v = await visitor();
    await v.goto(await sixpackPage(clientId));
    const [participation, first, second] = await answersOf(v);
    assert.deepEqual(participation, {
      status: 'ok', alternative: { name: chosen }, experiment: { name: 'checkout-flow' }, client_id: clientId,
    });
    for (const conversion of [first, second]) {
      assert.equal(conversion.status, 'ok', JSON.stringify(conversion));
      assert.deepEqual(conversion.alternative, { name: chosen });
      assert.deepEqual(conversion.conversion, { value: null, kpi: 'purchase' });
    }
    assert.deepEqual(v.pageErrors, []);
    const counts = (expected[chosen] ??= [0, 0]);
    counts[0] += 1;
    counts[1] += 1;
  }

  // A crawler: the control, nothing counted, conversions excluded.
  const bot = await visitor({ userAgent: GOOGLEBOT_USER_AGENT });
  await bot.goto(await sixpackPage(randomUUID()));
  const [participation, conversion] = await answersOf(bot);
  assert.equal(participation.alternative.name, 'one-step');
  assert.deepEqual(conversion, { status: 'ok', excluded: 'true' });

  await expectCounts(lamed, 'sixpack', { 'checkout-flow': { purchase: expected } });
});

test('a 400 from lamed reaches sixpack-js as a failure, as with Sixpack', { timeout: 60_000 }, async () => {
  // A client that never participated cannot convert: Sixpack answers 400,
  // which a <script> tag does not run, so the client's timeout reports it.
  const v = await visitor();
  await v.goto(await sixpackPage(randomUUID(), { experiment: 'second-flow' }));
  await answersOf(v);
  const rejected = await v.page.evaluate((base) => new Promise((resolve) => {
    new sixpack.Session({ base_url: base, client_id: 'stranger', timeout: 1500 })
      .convert('second-flow', 'purchase', (err, res) => resolve(res));
  }), lamed.base);
  assert.equal(rejected.status, 'failed', JSON.stringify(rejected));
  const sent = v.requests.filter((r) => r.url.includes('client_id=stranger'));
  assert.equal(sent.length, 1);
  assert.equal(sent[0].status, 400);
});
