// Segments (issue 26): AlephBet pages visited in Chromium with Playwright's
// desktop Chrome, iPhone and Galaxy Tab descriptors are counted per device
// and browser; the country comes from a real MaxMind-format file (the CC0
// @ip-location-db/geo-whois-asn-country-mmdb) for addresses given through
// X-Forwarded-For with trusted_proxies = 1; the report's corrected p-values
// equal statsmodels' (proportions_ztest, then multipletests).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { devices } from 'playwright-core';
import { get } from '../lib/lamed.mjs';
import { experimentPage, openDashboard } from '../lib/browser.mjs';
import { useSuite, lamed, site, browser, visitor } from '../lib/suite.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(here, '..', '..');
const require = createRequire(import.meta.url);
const MMDB = require.resolve('@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb');

useSuite({ lamed: { serveArgs: ['--trusted-proxies', '1', '--geoip-db', MMDB] } });

const DEVICES = [
  ['Desktop Chrome', 'desktop', 'Chrome'],
  ['iPhone 13', 'mobile', 'Mobile Safari'],
  ['Galaxy Tab S4', 'tablet', 'Chrome'],
];

async function report(ns, name, query) {
  const res = await get(`${lamed.base}/api/experiments/${encodeURIComponent(name)}/report?namespace=${ns}&${query}`,
    { headers: { 'X-Api-Key': lamed.apiKey } });
  assert.equal(res.status, 200, res.text);
  return JSON.parse(res.text);
}

/** One GET /track as a browser with `userAgent` behind one proxy. */
async function track(ns, name, variant, event, uuid, userAgent, forwardedFor) {
  const q = new URLSearchParams({ namespace: ns, experiment: name, variant, event, uuid });
  const res = await get(`${lamed.base}/track?${q}`, { headers: { 'User-Agent': userAgent, 'X-Forwarded-For': forwardedFor } });
  assert.equal(res.status, 200, res.text);
}

test('visits from a desktop, a phone and a tablet are counted per device and browser', { timeout: 90_000 }, async () => {
  const ns = 'e2e-segments';
  const name = 'checkout button';
  const url = site.add(experimentPage({
    url: lamed.trackUrl, namespace: ns, name,
    variants: { red: {} },
    goals: [{ name: 'buy' }],
  }), 'segments');
  // Per device one visitor: the desktop's and the phone's buy, the
  // tablet's does not.
  const buyers = { desktop: 1, mobile: 1, tablet: 0 };
  for (const [descriptor, device] of DEVICES) {
    for (let i = 0; i < 1; i++) {
      const { defaultBrowserType, ...options } = devices[descriptor];
      const v = await visitor(options);
      await v.goto(url);
      if (i < buyers[device]) await v.page.evaluate(() => window.goals.buy.complete());
      await v.settle();
      assert.deepEqual(v.pageErrors, []);
      assert.ok(v.sentEvents().every((e) => e.status === 200), JSON.stringify(v.sentEvents()));
    }
  }
  const byDevice = await report(ns, name, 'by=device');
  assert.equal(byDevice.segments.note, 'exploratory: decide on the overall result');
  const devicesSeen = Object.fromEntries(byDevice.segments.values.map((v) => [v.value, [v.participants[0], v.goals[0].variants[0].conversions]]));
  assert.deepEqual(devicesSeen, { desktop: [1, 1], mobile: [1, 1], tablet: [1, 0] });
  const byBrowser = await report(ns, name, 'by=browser');
  const browsers = Object.fromEntries(byBrowser.segments.values.map((v) => [v.value, [v.participants[0], v.goals[0].variants[0].conversions]]));
  assert.deepEqual(browsers, { Chrome: [2, 1], 'Mobile Safari': [1, 1] });
  // Chromium connects from 127.0.0.1: no country without a public address.
  const byCountry = await report(ns, name, 'by=country');
  assert.deepEqual(byCountry.segments.values, []);
  const bad = await get(`${lamed.base}/api/experiments/x/report?namespace=${ns}&by=os`, { headers: { 'X-Api-Key': lamed.apiKey } });
  assert.equal(bad.status, 400);
  assert.match(bad.text, /unknown segment dimension 'os'/);
});

test('country from the geoip file, and p-values corrected as statsmodels does', { timeout: 60_000 }, async () => {
  const ns = 'e2e-segments-country';
  const name = 'price test';
  const chrome = devices['Desktop Chrome'].userAgent;
  // Per country and variant: participants and buyers; rates differ by country.
  const plan = {
    '8.8.8.8': { red: [40, 8], blue: [42, 16] }, // US
    '193.0.6.139': { red: [35, 10], blue: [31, 9] }, // NL (RIPE NCC)
    // A private address: the database answers AU for it, lamed asks it nothing.
    '192.168.7.7': { red: [3, 1], blue: [2, 0] },
  };
  let n = 0;
  for (const [ip, variants] of Object.entries(plan)) {
    for (const [variant, [participants, buyers]] of Object.entries(variants)) {
      for (let i = 0; i < participants; i++) {
        const uuid = `u${n++}`;
        // The last proxy appends the client's address: trusted_proxies = 1
        // takes the rightmost entry, whatever the client claimed before it.
        const forwarded = `10.9.9.9, ${ip}`;
        await track(ns, name, variant, 'participate', uuid, chrome, forwarded);
        if (i < buyers) await track(ns, name, variant, 'buy', `b${uuid}`, chrome, forwarded);
      }
    }
  }
  // A re-sent event adds nothing to any segment.
  await track(ns, name, 'red', 'participate', 'u0', chrome, '8.8.8.8');
  const got = await report(ns, name, 'by=country&control=red');
  const values = Object.fromEntries(got.segments.values.map((v) => [v.value, v]));
  assert.deepEqual(Object.keys(values).sort(), ['NL', 'US'], 'no country for a private address');
  assert.deepEqual(values.US.participants, [42, 40], 'blue, red');
  assert.deepEqual(values.NL.participants, [31, 35]);
  assert.equal(got.segments.tests, 2);

  // statsmodels on the same counts: the pooled z-test, then Benjamini-Hochberg.
  const counts = ['US', 'NL'].map((c) => {
    const [blue, red] = values[c].goals[0].variants;
    return [blue.conversions, blue.participants, red.conversions, red.participants];
  });
  // The test venv's python (scripts/aws-test-env.sh makes it, statsmodels pinned).
  const moto = execFileSync('bash', [path.join(ROOT, 'scripts/aws-test-env.sh')], { encoding: 'utf8' }).trim();
  const python = path.join(path.dirname(moto), 'python');
  const script = `
import json, sys
from statsmodels.stats.proportion import proportions_ztest
from statsmodels.stats.multitest import multipletests
counts = json.load(sys.stdin)
p = [float(proportions_ztest([a, c], [b, d])[1]) for a, b, c, d in counts]
print(json.dumps({"p": p, "bh": [float(x) for x in multipletests(p, method="fdr_bh")[1]]}))
`;
  const want = JSON.parse(execFileSync(python, ['-c', script], { input: JSON.stringify(counts), encoding: 'utf8' }));
  ['US', 'NL'].forEach((c, i) => {
    const blue = values[c].goals[0].variants[0];
    assert.ok(Math.abs(blue.p_value - want.p[i]) < 1e-9, `${c}: ${blue.p_value} vs ${want.p[i]}`);
    assert.ok(Math.abs(blue.adjusted_p_value - want.bh[i]) < 1e-9, `${c}: ${blue.adjusted_p_value} vs ${want.bh[i]}`);
  });
});

test('the dashboard breaks an experiment down by device, readable at phone width', { timeout: 60_000 }, async () => {
  const ns = 'e2e-segments';
  const name = 'checkout button';
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  try {
    await openDashboard(page, lamed, ns);
    const card = page.locator(`section[data-experiment="${name}"]`);
    await card.locator('table[data-goal="buy"]').waitFor();
    await card.locator('select[data-breakdown]').selectOption('device');
    await card.locator('[data-segments="device"]').waitFor();
    const api = await report(ns, name, 'by=device');
    for (const value of api.segments.values) {
      const cells = await card.locator(`[data-segment="${value.value}"] tr[data-variant="red"] td`).allTextContents();
      const v = value.goals[0].variants[0];
      assert.deepEqual(cells.slice(0, 3), ['red', String(v.participants), String(v.conversions)], value.value);
    }
    assert.equal(await card.locator('[data-segment] svg').count(), api.segments.values.length, 'a chart per value');
    assert.match(await card.locator('.exploratory').textContent(), /exploratory: decide on the overall result/);
    // Nothing wider than the phone's screen but the tables' own scroll boxes.
    const overflow = await page.evaluate(() => {
      const wide = [...document.querySelectorAll('body *')]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.scroll'))
        .map((e) => `${e.tagName}.${e.className}#${e.id} ${Math.round(e.getBoundingClientRect().right)}`);
      return { by: document.documentElement.scrollWidth - window.innerWidth, wide: wide.slice(0, 8) };
    });
    assert.ok(overflow.by <= 0, `the page is ${overflow.by}px wider than the screen: ${overflow.wide.join(', ')}`);
    await page.screenshot({ path: path.join(ROOT, 'target', 'dashboard-segments.png'), fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
