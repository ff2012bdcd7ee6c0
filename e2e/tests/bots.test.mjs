// Bot filtering, on by default: a visitor whose browser says it is Googlebot
// runs the experiment as any page would, and lamed answers its events 200
// `{"ignored":"bot"}`: AlephBet's queue empties (nothing is re-sent), nothing
// is counted, and /metrics counts the ignored events. A person is counted.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectCounts, getExperiments, countsOf } from '../lib/lamed.mjs';
import { experimentPage, QUEUE, GOOGLEBOT_USER_AGENT } from '../lib/browser.mjs';
import { useSuite, lamed, site, visitor } from '../lib/suite.mjs';

useSuite();

async function ignoredBots() {
  const res = await fetch(`${lamed.base}/metrics`, { headers: { 'X-Api-Key': lamed.apiKey } });
  const text = await res.text();
  const line = text.split('\n').find((l) => l.startsWith('lamed_events_ignored_total{reason="bot"}'));
  assert.ok(line, `a bot line in /metrics:\n${text}`);
  return Number(line.split(' ').pop());
}

test('Googlebot is not counted, its queue empties, and the metric shows it', { timeout: 60_000 }, async () => {
  const ns = 'alephbet'; // always listed, so "nothing counted" reads as an empty list
  const name = 'crawled experiment';
  const url = site.add(experimentPage({
    adapter: 'AlephbetAdapter', url: lamed.trackUrl, namespace: ns, name,
    variants: { red: {}, blue: {} },
    goals: [{ name: 'signup' }],
    completeOnLoad: ['signup'],
  }), 'bots');
  const before = await ignoredBots();

  const bot = await visitor({ userAgent: GOOGLEBOT_USER_AGENT });
  await bot.goto(url);
  await bot.settle({ queue: QUEUE.AlephbetAdapter });
  const sent = bot.sentEvents();
  assert.deepEqual([...new Set(sent.map((e) => e.event))].sort(), ['participate', 'signup'], JSON.stringify(sent));
  assert.ok(sent.every((e) => e.status === 200), JSON.stringify(sent));
  assert.deepEqual(countsOf(await getExperiments(lamed, { namespace: ns })), {});
  assert.equal(await ignoredBots(), before + sent.length);

  // A later page load of the crawler re-sends nothing.
  const sentBefore = bot.requests.length;
  await bot.reload();
  await bot.settle({ queue: QUEUE.AlephbetAdapter });
  assert.ok(bot.sentEvents().slice(sentBefore).every((e) => e.status === 200));
  assert.deepEqual(countsOf(await getExperiments(lamed, { namespace: ns })), {});

  // A person on the same page is counted.
  const person = await visitor();
  await person.goto(url);
  await person.settle({ queue: QUEUE.AlephbetAdapter });
  const variant = await person.storedVariant(name);
  await expectCounts(lamed, ns, { [name]: { signup: { [variant]: [1, 1] } } });
});
