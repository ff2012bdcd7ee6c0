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
import { countsOf, expectCounts, getExperiments } from '../lib/lamed.mjs';
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

/** Sixpack's traffic fraction as lamed makes it deterministic (README, "Sixpack API"). */
function inTraffic(experiment, clientId, fraction) {
  const hex = createHash('sha1').update(`traffic.${experiment}.${clientId}`).digest('hex');
  return parseInt(hex.slice(0, 7), 16) / 2 ** 28 < fraction;
}

/**
 * The scenario for the browser client: 1,000 clients in one page,
 * 25 at a time, each in three experiments. Every 10th client forces an
 * alternative (sixpack-js answers it locally and records nothing), every
 * 50th is a crawler, one experiment takes half the traffic, conversions are
 * sent twice, and clients that never took part convert too (Sixpack's 400,
 * which a <script> tag cannot read, so the client reports a failure). The
 * expected counts come from Sixpack's formulas computed here.
 */
test('1,000 sixpack-js clients: experiments, traffic fraction, forced alternatives, KPIs, re-sent conversions, bots and errors, counted exactly', { timeout: 300_000 }, async () => {
  const experiments = [
    { name: 'pricing-page', alternatives: ['monthly', 'annual'], kpis: ['signup', 'upgrade'], fraction: null },
    { name: 'hero-image', alternatives: ['red', 'green', 'blue'], kpis: ['click'], fraction: 0.5 },
    { name: 'onboarding', alternatives: ['short', 'long'], kpis: [null], fraction: null },
  ];
  const run = randomUUID().slice(0, 8);
  const clients = Array.from({ length: 1000 }, (_, i) => ({
    id: `client-${run}-${i}`,
    bot: i % 50 === 0,
    forced: i % 10 === 1,
    converts: i % 3 !== 0,
  }));
  const expected = {};
  const plans = clients.map((client) => experiments.map((e) => {
    const control = e.alternatives[0];
    const excluded = e.fraction !== null && !inTraffic(e.name, client.id, e.fraction);
    const counted = !client.bot && !client.forced && !excluded;
    const shown = client.forced ? e.alternatives.at(-1)
      : client.bot || excluded ? control : sixpackChoice(e.name, client.id, e.alternatives);
    // Who converts: the chosen clients, plus a few that never took part (errors).
    const converts = client.converts && (counted || client.bot || client.id.endsWith('7'));
    if (counted) {
      for (const kpi of e.kpis) {
        const goal = kpi ?? '(no kpi)';
        const row = (((expected[e.name] ??= {})[goal] ??= {})[shown] ??= [0, 0]);
        row[1] += 1;
        if (converts) row[0] += 1;
      }
    }
    return { shown, counted, converts, outcome: counted ? 'ok' : client.bot ? 'excluded' : 'failed' };
  }));

  const code = (await readFile(SIXPACK_JS, 'utf8')).replace(/<\/script/gi, '<\\/script');
  const page = await site.add(`<!doctype html><html><head><meta charset="utf-8"></head><body>
<script>${code}</script></body></html>`, 'sixpack-many');
  const v = await visitor();
  await v.goto(page);
  const answers = await v.page.evaluate(async ({ base, clients, experiments, bot }) => {
    const call = (fn) => new Promise((resolve) => fn((err, res) => resolve(err ? { error: String(err) } : res)));
    const one = async (client) => {
      const session = new sixpack.Session({
        base_url: base, client_id: client.id, timeout: 10_000,
        ...(client.bot ? { user_agent: bot } : {}),
      });
      const out = [];
      for (const e of experiments) {
        const force = client.forced ? e.alternatives.at(-1) : null;
        const participation = await call((cb) => session.participate(e.name, e.alternatives, e.fraction, force, cb));
        const conversions = [];
        if (client.plans[e.name].converts) {
          // A client that never took part waits for the timeout: a 400 never
          // runs (the 400s are counted below).
          session.timeout = client.plans[e.name].counted || client.bot ? 10_000 : 500;
          for (const kpi of e.kpis) {
            for (let repeat = 0; repeat < 2; repeat += 1) {
              conversions.push(await call((cb) => (kpi ? session.convert(e.name, kpi, cb) : session.convert(e.name, cb))));
            }
          }
          session.timeout = 10_000;
        }
        out.push({ participation, conversions });
      }
      return out;
    };
    const results = new Array(clients.length);
    let next = 0;
    await Promise.all(Array.from({ length: 25 }, async () => {
      while (next < clients.length) {
        const index = next++;
        results[index] = await one(clients[index]);
      }
    }));
    return results;
  }, {
    base: lamed.base,
    bot: GOOGLEBOT_USER_AGENT,
    experiments,
    clients: clients.map((client, i) => ({
      ...client,
      plans: Object.fromEntries(experiments.map((e, j) => [e.name, plans[i][j]])),
    })),
  });

  clients.forEach((client, i) => experiments.forEach((e, j) => {
    const plan = plans[i][j];
    const { participation, conversions } = answers[i][j];
    const where = `${client.id} in ${e.name}`;
    assert.equal(participation.status, 'ok', `${where}: ${JSON.stringify(participation)}`);
    assert.equal(participation.alternative.name, plan.shown, where);
    for (const conversion of conversions) {
      if (plan.outcome === 'ok') {
        assert.equal(conversion.status, 'ok', `${where}: ${JSON.stringify(conversion)}`);
        assert.equal(conversion.alternative.name, plan.shown, where);
      } else if (plan.outcome === 'excluded') {
        assert.deepEqual(conversion, { status: 'ok', excluded: 'true' }, where);
      } else {
        assert.equal(conversion.status, 'failed', `${where}: ${JSON.stringify(conversion)}`);
      }
    }
  }));
  assert.deepEqual(v.pageErrors, []);
  const statuses = new Set(v.requests.map((r) => r.status));
  assert.deepEqual([...statuses].filter((s) => s !== 200 && s !== 400), [], 'only 200s and 400s');
  const refusals = plans.flat().map((plan, k) => (plan.outcome === 'failed' && plan.converts
    ? 2 * experiments[k % experiments.length].kpis.length : 0)).reduce((a, b) => a + b, 0);
  assert.ok(refusals > 0);
  assert.equal(v.requests.filter((r) => r.status === 400).length, refusals, 'one 400 per conversion of a client that never took part');
  // The other tests' experiments keep their counts.
  const others = countsOf(await getExperiments(lamed, { namespace: 'sixpack' }));
  await expectCounts(lamed, 'sixpack', { ...others, ...expected });
});
