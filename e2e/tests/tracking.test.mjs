// The real AlephBet client, in Chromium, on a page of another origin, against a
// real `lamed serve`: participation, goals, uniqueness, cross-device user_id,
// the Gimel and alephbet-rails adapters, and names that need encoding.
// One server for the file; every test uses its own namespace.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectCounts } from '../lib/lamed.mjs';
import { experimentPage, QUEUE } from '../lib/browser.mjs';
import { useSuite, lamed, site, visitor } from '../lib/suite.mjs';

useSuite();

const noErrors = (v) => {
  assert.deepEqual(v.pageErrors, [], 'no page errors');
  assert.deepEqual(v.consoleErrors, [], 'no console errors (e.g. CORS)');
};

test('a visitor participates and completes a goal (LamedAdapter)', { timeout: 60_000 }, async () => {
  const ns = 'e2e-basic';
  const name = 'button color';
  const url = site.add(experimentPage({
    url: lamed.trackUrl, namespace: ns, name,
    variants: { red: {}, blue: {} },
    goals: [{ name: 'checkout' }],
  }), 'basic');
  const v = await visitor();
  await v.goto(url);
  const variant = await v.page.evaluate(() => window.activeVariant);
  assert.ok(['red', 'blue'].includes(variant));
  assert.equal(await v.storedVariant(name), variant);
  // Complete the goal while the participate request may still be in flight:
  // AlephBet then re-sends the whole queue, so lamed sees duplicates.
  await v.page.evaluate(() => window.goals.checkout.complete());
  await v.settle();
  noErrors(v);

  const sent = v.sentEvents();
  assert.ok(sent.every((e) => e.status === 200 && e.path === '/track'), JSON.stringify(sent));
  const participates = sent.filter((e) => e.event === 'participate');
  assert.ok(participates.length >= 1);
  assert.equal(new Set(participates.map((e) => e.uuid)).size, 1, 'one participate uuid (re-sends reuse it)');
  assert.ok(sent.every((e) => e.experiment === name && e.variant === variant && e.namespace === ns));
  assert.ok(sent[0].rawQuery.includes('experiment=button+color'), `space sent as +: ${sent[0].rawQuery}`);

  await expectCounts(lamed, ns, { [name]: { checkout: { [variant]: [1, 1] } } });
});

test('a goal completed during page load: the re-sent participate counts once', { timeout: 60_000 }, async () => {
  // AlephBet sends every queued event again whenever it queues a new one, so a
  // goal completed before the participate answer arrived re-sends participate
  // with the same uuid: lamed must count it once.
  const ns = 'e2e-resend';
  const name = 'thank you page';
  const url = site.add(experimentPage({
    url: lamed.trackUrl, namespace: ns, name,
    variants: { red: {}, blue: {} },
    goals: [{ name: 'checkout' }],
    completeOnLoad: ['checkout'],
  }), 'resend');
  const v = await visitor();
  await v.goto(url);
  await v.settle();
  noErrors(v);
  const variant = await v.storedVariant(name);
  const participates = v.sentEvents().filter((e) => e.event === 'participate');
  assert.ok(participates.length >= 2, `participate was re-sent: ${JSON.stringify(v.sentEvents())}`);
  assert.equal(new Set(participates.map((e) => e.uuid)).size, 1);
  assert.ok(v.sentEvents().every((e) => e.status === 200));
  await expectCounts(lamed, ns, { [name]: { checkout: { [variant]: [1, 1] } } });
});

test('the default namespace is "alephbet" on both sides', { timeout: 60_000 }, async () => {
  const name = 'e2e default namespace';
  const url = site.add(experimentPage({
    url: lamed.trackUrl, name, variants: { red: {}, blue: {} }, goals: [{ name: 'signup' }],
  }), 'default-ns');
  const v = await visitor();
  await v.goto(url);
  await v.page.evaluate(() => window.goals.signup.complete());
  await v.settle();
  noErrors(v);
  const variant = await v.storedVariant(name);
  assert.ok(v.sentEvents().every((e) => e.namespace === 'alephbet'));
  await expectCounts(lamed, 'alephbet', { [name]: { signup: { [variant]: [1, 1] } } });
});

test('a reload and a repeated unique goal change nothing; a non-unique goal counts every time', { timeout: 60_000 }, async () => {
  const ns = 'e2e-unique';
  const name = 'pricing page';
  const url = site.add(experimentPage({
    url: lamed.trackUrl, namespace: ns, name,
    variants: { red: {}, blue: {} },
    goals: [{ name: 'checkout' }, { name: 'add to cart', unique: false }],
  }), 'unique');
  const v = await visitor();
  await v.goto(url);
  const variant = await v.storedVariant(name);
  await v.page.evaluate(() => window.goals.checkout.complete());
  await v.page.evaluate(() => window.goals['add to cart'].complete());
  await v.settle();
  await expectCounts(lamed, ns, { [name]: { checkout: { [variant]: [1, 1] }, 'add to cart': { [variant]: [1, 1] } } },
    { quietMs: 0 });

  const before = v.requests.length;
  await v.reload();
  assert.equal(await v.page.evaluate(() => window.activeVariant), variant, 'same variant after reload');
  await v.page.evaluate(() => window.goals.checkout.complete());
  await v.settle();
  assert.equal(v.requests.length, before, 'nothing sent for a reload and a repeated unique goal');
  await expectCounts(lamed, ns, { [name]: { checkout: { [variant]: [1, 1] }, 'add to cart': { [variant]: [1, 1] } } });

  await v.page.evaluate(() => window.goals['add to cart'].complete());
  await v.page.evaluate(() => window.goals['add to cart'].complete());
  await v.settle();
  noErrors(v);
  const cartUuids = new Set(v.sentEvents().filter((e) => e.event === 'add to cart').map((e) => e.uuid));
  assert.equal(cartUuids.size, 3, 'a non-unique goal gets a fresh uuid each time');
  await expectCounts(lamed, ns, { [name]: { checkout: { [variant]: [1, 1] }, 'add to cart': { [variant]: [3, 1] } } });
});

test('cross-device: the same user_id in two browser contexts counts once', { timeout: 60_000 }, async () => {
  const ns = 'e2e-cross-device';
  const name = 'cross device';
  const page = (userId) => site.add(experimentPage({
    url: lamed.trackUrl, namespace: ns, name, userId,
    variants: { red: {}, blue: {} },
    goals: [{ name: 'checkout' }, { name: 'page view', unique: false }],
  }), 'cross-device');
  const laptop = await visitor();
  const phone = await visitor({ userAgent: 'Mozilla/5.0 (Linux; Android 14) Mobile' });
  const user42 = page('user-42');

  await laptop.goto(user42);
  await laptop.page.evaluate(() => { window.goals.checkout.complete(); window.goals['page view'].complete(); });
  await laptop.settle();
  await phone.goto(user42);
  await phone.page.evaluate(() => { window.goals.checkout.complete(); window.goals['page view'].complete(); });
  await phone.settle();
  noErrors(laptop);
  noErrors(phone);

  const variant = await laptop.storedVariant(name);
  assert.equal(await phone.storedVariant(name), variant, 'user_id picks the same variant on every device');
  const uuids = (v, event) => [...new Set(v.sentEvents().filter((e) => e.event === event).map((e) => e.uuid))];
  assert.deepEqual(uuids(laptop, 'participate'), uuids(phone, 'participate'));
  assert.deepEqual(uuids(laptop, 'checkout'), uuids(phone, 'checkout'));
  assert.notDeepEqual(uuids(laptop, 'page view'), uuids(phone, 'page view'));

  // One participant, one checkout; the non-unique goal counts on both devices.
  const expected = { [name]: { checkout: { [variant]: [1, 1] }, 'page view': { [variant]: [2, 1] } } };
  await expectCounts(lamed, ns, expected);

  // Another user on the phone (storage cleared, as a different person) is a second participant.
  await phone.clearStorage();
  await phone.goto(page('user-43'));
  await phone.page.evaluate(() => window.goals.checkout.complete());
  await phone.settle();
  const other = await phone.storedVariant(name);
  const add = (cell, s, t) => [(cell?.[0] ?? 0) + s, (cell?.[1] ?? 0) + t];
  expected[name].checkout[other] = add(expected[name].checkout[other], 1, 1);
  expected[name]['page view'][other] = add(expected[name]['page view'][other], 0, 1);
  await expectCounts(lamed, ns, expected);
});

test('GimelAdapter (with cross-device user_id) works against /track', { timeout: 60_000 }, async () => {
  const ns = 'e2e-gimel';
  const name = 'gimel experiment';
  const url = site.add(experimentPage({
    adapter: 'GimelAdapter', url: lamed.trackUrl, namespace: ns, name, userId: 'gimel-user-7',
    variants: { red: {}, blue: {} },
    goals: [{ name: 'checkout' }],
  }), 'gimel');
  const a = await visitor();
  const b = await visitor();
  for (const v of [a, b]) {
    await v.goto(url);
    await v.page.evaluate(() => window.goals.checkout.complete());
    await v.settle({ queue: QUEUE.GimelAdapter });
    noErrors(v);
  }
  const variant = await a.storedVariant(name);
  assert.equal(await b.storedVariant(name), variant);
  // Gimel's uuid is the same for participate and the goal of one user.
  const uuids = new Set([...a.sentEvents(), ...b.sentEvents()].map((e) => e.uuid));
  assert.equal(uuids.size, 1);
  await expectCounts(lamed, ns, { [name]: { checkout: { [variant]: [1, 1] } } });
});

test('AlephbetAdapter (alephbet-rails) works against /event', { timeout: 60_000 }, async () => {
  const ns = 'e2e-rails';
  const name = 'rails experiment';
  const url = site.add(experimentPage({
    adapter: 'AlephbetAdapter', url: `${lamed.base}/event`, namespace: ns, name,
    variants: { red: {}, blue: {} },
    goals: [{ name: 'checkout' }, { name: 'newsletter' }],
  }), 'rails');
  const v = await visitor();
  await v.goto(url);
  await v.page.evaluate(() => window.goals.checkout.complete());
  await v.settle({ queue: QUEUE.AlephbetAdapter });
  noErrors(v);
  const variant = await v.storedVariant(name);
  const sent = v.sentEvents();
  assert.ok(sent.length >= 2 && sent.every((e) => e.path === '/event' && e.status === 200), JSON.stringify(sent));
  await expectCounts(lamed, ns, { [name]: { checkout: { [variant]: [1, 1] } } });
});

test('names with spaces, + & : quotes, Hebrew and emoji survive the round trip', { timeout: 60_000 }, async () => {
  const ns = 'e2e-names';
  const name = 'checkout: "Big" + small & co \'quoted\' — עגלת קניות 🛒 50% a=b/c?d#e';
  const variantA = 'כחול "blue" & co';
  const variantB = 'red + green: 100% \'on\'';
  const goal = 'buy now! a+b & c:d "q" קנה';
  const url = site.add(experimentPage({
    url: lamed.trackUrl, namespace: ns, name,
    variants: { [variantA]: {}, [variantB]: {} },
    goals: [{ name: goal }],
  }), 'names');
  const v = await visitor();
  await v.goto(url);
  await v.page.evaluate((g) => window.goals[g].complete(), goal);
  await v.settle();
  noErrors(v);
  const variant = await v.storedVariant(name);
  assert.ok([variantA, variantB].includes(variant));

  // The client sent what the wire contract says: encodeURIComponent with %20 -> +.
  const sent = v.sentEvents();
  const raw = sent.find((e) => e.event === goal).rawQuery;
  assert.ok(raw.includes('+%2B+'), `space as +, plus as %2B: ${raw}`);
  assert.ok(raw.includes('%D7%A2%D7%92%D7%9C%D7%AA'), `Hebrew as UTF-8 percent-encoding: ${raw}`);
  assert.ok(sent.every((e) => e.experiment === name && e.variant === variant));

  await expectCounts(lamed, ns, { [name]: { [goal]: { [variant]: [1, 1] } } });
});

test('a dashboard on another origin reads /experiments with X-Api-Key (CORS preflight)', { timeout: 60_000 }, async () => {
  const url = site.add('<!doctype html><html><head><meta charset="utf-8"></head><body>dashboard</body></html>', 'dashboard');
  const v = await visitor();
  await v.goto(url);
  // A custom header: the browser must get an OPTIONS preflight through first.
  const result = await v.page.evaluate(async ({ base, key }) => {
    const res = await fetch(`${base}/experiments?namespace=e2e-basic`, { headers: { 'X-Api-Key': key } });
    return { status: res.status, body: await res.json() };
  }, { base: lamed.base, key: lamed.apiKey });
  assert.equal(result.status, 200);
  assert.deepEqual(result.body[0], { meta: { scope: null } });
  assert.ok(result.body.some((e) => e.experiment === 'button color'), JSON.stringify(result.body));
  noErrors(v);
});
