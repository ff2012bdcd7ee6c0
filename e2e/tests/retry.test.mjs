// AlephBet's retry queue against a server that is down and comes back: events
// that could not be delivered stay in localStorage and are re-sent; lamed,
// restarted on the same port and data dir, counts them once.
//
// alephbet 0.27.0 re-sends the stored queue on page load only for the base
// AlephbetAdapter: LamedAdapter and GimelAdapter set their `queue_name` class
// field after the base constructor already read (and flushed) the queue stored
// under "_alephbet_queue", so on load they start with an empty queue and their
// stored undelivered events are only re-sent within the same page, when the
// next event is tracked. Both paths are tested here.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startLamed, removeWorkDir, expectCounts, getExperiments, countsOf } from '../lib/lamed.mjs';
import { experimentPage, QUEUE } from '../lib/browser.mjs';
import { useSuite, site, visitor as openVisitor } from '../lib/suite.mjs';

let lamed; // the server currently running (or last stopped): restarted on one port and data dir
let work;

useSuite({ lamed: false });

after(async () => {
  await lamed?.stop();
  await removeWorkDir(work);
}, { timeout: 60_000 });

const visitor = () => openVisitor(undefined, lamed);

async function portIsClosed(base) {
  try {
    await fetch(`${base}/health`);
    return false;
  } catch (e) {
    return e.cause?.code === 'ECONNREFUSED';
  }
}

const add = (cell, s, t) => [(cell?.[0] ?? 0) + s, (cell?.[1] ?? 0) + t];

test('events queued while the server is down are delivered on the next page load, once', { timeout: 60_000 }, async () => {
  const ns = 'e2e-retry';
  const name = 'retry experiment';
  const queueName = QUEUE.AlephbetAdapter;
  lamed = await startLamed();
  work = lamed.work;
  const { port, apiKey, trackUrl } = lamed;
  const url = site.add(experimentPage({
    adapter: 'AlephbetAdapter', url: trackUrl, namespace: ns, name,
    variants: { red: {}, blue: {} },
    goals: [{ name: 'checkout' }],
  }), 'retry');

  // Visitor A is counted while the server is up.
  const a = await visitor();
  await a.goto(url);
  await a.page.evaluate(() => window.goals.checkout.complete());
  await a.settle({ queue: queueName });
  const variantA = await a.storedVariant(name);
  const expected = { [name]: { checkout: { [variantA]: [1, 1] } } };
  await expectCounts(lamed, ns, expected, { quietMs: 0 });

  // The server goes away: the port is closed.
  const exit = await lamed.stop('SIGTERM');
  assert.equal(exit.code, 0, `graceful stop exits 0: ${JSON.stringify(exit)}\n${lamed.stderr}`);
  assert.ok(await portIsClosed(lamed.base), 'port closed after stop');

  // Visitor B participates and completes the goal: nothing can be delivered.
  const b = await visitor();
  await b.goto(url);
  await b.page.evaluate(() => window.goals.checkout.complete());
  let queue = await b.settle({ queue: queueName, queueEmpty: false });
  const variantB = await b.storedVariant(name);
  assert.deepEqual(queue.map((e) => e.properties.event).sort(), ['checkout', 'participate'], JSON.stringify(queue));
  assert.ok(b.requests.length >= 2 && b.requests.every((r) => r.failure && r.status === null),
    `every request failed: ${JSON.stringify(b.sentEvents())}`);

  // A reload while still down re-sends the queue, which fails again and stays.
  const failedBefore = b.requests.length;
  await b.reload();
  queue = await b.settle({ queue: queueName, queueEmpty: false });
  assert.equal(queue.length, 2, 'queue kept');
  assert.equal(b.requests.length - failedBefore, 2, 'the two queued events were re-sent on load');

  // Same port, same data dir, same key.
  lamed = await startLamed({ port, work, apiKey });
  await expectCounts(lamed, ns, expected, { quietMs: 0 }); // A survived the restart; B not here yet

  // (Failed fetches were unhandled rejections in the page; none from here on.)
  const errorsBefore = b.pageErrors.length;
  const sentBefore = b.requests.length;
  await b.reload();
  queue = await b.settle({ queue: queueName });
  assert.deepEqual(queue, []);
  const resent = b.sentEvents().slice(sentBefore);
  assert.deepEqual(resent.map((e) => e.event).sort(), ['checkout', 'participate'], JSON.stringify(resent));
  assert.ok(resent.every((e) => e.status === 200 && e.variant === variantB));
  assert.deepEqual(b.pageErrors.slice(errorsBefore), []);

  expected[name].checkout[variantB] = add(expected[name].checkout[variantB], 1, 1);
  await expectCounts(lamed, ns, expected);

  // Nothing is left to send: another load sends nothing and changes nothing.
  const sentAfter = b.requests.length;
  await b.reload();
  await b.settle({ queue: queueName });
  assert.equal(b.requests.length, sentAfter, 'nothing re-sent once delivered');
  await expectCounts(lamed, ns, expected);
});

test('LamedAdapter re-sends its undelivered events with the next event of the page, once', { timeout: 60_000 }, async () => {
  const ns = 'e2e-retry-lamed';
  const name = 'retry in page';
  const { port, apiKey, trackUrl } = lamed;
  const url = site.add(experimentPage({
    url: trackUrl, namespace: ns, name,
    variants: { red: {}, blue: {} },
    goals: [{ name: 'checkout' }, { name: 'click', unique: false }],
  }), 'retry-lamed');

  await lamed.stop('SIGTERM');
  assert.ok(await portIsClosed(lamed.base), 'port closed after stop');
  const c = await visitor();
  await c.goto(url);
  await c.page.evaluate(() => window.goals.checkout.complete());
  let queue = await c.settle({ queueEmpty: false });
  assert.deepEqual(queue.map((e) => e.properties.event).sort(), ['checkout', 'participate']);
  const variant = await c.storedVariant(name);

  lamed = await startLamed({ port, work, apiKey });
  const sentBefore = c.requests.length;
  await c.page.evaluate(() => window.goals.click.complete());
  queue = await c.settle();
  assert.deepEqual(queue, []);
  const resent = c.sentEvents().slice(sentBefore);
  assert.deepEqual(resent.map((e) => e.event).sort(), ['checkout', 'click', 'participate'], JSON.stringify(resent));
  assert.ok(resent.every((e) => e.status === 200));
  await expectCounts(lamed, ns, { [name]: { checkout: { [variant]: [1, 1] }, click: { [variant]: [1, 1] } } });
});

test('counts acknowledged with 200 survive kill -9 of the server', { timeout: 60_000 }, async () => {
  const ns = 'e2e-retry';
  const counted = countsOf(await getExperiments(lamed, { namespace: ns }));
  assert.ok(Object.keys(counted).length > 0, 'the previous test counted something');
  const { port, apiKey } = lamed;
  const exit = await lamed.stop('SIGKILL');
  assert.equal(exit.signal, 'SIGKILL');
  lamed = await startLamed({ port, work, apiKey });
  await expectCounts(lamed, ns, counted, { quietMs: 0 });
});
