// Starting, querying and stopping a real `lamed serve` process for the e2e tests.
//
// Every server gets a fresh temporary data dir and an empty config file, runs in
// that temp dir (so no ./config.json of the developer is picked up), and is
// stopped by its PID: by the test's `after` hook, or at the latest when this
// Node process exits.

import { spawn } from 'node:child_process';
import https from 'node:https';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));

export const LAMED_BIN = process.env.LAMED_BIN
  ? path.resolve(process.env.LAMED_BIN)
  : path.resolve(here, '..', '..', 'target', 'debug', 'lamed');

export const SNIPPET_START = '----- AlephBet snippet: paste into your page -----';
export const SNIPPET_END = '----- end of snippet -----';

// Children still running; killed with SIGKILL (by PID) if this process exits first.
const live = new Map();
const workDirs = new Set();
process.on('exit', () => {
  for (const pid of live.keys()) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  for (const dir of workDirs) {
    try { rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ }
  }
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => process.exit(sig === 'SIGINT' ? 130 : 143));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A fresh temp dir holding an empty config file and a data dir. */
export async function makeWorkDir() {
  const root = await mkdtemp(path.join(tmpdir(), 'lamed-e2e-'));
  const config = path.join(root, 'config.json');
  workDirs.add(root);
  await writeFile(config, '{}\n');
  return { root, config, dataDir: path.join(root, 'data') };
}

/**
 * Start `lamed serve`.
 * opts.port: 0 (default) lets the OS pick; the real port is read from stdout.
 * opts.apiKey: undefined => a random key is passed; null => let lamed generate one
 *              (read back from the banner, or from DIR/api_key on a restart: the
 *              banner prints a key only when it was generated just now).
 * opts.work: reuse a work dir (same data dir) from a previous server.
 * opts.serveArgs: more `lamed serve` arguments, e.g. ['--registration', 'required'].
 * opts.ca: for a server on HTTPS (--tls-cert), the certificates (PEM) its
 *          certificate is checked against by this side's requests.
 */
export async function startLamed(opts = {}) {
  const work = opts.work ?? await makeWorkDir();
  const apiKey = opts.apiKey === undefined ? randomBytes(16).toString('hex') : opts.apiKey;
  const args = [
    'serve',
    '--config', work.config,
    '--listen', `127.0.0.1:${opts.port ?? 0}`,
    '--data-dir', work.dataDir,
  ];
  if (apiKey) args.push('--api-key', apiKey);
  if (opts.uuidExpirySeconds !== undefined) args.push('--uuid-expiry-seconds', String(opts.uuidExpirySeconds));
  if (opts.serveArgs) args.push(...opts.serveArgs);

  // No LAMED_* settings from the caller's environment leak into the server.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LAMED_')));
  const child = spawn(LAMED_BIN, args, { cwd: work.root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => { live.delete(child.pid); resolve({ code, signal }); });
    child.once('error', (err) => { live.delete(child.pid); resolve({ code: null, signal: null, err }); });
  });
  if (child.pid) live.set(child.pid, child);
  // A server must never keep this process alive (e.g. after a test timed out
  // before its `after` hook could stop it): the 'exit' handler kills it.
  child.unref();
  child.stdout.unref?.();
  child.stderr.unref?.();

  let exitInfo = null;
  exited.then((info) => { exitInfo = info; });
  const fail = (why) => {
    if (child.pid && exitInfo === null) { try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } }
    throw new Error(`lamed serve ${args.join(' ')}: ${why}\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`);
  };

  // Wait for the banner (ends with the snippet) and then for /health.
  const deadline = Date.now() + 20_000;
  while (!stdout.includes(SNIPPET_END)) {
    if (exitInfo) fail(`exited early (${JSON.stringify(exitInfo)})`);
    if (Date.now() > deadline) fail('no banner within 20 s');
    await sleep(20);
  }
  const first = stdout.split('\n')[0];
  const m = /^lamed is listening on (https?:\/\/127\.0\.0\.1:(\d+))\s*$/.exec(first);
  if (!m) fail(`unexpected first stdout line: ${JSON.stringify(first)}`);
  const base = m[1];
  const port = Number(m[2]);
  if (opts.port) assert.equal(port, opts.port, 'lamed listens on the requested port');

  const server = {
    pid: child.pid,
    port,
    base,
    trackUrl: `${base}/track`,
    work,
    ca: opts.ca,
    apiKey: apiKey || await generatedApiKey(stdout, work),
    get stdout() { return stdout; },
    get stderr() { return stderr; },
    snippet: extractSnippet(stdout),
    exited,
    /** SIGTERM (graceful), SIGKILL after 10 s; resolves when the process is gone. */
    async stop(signal = 'SIGTERM') {
      if (exitInfo) return exitInfo;
      try { process.kill(child.pid, signal); } catch { /* gone */ }
      const t = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } }, 10_000);
      const info = await exited;
      clearTimeout(t);
      return info;
    },
  };

  while (true) {
    if (exitInfo) fail(`exited before /health answered (${JSON.stringify(exitInfo)})`);
    if (Date.now() > deadline) fail('/health did not answer 200 within 20 s');
    try {
      const res = await get(`${base}/health`, { ca: opts.ca });
      if (res.status === 200) break;
    } catch { /* not yet */ }
    await sleep(50);
  }
  return server;
}

/**
 * GET `url`: with fetch, or for HTTPS with `ca` (PEM certificates to trust)
 * through node's https module, which fetch cannot be given. Resolves to
 * {status, text}.
 */
export async function get(url, { headers = {}, ca } = {}) {
  if (!ca) {
    const res = await fetch(url, { headers });
    return { status: res.status, text: await res.text() };
  }
  return new Promise((resolve, reject) => {
    https.get(url, { headers, ca, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    }).on('error', reject);
  });
}

/** The key lamed generated: printed in the banner on the start that generated it, else kept in DIR/api_key. */
async function generatedApiKey(stdout, work) {
  const m = /^\s*API key:\s+(\S+) \(generated now/m.exec(stdout);
  if (m) return m[1];
  return (await readFile(path.join(work.dataDir, 'api_key'), 'utf8')).trim();
}

export function extractSnippet(stdout) {
  const start = stdout.indexOf(SNIPPET_START);
  const end = stdout.indexOf(SNIPPET_END);
  if (start < 0 || end < start) return null;
  return stdout.slice(start + SNIPPET_START.length, end).replace(/^\r?\n/, '');
}

/** Remove a work dir (after its server stopped). */
export async function removeWorkDir(work) {
  if (!work?.root) return;
  await rm(work.root, { recursive: true, force: true });
  workDirs.delete(work.root);
}

/**
 * GET /experiments with the API key; checks the wire shape and returns the parsed body.
 */
export async function getExperiments(server, { namespace, scope } = {}) {
  const qs = new URLSearchParams();
  if (namespace !== undefined) qs.set('namespace', namespace);
  if (scope !== undefined) qs.set('scope', scope);
  const url = `${server.base}/experiments${qs.size ? `?${qs}` : ''}`;
  const res = await get(url, { headers: { 'X-Api-Key': server.apiKey }, ca: server.ca });
  const text = res.text;
  assert.equal(res.status, 200, `GET ${url} answered ${res.status}: ${text}`);
  let body;
  try { body = JSON.parse(text); } catch { assert.fail(`GET ${url}: not JSON: ${text}`); }
  assert.ok(Array.isArray(body) && body.length >= 1, `GET ${url}: not a non-empty array: ${text}`);
  assert.deepEqual(body[0], { meta: { scope: scope ?? null } }, `GET ${url}: first element is the meta`);
  for (const exp of body.slice(1)) {
    assert.equal(typeof exp.experiment, 'string', `experiment name in ${text}`);
    assert.ok(Array.isArray(exp.goals), `goals array in ${text}`);
    for (const g of exp.goals) {
      assert.equal(typeof g.goal, 'string', `goal name in ${text}`);
      assert.notEqual(g.goal, 'participate', `participate is not a goal: ${text}`);
      assert.ok(Array.isArray(g.results), `results array in ${text}`);
      for (const r of g.results) {
        assert.deepEqual(Object.keys(r).sort(), ['label', 'successes', 'trials'], `result keys in ${text}`);
        assert.ok(Number.isInteger(r.successes) && Number.isInteger(r.trials), `integer counts in ${text}`);
      }
    }
  }
  return body;
}

/**
 * Turns an /experiments body into {experiment: {goal: {variant: [successes, trials]}}}.
 * Variants listed with 0 successes and 0 trials are dropped; an experiment with
 * no goals maps to {}.
 */
export function countsOf(body) {
  const out = {};
  for (const exp of body.slice(1)) {
    assert.ok(!(exp.experiment in out), `experiment ${JSON.stringify(exp.experiment)} listed twice`);
    const goals = (out[exp.experiment] = {});
    for (const g of exp.goals) {
      assert.ok(!(g.goal in goals), `goal ${JSON.stringify(g.goal)} listed twice`);
      const res = (goals[g.goal] = {});
      for (const r of g.results) {
        if (r.successes === 0 && r.trials === 0) continue;
        assert.ok(!(r.label in res), `variant ${JSON.stringify(r.label)} listed twice`);
        res[r.label] = [r.successes, r.trials];
      }
    }
  }
  return out;
}

/**
 * Poll /experiments (of one namespace) until its counts equal `expected`, then keep
 * watching for `quietMs` to check that nothing more arrives.
 * `expected` has the shape of countsOf().
 */
export async function expectCounts(server, namespace, expected, { timeoutMs = 10_000, quietMs = 750 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let counts;
  while (true) {
    counts = countsOf(await getExperiments(server, { namespace }));
    if (isDeepStrictEqual(counts, expected)) break;
    if (Date.now() > deadline) {
      assert.deepEqual(counts, expected, `namespace ${JSON.stringify(namespace)}: counts after ${timeoutMs} ms`);
    }
    await sleep(100);
  }
  await sleep(quietMs);
  counts = countsOf(await getExperiments(server, { namespace }));
  assert.deepEqual(counts, expected, `namespace ${JSON.stringify(namespace)}: counts changed after they matched`);
  return counts;
}

