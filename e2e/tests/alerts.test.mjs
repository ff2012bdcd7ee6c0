// The dashboard's alert badges, driven in Chromium: a seeded sample-ratio
// mismatch raises an alert (sent to a local webhook receiver), and the
// dashboard shows it as a badge on that experiment's card only.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { sleep } from '../lib/lamed.mjs';
import { openDashboard } from '../lib/browser.mjs';
import { useSuite, lamed, browser } from '../lib/suite.mjs';

const NS = 'shop';
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

// The endpoint lamed sends alerts to (the signatures are checked by the
// Rust tests, with the reference verifier): here it only records types.
const received = [];
const receiver = http.createServer((req, res) => {
  let body = '';
  req.on('data', (d) => { body += d; });
  req.on('end', () => {
    received.push(JSON.parse(body));
    res.writeHead(200).end();
  });
});
await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
receiver.unref();
after(() => receiver.close());

/** Participations of one variant, in one POST batch. */
async function participants(experiment, variant, count) {
  const events = Array.from({ length: count }, (_, i) => ({
    namespace: NS, experiment, variant, event: 'participate', uuid: `${experiment}-${variant}-${i}`,
  }));
  const res = await fetch(`${lamed.base}/track`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(events),
  });
  assert.equal(res.status, 200, await res.text());
}

useSuite({
  site: false,
  timeout: 120_000,
  lamed: {
    serveArgs: [
      '--webhook-url', `http://127.0.0.1:${receiver.address().port}/hook`,
      '--webhook-secret', SECRET,
      '--alert-check-seconds', '1',
    ],
  },
  setup: async () => {
    // 600 against 800 on an even split (p ≈ 1e-6); 500 against 500.
    await participants('split', 'a', 600);
    await participants('split', 'b', 800);
    await participants('even', 'a', 500);
    await participants('even', 'b', 500);
  },
});

test('an open alert shows as a badge on its experiment only', { timeout: 60_000 }, async () => {
  for (let i = 0; i < 100 && !received.some((r) => r.type === 'experiment.srm'); i++) await sleep(100);
  assert.deepEqual(received.map((r) => [r.type, r.data.experiment]), [['experiment.srm', 'split']]);

  const page = await (await browser.newContext()).newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await openDashboard(page, lamed, NS);
  const badge = page.locator('section[data-experiment="split"] .badge.alert[data-alert="srm"]');
  await badge.waitFor();
  assert.equal(await badge.textContent(), 'split mismatch');
  assert.match(await badge.getAttribute('title'), /do not match the configured split/);
  await page.locator('section[data-experiment="even"] h2 .badge.running').waitFor();
  assert.equal(await page.locator('section[data-experiment="even"] .badge.alert').count(), 0);
  assert.deepEqual(errors, []);
});
