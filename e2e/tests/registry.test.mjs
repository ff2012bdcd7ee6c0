// The experiment registry with the real AlephBet client: pausing and stopping
// an experiment from the built-in dashboard (buttons and confirmations, in
// Chromium) stops its counting, AlephBet drops the ignored events from its
// queue (lamed answers them 200 {"ignored": reason}) and never re-sends them;
// a stopped experiment's report stays frozen with its winner; with
// `--registration required` an unregistered experiment counts nothing until
// it is registered.
//
// The report of a registered experiment answers 400 while one of its
// registered variants has no participant yet (its control or weights name a
// variant the counts lack), so the stop test brings visitors until both
// variants have one.
//
// The visitors use AlephbetAdapter (the one the snippet uses): it is the one
// that re-sends its stored queue on every page load, so a leftover event
// would show as a request on the next load.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLamed, removeWorkDir, expectCounts } from '../lib/lamed.mjs';
import { experimentPage, QUEUE, openDashboard } from '../lib/browser.mjs';
import { useSuite, lamed, site, browser, visitor } from '../lib/suite.mjs';

useSuite();

const here = path.dirname(fileURLToPath(import.meta.url));
const SCREENSHOT = path.resolve(here, '../../target/dashboard-stop.png');

const QUEUE_NAME = QUEUE.AlephbetAdapter;

/** Calls lamed's API with the key; returns {status, body}. */
async function call(server, method, route, body) {
  const res = await fetch(`${server.base}${route}`, {
    method,
    headers: { 'X-Api-Key': server.apiKey, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed = null;
  try { parsed = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body: parsed, text };
}

const apiPath = (ns, name, suffix = '') => `/api/experiments/${encodeURIComponent(name)}${suffix}?namespace=${encodeURIComponent(ns)}`;

async function record(server, ns, name) {
  const { status, body, text } = await call(server, 'GET', apiPath(ns, name));
  assert.equal(status, 200, text);
  return body;
}

async function report(server, ns, name) {
  const { status, body, text } = await call(server, 'GET', apiPath(ns, name, '/report'));
  assert.equal(status, 200, text);
  return body;
}

/** A report's counts, as {variant: participants} and {goal: {variant: [successes, trials]}}. */
function reportCounts(r) {
  const participants = Object.fromEntries(r.variants.map((v) => [v.label, v.participants]));
  const goals = Object.fromEntries(r.goals.map((g) => [g.goal,
    Object.fromEntries((g.analysis?.variants ?? []).map((v) => [v.label, [v.successes, v.trials]]))]));
  return { participants, goals };
}

// Wraps the page's fetch (AlephBet sends with keepalive fetch, whose bodies
// the browser's network events do not give) to keep every answer it read.
const RECORD_ANSWERS = `(() => {
  const send = window.fetch;
  window.__answers = [];
  window.fetch = function (input, init) {
    const sent = send.apply(this, arguments);
    sent.then((r) => r.clone().text()
      .then((text) => window.__answers.push({ url: String(input && input.url || input), status: r.status, text })))
      .catch(() => {});
    return sent;
  };
})();`;

/** A visitor whose page records the answers lamed gave it (see participateAndBuy). */
async function trackingVisitor(server = lamed) {
  const v = await visitor(undefined, server);
  await v.context.addInitScript(RECORD_ANSWERS);
  v.base = server.base;
  return v;
}

/**
 * Loads the page, completes `checkout`, waits until AlephBet's queue is
 * empty; sets `v.answers` ([{event, status, body}] of this page load) and
 * returns the visitor's variant.
 */
async function participateAndBuy(v, url, name) {
  const first = v.requests.length;
  await v.goto(url);
  await v.page.evaluate(() => window.goals.checkout.complete());
  await v.settle({ queue: QUEUE_NAME });
  assert.deepEqual(v.pageErrors, [], 'no page errors');
  assert.deepEqual(v.consoleErrors, [], 'no console errors');
  const sent = v.requests.length - first;
  let answers = [];
  for (let i = 0; i < 100; i++) {
    answers = (await v.page.evaluate(() => window.__answers)).filter((a) => a.url.startsWith(`${v.base}/`));
    if (answers.length >= sent) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.equal(answers.length, sent, `the page read an answer to each of its ${sent} requests`);
  v.answers = answers.map((a) => {
    let body;
    try { body = JSON.parse(a.text); } catch { body = a.text; }
    return { event: new URL(a.url).searchParams.get('event'), status: a.status, body };
  });
  return v.storedVariant(name);
}

/**
 * After a reload, the page sends nothing: no leftover event in AlephBet's
 * queue is re-sent (AlephbetAdapter re-sends its queue on load).
 */
async function expectNoResend(v) {
  const before = v.requests.length;
  await v.reload();
  await v.settle({ queue: QUEUE_NAME, quietMs: 500 });
  assert.deepEqual(v.sentEvents().slice(before), [], 'nothing re-sent on a later page load');
  assert.deepEqual(await v.queue(QUEUE_NAME), [], 'queue still empty');
}

/** Every answer lamed gave the page is 200 {"ignored": reason}, for participate and checkout. */
function expectAllIgnored(v, reason) {
  const events = v.answers.map((a) => a.event);
  assert.ok(events.includes('participate') && events.includes('checkout'), `both events sent: ${JSON.stringify(v.answers)}`);
  for (const a of v.answers) {
    assert.equal(a.status, 200, JSON.stringify(v.answers));
    assert.deepEqual(a.body, { ignored: reason }, JSON.stringify(v.answers));
  }
}

/** The dashboard in its own browser context, opened on `ns` with the key entered. */
async function dashboardSession(server, ns) {
  const context = await browser.newContext({ viewport: { width: 1300, height: 1000 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  // Console errors include Content-Security-Policy refusals.
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await openDashboard(page, server, ns);
  return { context, page, errors };
}

const card = (page, name) => page.locator(`section[data-experiment="${name}"]`);

test('pausing in the dashboard stops counting; AlephBet drops the ignored events', { timeout: 60_000 }, async () => {
  const ns = 'e2e-pause';
  const name = 'pause me';
  const url = site.add(experimentPage({
    adapter: 'AlephbetAdapter', url: lamed.trackUrl, namespace: ns, name,
    variants: { red: {}, blue: {} }, goals: [{ name: 'checkout' }],
  }), 'pause');

  // Open mode: the first visitor creates the experiment and is counted.
  const a = await trackingVisitor();
  const variantA = await participateAndBuy(a, url, name);
  assert.ok(a.answers.length >= 2 && a.answers.every((x) => x.status === 200 && !('ignored' in x.body)), JSON.stringify(a.answers));
  const counted = { [name]: { checkout: { [variantA]: [1, 1] } } };
  await expectCounts(lamed, ns, counted, { quietMs: 0 });
  assert.equal((await record(lamed, ns, name)).status, 'running');

  const { context, page, errors } = await dashboardSession(lamed, ns);
  const exp = card(page, name);
  await exp.locator('.badge[data-status="running"]').waitFor();
  // The badge shows before the report and its toolbar: wait for the buttons.
  await exp.locator('button[data-action="pause"]').waitFor();
  assert.equal(await exp.locator('button[data-action="resume"]').count(), 0, 'no Resume while running');

  // Dismissing the confirmation changes nothing.
  page.once('dialog', (d) => d.dismiss());
  await exp.locator('button[data-action="pause"]').click();
  await page.waitForTimeout(300);
  assert.equal((await record(lamed, ns, name)).status, 'running', 'dismissed: still running');

  let message = '';
  page.once('dialog', (d) => { message = d.message(); d.accept(); });
  await exp.locator('button[data-action="pause"]').click();
  await exp.locator('.badge[data-status="paused"]').waitFor();
  assert.match(message, /Pause experiment "pause me"/);
  const paused = await record(lamed, ns, name);
  assert.equal(paused.status, 'paused');
  assert.equal(typeof paused.paused_ms, 'number');
  await exp.locator('button[data-action="resume"]').waitFor();
  assert.equal(await exp.locator('button[data-action="resume"]').count(), 1, 'Resume offered');
  assert.equal(await exp.locator('button[data-action="pause"]').count(), 0, 'no Pause while paused');

  // A new visitor: both events answered 200 {"ignored":"paused"}, dropped from
  // the queue, not counted, and not re-sent on the next load.
  const b = await trackingVisitor();
  await participateAndBuy(b, url, name);
  expectAllIgnored(b, 'paused');
  await expectNoResend(b);
  await expectCounts(lamed, ns, counted);
  assert.deepEqual(reportCounts(await report(lamed, ns, name)).participants, { [variantA]: 1 });

  // The dashboard's "Most ignored" panel names it.
  await page.reload();
  const row = page.locator(`#ignored tr[data-experiment="${name}"][data-reason="paused"]`);
  await row.waitFor();
  const cells = await row.locator('td').allTextContents();
  assert.equal(cells[0], name);
  assert.ok(Number(cells[2]) >= 2, `at least participate and checkout ignored: ${cells}`);

  // Resume (from the dashboard): a third visitor counts again.
  page.once('dialog', (d) => d.accept());
  await card(page, name).locator('button[data-action="resume"]').click();
  await card(page, name).locator('.badge[data-status="running"]').waitFor();
  const c = await trackingVisitor();
  const variantC = await participateAndBuy(c, url, name);
  assert.ok(c.answers.every((x) => x.status === 200 && !('ignored' in x.body)), JSON.stringify(c.answers));
  const after = { [variantA]: [1, 1] };
  after[variantC] = [(after[variantC]?.[0] ?? 0) + 1, (after[variantC]?.[1] ?? 0) + 1];
  await expectCounts(lamed, ns, { [name]: { checkout: after } });
  assert.deepEqual(errors, []);
  await context.close();
});

test('stopping with a winner in the dashboard freezes the report', { timeout: 60_000 }, async () => {
  const ns = 'e2e-stop';
  const name = 'stop me';
  const put = await call(lamed, 'PUT', apiPath(ns, name), {
    description: 'Does a blue button sell more?', variants: ['red', 'blue'], control: 'red', goals: ['checkout'],
  });
  assert.equal(put.status, 201, put.text);
  const url = site.add(experimentPage({
    adapter: 'AlephbetAdapter', url: lamed.trackUrl, namespace: ns, name,
    variants: { red: {}, blue: {} }, goals: [{ name: 'checkout' }],
  }), 'stop');

  // Visitors until both variants have one: a report needs every registered
  // variant to have participants (see the note at the top).
  const expected = {};
  for (let i = 0; i < 12 && Object.keys(expected).length < 2; i++) {
    const v = await trackingVisitor();
    const variant = await participateAndBuy(v, url, name);
    expected[variant] = [(expected[variant]?.[0] ?? 0) + 1, (expected[variant]?.[1] ?? 0) + 1];
  }
  await expectCounts(lamed, ns, { [name]: { checkout: expected } }, { quietMs: 0 });
  const before = reportCounts(await report(lamed, ns, name));

  const { context, page, errors } = await dashboardSession(lamed, ns);
  const exp = card(page, name);
  await exp.locator('table[data-goal="checkout"]').waitFor();
  assert.equal(await exp.locator('.description').textContent(), 'Does a blue button sell more?');

  // Cancelling the stop dialog changes nothing.
  await exp.locator('button[data-action="stop"]').click();
  const dialog = page.locator('#stop-dialog');
  await dialog.waitFor({ state: 'visible' });
  assert.deepEqual(await page.locator('#stop-winner option').allTextContents(), ['no winner', 'red', 'blue']);
  await page.click('#stop-cancel');
  await dialog.waitFor({ state: 'hidden' });
  await page.waitForTimeout(200);
  assert.equal((await record(lamed, ns, name)).status, 'running', 'cancelled: still running');

  // Stop with blue as the winner and a note.
  await exp.locator('button[data-action="stop"]').click();
  await dialog.waitFor({ state: 'visible' });
  await page.selectOption('#stop-winner', 'blue');
  await page.fill('#stop-note', 'blue sells more');
  await page.screenshot({ path: SCREENSHOT });
  await page.click('#stop-form button[type=submit]');
  await exp.locator('.badge[data-status="stopped"]').waitFor();
  assert.equal(await exp.locator('.badge.winner').textContent(), 'winner: blue');
  const stopped = await record(lamed, ns, name);
  assert.equal(stopped.status, 'stopped');
  assert.equal(stopped.decision.winner, 'blue');
  assert.equal(stopped.decision.note, 'blue sells more');
  // Only Archive is left for a stopped experiment (once the toolbar is drawn).
  await exp.locator('button[data-action="archive"]').waitFor();
  assert.deepEqual(await exp.locator('button[data-action]').evaluateAll((bs) => bs.map((b) => b.dataset.action)), ['archive']);

  // Later visitors are ignored; the report stays as it was at the stop.
  const late = await trackingVisitor();
  await participateAndBuy(late, url, name);
  expectAllIgnored(late, 'stopped');
  await expectNoResend(late);
  await expectCounts(lamed, ns, { [name]: { checkout: expected } });
  const frozen = await report(lamed, ns, name);
  assert.deepEqual(reportCounts(frozen), before, 'report counts frozen at the stop');
  assert.equal(frozen.record.status, 'stopped');
  assert.equal(frozen.record.decision.winner, 'blue');

  // A fresh dashboard still shows the winner; the default filter hides it once archived.
  await page.reload();
  await exp.locator('table[data-goal="checkout"]').waitFor();
  assert.equal(await exp.locator('.badge.winner').textContent(), 'winner: blue');
  assert.match(await exp.locator('.decision').textContent(), /blue sells more/);
  page.once('dialog', (d) => d.accept());
  await exp.locator('button[data-action="archive"]').click();
  await page.locator('#status', { hasText: `${name} is now archived.` }).waitFor();
  assert.equal(await exp.count(), 0, 'archived: hidden by the default filter');
  await page.selectOption('#status-filter', 'archived');
  await exp.locator('.badge[data-status="archived"]').waitFor();
  assert.equal(await exp.locator('.badge.winner').textContent(), 'winner: blue');
  assert.deepEqual(errors, []);
  await context.close();
});

test('--registration required: an unregistered experiment counts only once registered', { timeout: 60_000 }, async () => {
  const server = await startLamed({ serveArgs: ['--registration', 'required'] });
  try {
    const ns = 'e2e-required';
    const name = 'needs registration';
    const url = site.add(experimentPage({
      adapter: 'AlephbetAdapter', url: server.trackUrl, namespace: ns, name,
      variants: { red: {}, blue: {} }, goals: [{ name: 'checkout' }],
    }), 'required');

    const a = await trackingVisitor(server);
    await participateAndBuy(a, url, name);
    expectAllIgnored(a, 'unregistered');
    await expectNoResend(a);
    // Nothing stored: no counts, no record, no report.
    assert.equal((await call(server, 'GET', `/experiments?namespace=${ns}`)).status, 404);
    assert.deepEqual((await call(server, 'GET', `/api/experiments?namespace=${ns}&status=all`)).body, []);
    assert.equal((await call(server, 'GET', apiPath(ns, name, '/report'))).status, 404);
    const ignored = await call(server, 'GET', `/api/ignored?namespace=${ns}`);
    const row = ignored.body.top.find((r) => r.experiment === name);
    assert.equal(row?.reason, 'unregistered', ignored.text);
    assert.ok(row.events >= 2, ignored.text);

    const put = await call(server, 'PUT', apiPath(ns, name), { variants: ['red', 'blue'], goals: ['checkout'] });
    assert.equal(put.status, 201, put.text);
    assert.equal(put.body.automatic, false);

    const b = await trackingVisitor(server);
    const variantB = await participateAndBuy(b, url, name);
    assert.ok(b.answers.length >= 2 && b.answers.every((x) => x.status === 200 && !('ignored' in x.body)), JSON.stringify(b.answers));
    await expectCounts(server, ns, { [name]: { checkout: { [variantB]: [1, 1] } } });
  } finally {
    await server.stop();
    await removeWorkDir(server.work);
  }
});
