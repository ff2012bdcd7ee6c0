// The browser side of the e2e tests: a second origin serving the test pages and
// AlephBet's dist file, Debian's Chromium driven by playwright-core, and a
// "visitor" (one browser context) that knows when AlephBet's requests settled.

import http from 'node:http';
import https from 'node:https';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import { sleep } from './lamed.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

export const ALEPHBET_DIST = require.resolve('alephbet/dist/alephbet.min.js', { paths: [path.resolve(here, '..')] });
export const ALEPHBET_CDN_URL = 'https://cdn.jsdelivr.net/npm/alephbet@0.27.0/dist/alephbet.min.js';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync',
];

export async function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

/**
 * The "customer site": a tiny HTTP server on its own 127.0.0.1 port (so a
 * different origin than lamed) serving registered pages and /alephbet.min.js.
 * With `tls` ({key, cert}: PEM) it serves HTTPS.
 */
export async function startSite({ tls } = {}) {
  const alephbet = await readFile(ALEPHBET_DIST);
  const pages = new Map();
  const server = (tls ? https.createServer.bind(null, tls) : http.createServer)((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/alephbet.min.js') {
      res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(alephbet);
    } else if (url.pathname === '/favicon.ico') {
      res.writeHead(204, { 'Cache-Control': 'max-age=3600' });
      res.end();
    } else if (pages.has(url.pathname)) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(pages.get(url.pathname));
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found');
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const origin = `${tls ? 'https' : 'http'}://127.0.0.1:${server.address().port}`;
  let n = 0;
  return {
    origin,
    /** Serve `html` at a fresh path; returns its URL. */
    add(html, name = 'page') {
      const p = `/${name.replace(/[^a-z0-9-]/gi, '_')}-${++n}.html`;
      pages.set(p, html);
      return origin + p;
    },
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); }),
  };
}

/** JSON that is safe inside an inline <script>. */
const scriptJson = (v) => JSON.stringify(v)
  .replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

/**
 * A page as a site would write it: loads AlephBet, sets up one experiment with
 * its goals at load time. Exposes window.experiment, window.goals[name] and
 * window.activeVariant (set by the chosen variant's activate()).
 *
 * cfg: {adapter: 'LamedAdapter'|'GimelAdapter'|'AlephbetAdapter', url, namespace,
 *       name, variants: {red: {}, blue: {weight: 20}}, userId, goals: [{name, unique}],
 *       completeOnLoad: [goal names completed right after the setup, in the same script]}
 */
export function experimentPage(cfg) {
  const c = { adapter: 'LamedAdapter', goals: [], ...cfg };
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>lamed e2e</title>
<script src="/alephbet.min.js"></script>
</head><body>
<h1 id="headline">Hello</h1>
<script>
(function () {
  var cfg = ${scriptJson(c)};
  var adapter = cfg.namespace === undefined
    ? new AlephBet[cfg.adapter](cfg.url)
    : new AlephBet[cfg.adapter](cfg.url, cfg.namespace);
  var variants = {};
  Object.keys(cfg.variants).forEach(function (name) {
    var v = Object.assign({}, cfg.variants[name]);
    v.activate = function () {
      window.activeVariant = name;
      document.getElementById('headline').textContent = name;
    };
    variants[name] = v;
  });
  var options = {name: cfg.name, variants: variants, tracking_adapter: adapter};
  if (cfg.userId) options.user_id = cfg.userId;
  window.experiment = new AlephBet.Experiment(options);
  window.goals = {};
  cfg.goals.forEach(function (g) {
    var goal = new AlephBet.Goal(g.name, g.unique === undefined ? {} : {unique: g.unique});
    window.experiment.add_goal(goal);
    window.goals[g.name] = goal;
  });
  (cfg.completeOnLoad || []).forEach(function (name) { window.goals[name].complete(); });
})();
</script>
</body></html>
`;
}

export const QUEUE = { LamedAdapter: '_lamed_queue', GimelAdapter: '_gimel_queue', AlephbetAdapter: '_alephbet_queue' };

/**
 * The User-Agent of the suite's visitors: desktop Chrome's. Headless
 * Chromium says "HeadlessChrome", which lamed's bot filter (on by default)
 * rightly ignores; the suite's visitors stand for people.
 */
export const PERSON_USER_AGENT =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

/** Googlebot's User-Agent (desktop), for the bot filter's test. */
export const GOOGLEBOT_USER_AGENT =
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';

/**
 * One visitor = one browser context with one page. Records every request the
 * page sends to `lamedBase` and which are still in flight.
 */
export class Visitor {
  static async open(browser, lamedBase, contextOptions = {}) {
    const context = await browser.newContext({ userAgent: PERSON_USER_AGENT, ...contextOptions });
    const page = await context.newPage();
    return new Visitor(context, page, lamedBase);
  }

  constructor(context, page, lamedBase) {
    this.context = context;
    this.page = page;
    this.lamedBase = lamedBase;
    this.requests = []; // {url, status|null, failure|null}
    this.inFlight = new Set();
    this.lastActivity = Date.now();
    this.pageErrors = [];
    this.consoleErrors = [];
    const mine = (r) => r.url().startsWith(`${this.lamedBase}/`);
    context.on('request', (r) => {
      if (!mine(r)) return;
      this.inFlight.add(r);
      this.requests.push({ request: r, url: r.url(), status: null, failure: null });
      this.lastActivity = Date.now();
    });
    const done = (r, failure) => {
      if (!mine(r)) return;
      this.inFlight.delete(r);
      const rec = this.requests.find((x) => x.request === r);
      if (rec) rec.failure = failure;
      this.lastActivity = Date.now();
    };
    context.on('requestfinished', (r) => done(r, null));
    context.on('requestfailed', (r) => done(r, r.failure()?.errorText ?? 'failed'));
    // Chromium reports no 'requestfinished' for keepalive fetches: the response
    // headers (the body is a tiny `{}`) are what the page's callback waits for.
    context.on('response', (resp) => {
      const r = resp.request();
      const rec = this.requests.find((x) => x.request === r);
      if (rec) rec.status = resp.status();
      if (mine(r)) { this.inFlight.delete(r); this.lastActivity = Date.now(); }
    });
    page.on('pageerror', (e) => this.pageErrors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') this.consoleErrors.push(m.text()); });
  }

  async goto(url) {
    const resp = await this.page.goto(url, { waitUntil: 'load' });
    if (resp && resp.status() !== 200) throw new Error(`GET ${url}: ${resp.status()}`);
    return resp;
  }

  async reload() { await this.page.reload({ waitUntil: 'load' }); }

  /** AlephBet's persistent queue of not yet delivered events (parsed). */
  async queue(queueName = '_lamed_queue') {
    return this.page.evaluate((q) => {
      const store = JSON.parse(localStorage.getItem('alephbet') || '{}');
      return JSON.parse(store[q] || '[]');
    }, queueName);
  }

  /** AlephBet's whole localStorage record. */
  async storage() {
    return this.page.evaluate(() => JSON.parse(localStorage.getItem('alephbet') || '{}'));
  }

  /** The variant AlephBet stored for an experiment. */
  async storedVariant(experiment) {
    return (await this.storage())[`${experiment}:variant`];
  }

  async clearStorage() { await this.page.evaluate(() => localStorage.clear()); }

  /**
   * Wait until the network settled: no request to lamed in flight for `quietMs`
   * and (unless queueEmpty is false) AlephBet's queue empty, which means every
   * event got its HTTP 200 that the page could read (CORS included).
   */
  async settle({ queue = '_lamed_queue', queueEmpty = true, quietMs = 150, timeoutMs = 10_000 } = {}) {
    const start = Date.now();
    const deadline = start + timeoutMs;
    while (true) {
      const q = await this.queue(queue);
      // Quiet since the last request event *and* since settle() was called: the
      // events of requests a page just started may still be on their way here.
      const idle = this.inFlight.size === 0 && Date.now() - Math.max(this.lastActivity, start) >= quietMs;
      if (idle && (!queueEmpty || q.length === 0)) return q;
      if (Date.now() > deadline) {
        throw new Error(`network did not settle in ${timeoutMs} ms: ${this.inFlight.size} in flight, `
          + `queue ${JSON.stringify(q)}\nrequests: ${JSON.stringify(this.requests.map(({ url, status, failure }) => ({ url, status, failure })), null, 1)}`
          + `\nconsole errors: ${JSON.stringify(this.consoleErrors)}\npage errors: ${JSON.stringify(this.pageErrors)}`);
      }
      await sleep(25);
    }
  }

  /** Query parameters of every request sent to lamed so far. */
  sentEvents() {
    return this.requests.map(({ url, status, failure }) => {
      const u = new URL(url);
      return { path: u.pathname, rawQuery: u.search, ...Object.fromEntries(u.searchParams), status, failure };
    });
  }

  async close() { await this.context.close(); }
}

/**
 * Opens `server`'s dashboard in `page` and signs in with its API key, on
 * `namespace`: what an owner does first.
 */
export async function openDashboard(page, server, namespace) {
  await page.goto(`${server.base}/dashboard`);
  await page.fill('#namespace', namespace);
  await page.fill('#api-key', server.apiKey);
  await page.click('#key-form button[type=submit]');
}
