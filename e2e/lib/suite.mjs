// One test file's fixture: a `lamed serve`, the page site on a second origin
// and Chromium, started before the file's tests and stopped after them (also
// when a test fails), with every visitor a test opened closed first.
//
// The bindings are live: a file imports `lamed`, `site`, `browser` and
// `visitors` and sees them set once `useSuite()`'s `before` hook has run.

import { before, after } from 'node:test';
import { startLamed, removeWorkDir } from './lamed.mjs';
import { ALEPHBET_CDN_URL, ALEPHBET_DIST, launchBrowser, startSite, Visitor } from './browser.mjs';

export let lamed;
export let site;
export let browser;
export const visitors = [];

/**
 * Registers the hooks. `lamed` takes `startLamed`'s options, or false for a
 * file that runs its own server; `site: false` skips the page site; `setup`
 * runs once everything is started (a file's own top-level `before` hook may
 * run before this one's has finished).
 */
export function useSuite({ lamed: lamedOptions = {}, site: withSite = true, setup, timeout = 60_000 } = {}) {
  before(async () => {
    if (lamedOptions !== false) lamed = await startLamed(lamedOptions);
    if (withSite) site = await startSite();
    browser = await launchBrowser();
    await setup?.();
  }, { timeout });

  after(async () => {
    for (const v of visitors) await v.close().catch(() => {});
    await browser?.close().catch(() => {});
    await site?.close();
    await lamed?.stop();
    await removeWorkDir(lamed?.work);
  }, { timeout: 60_000 });
}

/** Opens a visitor against `server` (the suite's lamed unless given). */
export async function visitor(contextOptions, server = lamed) {
  const v = await Visitor.open(browser, server.base, contextOptions);
  visitors.push(v);
  return v;
}

/**
 * A visitor whose browser gets AlephBet from node_modules when a page loads
 * it from the CDN URL the printed snippets use (there is no internet here).
 */
export async function cdnVisitor(server = lamed) {
  const v = await visitor(undefined, server);
  await v.context.route(ALEPHBET_CDN_URL, (route) => route.fulfill({
    status: 200,
    path: ALEPHBET_DIST,
    headers: { 'Content-Type': 'application/javascript; charset=utf-8', 'Access-Control-Allow-Origin': '*' },
  }));
  return v;
}
