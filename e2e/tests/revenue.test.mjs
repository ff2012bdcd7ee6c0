// Revenue: visitors' browsers take part through AlephBet and report their
// purchases with a value through a GET to /track (sent twice, the second time
// with another value, which must not count); a site's server sends more
// participants and purchases in POST /track batches, with values as JSON
// numbers and strings. The report's sums, means, intervals and Welch tests
// equal scipy's, computed by scripts/revenue_reference.py from the same raw
// events, to 1e-9 relative, and the dashboard shows the same sums and means.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { experimentPage, PERSON_USER_AGENT, openDashboard } from '../lib/browser.mjs';
import { useSuite, lamed, site, browser, visitor } from '../lib/suite.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(here, '../..');
const NS = 'e2e-revenue';
const NAME = 'checkout total';
const VISITORS = 24;
const WORKERS = 4;
const BATCH_PARTICIPANTS = 400;

useSuite({ timeout: 120_000 });

/** A seeded generator (mulberry32), so every run sends the same values. */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A purchase total in cents, skewed as order totals are. */
const cents = (rand, variant) => Math.round((variant === 'blue' ? 2600 : 2000) * Math.exp(rand() - 0.5) + rand() * 300);
const decimal = (c) => `${Math.floor(c / 100)}.${String(c % 100).padStart(2, '0')}`;

/** scipy's figures for the raw events (the test venv's python). */
function reference(raw) {
  const moto = execFileSync('bash', [path.join(ROOT, 'scripts/aws-test-env.sh')], { encoding: 'utf8' }).trim();
  const python = path.join(path.dirname(moto), 'python');
  const out = execFileSync(python, [path.join(ROOT, 'scripts/revenue_reference.py')], { input: JSON.stringify(raw), encoding: 'utf8' });
  return JSON.parse(out);
}

function close(actual, expected, what) {
  if (expected === null) {
    assert.equal(actual ?? null, null, what);
    return;
  }
  const scale = Math.max(Math.abs(expected), 1e-300);
  assert.ok(Math.abs(actual - expected) / scale <= 1e-9 || Math.abs(actual - expected) <= 1e-12,
    `${what}: ${actual} vs scipy ${expected}`);
}

test('revenue from pages and a server batch: the report equals scipy on the raw events', { timeout: 180_000 }, async () => {
  const rand = random(13);
  // variant → {participants, values: [micro-units]}
  const raw = { red: { participants: 0, values: [] }, blue: { participants: 0, values: [] } };

  // 1. Browsers: AlephBet assigns and reports the participation; the page
  // reports the purchase itself.
  const url = site.add(experimentPage({
    url: lamed.trackUrl, namespace: NS, name: NAME,
    variants: { red: {}, blue: {} },
  }), 'revenue');
  const plans = Array.from({ length: VISITORS }, (_, i) => ({ i, buys: rand() < 0.7 }));
  let next = 0;
  const worker = async () => {
    const v = await visitor();
    while (next < plans.length) {
      const plan = plans[next++];
      await v.clearStorage().catch(() => {});
      await v.goto(url);
      await v.settle({ quietMs: 50 });
      const variant = await v.page.evaluate(() => window.activeVariant);
      assert.ok(variant in raw, `visitor ${plan.i}: ${variant}`);
      raw[variant].participants += 1;
      if (!plan.buys) continue;
      const c1 = cents(rand, variant);
      const statuses = await v.page.evaluate(async ({ track, ns, name, variant, uuid, values }) => {
        const out = [];
        for (const value of values) {
          const q = new URLSearchParams({ namespace: ns, experiment: name, variant, event: 'purchase', uuid, value });
          const res = await fetch(`${track}?${q}`);
          out.push([res.status, await res.text()]);
        }
        return out;
      }, { track: lamed.trackUrl, ns: NS, name: NAME, variant, uuid: `visitor-${plan.i}`, values: [decimal(c1), decimal(c1 + 5000)] });
      assert.deepEqual(statuses, [[200, '{}'], [200, '{}']]);
      raw[variant].values.push(c1 * 10_000);
    }
    assert.deepEqual(v.pageErrors, []);
  };
  await Promise.all(Array.from({ length: WORKERS }, worker));

  // 2. The site's server: participants and purchases in batches of 200,
  // values as numbers and as strings, then every purchase again with
  // another value.
  const events = [];
  const resent = [];
  for (let i = 0; i < BATCH_PARTICIPANTS; i++) {
    const variant = i % 2 ? 'blue' : 'red';
    const uuid = `server-${i}`;
    events.push({ namespace: NS, experiment: NAME, variant, event: 'participate', uuid });
    raw[variant].participants += 1;
    if (rand() < 0.4) {
      const c = cents(rand, variant);
      const value = i % 3 ? c / 100 : decimal(c);
      events.push({ namespace: NS, experiment: NAME, variant, event: 'purchase', uuid, value });
      resent.push({ namespace: NS, experiment: NAME, variant, event: 'purchase', uuid, value: 1 });
      raw[variant].values.push(c * 10_000);
    }
  }
  const post = async (batch) => {
    const res = await fetch(lamed.trackUrl, {
      method: 'POST', body: JSON.stringify(batch),
      headers: { 'Content-Type': 'application/json', 'User-Agent': PERSON_USER_AGENT },
    });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    return body;
  };
  for (let at = 0; at < events.length; at += 200) await post(events.slice(at, at + 200));
  const again = await post(resent);
  assert.equal(again.duplicates, resent.length);

  // 3. The report against scipy on the raw events.
  const res = await fetch(`${lamed.base}/api/experiments/${encodeURIComponent(NAME)}/report?namespace=${NS}&control=red`, {
    headers: { 'X-Api-Key': lamed.apiKey },
  });
  assert.equal(res.status, 200);
  const report = await res.json();
  const goal = report.goals.find((g) => g.goal === 'purchase');
  assert.ok(goal?.values, JSON.stringify(goal));
  const ref = reference({ control: 'red', variants: raw });
  for (const v of goal.values.variants) {
    const r = ref.variants[v.label];
    assert.equal(v.trials, r.participants, `${v.label} participants`);
    assert.equal(v.successes, r.conversions, `${v.label} conversions`);
    close(v.sum, r.sum, `${v.label} sum`);
    close(v.per_participant.mean, r.mean_per_participant, `${v.label} mean per participant`);
    close(v.per_participant.interval.lower, r.per_participant_interval[0], `${v.label} per participant lower`);
    close(v.per_participant.interval.upper, r.per_participant_interval[1], `${v.label} per participant upper`);
    close(v.per_conversion.mean, r.mean_per_conversion, `${v.label} mean per conversion`);
    close(v.per_conversion.interval.lower, r.per_conversion_interval[0], `${v.label} per conversion lower`);
    close(v.per_conversion.interval.upper, r.per_conversion_interval[1], `${v.label} per conversion upper`);
    if (v.is_control) continue;
    const w = ref.welch[v.label];
    const welch = v.comparison.welch;
    close(v.comparison.difference, w.difference, `${v.label} difference`);
    close(welch.t, w.t, `${v.label} t`);
    close(welch.df, w.df, `${v.label} df`);
    close(welch.p_value, w.p_value, `${v.label} p`);
    close(welch.interval.lower, w.interval[0], `${v.label} difference lower`);
    close(welch.interval.upper, w.interval[1], `${v.label} difference upper`);
  }

  // 4. The dashboard shows the same sums and means.
  const context = await browser.newContext({ viewport: { width: 1300, height: 1000 } });
  try {
    const page = await context.newPage();
    await openDashboard(page, lamed, NS);
    const table = page.locator(`section[data-experiment="${NAME}"] table[data-values="purchase"]`);
    await table.waitFor();
    for (const v of goal.values.variants) {
      const cells = await table.locator(`tr[data-variant="${v.label}"] td`).allTextContents();
      assert.equal(cells[1], v.sum.toFixed(2), `${v.label} sum shown`);
      assert.ok(cells[2].startsWith(v.per_participant.mean.toFixed(2)), `${v.label}: ${cells[2]}`);
      assert.ok(cells[3].startsWith(v.per_conversion.mean.toFixed(2)), `${v.label}: ${cells[3]}`);
    }
  } finally {
    await context.close();
  }
});
