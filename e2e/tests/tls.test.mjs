// HTTPS built in: `lamed serve --tls-cert --tls-key` with a certificate this
// test makes (openssl), the real AlephBet client in Chromium on an HTTPS
// page sending to it, exact counts; then a certificate that does not load
// (kept the old one), a renewal while serving (picked up from the files,
// an open connection kept), and counting that goes on exactly.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { expectCounts, makeWorkDir, removeWorkDir, sleep, startLamed } from '../lib/lamed.mjs';
import { experimentPage, startSite } from '../lib/browser.mjs';
import { useSuite, visitor } from '../lib/suite.mjs';

useSuite({ lamed: false, site: false });

/** A self-signed certificate for 127.0.0.1, made by openssl. */
function makeCertificate(dir, name) {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=lamed e2e ${name}`,
    '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const pem = readFileSync(cert, 'utf8');
  return { cert, key, pem, keyPem: readFileSync(key, 'utf8'), fingerprint: new X509Certificate(pem).fingerprint256 };
}

/** The SHA-256 fingerprint of the certificate the server presents now. */
function servedFingerprint(port, ca) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fingerprint);
    });
    socket.on('error', reject);
  });
}

/** GET through `agent` (keep-alive): the status and whether the socket was reused. */
function getThrough(agent, url) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, reused: req.reusedSocket }));
    });
    req.on('error', reject);
  });
}

/** Installs `cert` as the files lamed serves, as certbot renews: the key, then the chain. */
function install(cert, live) {
  copyFileSync(cert.key, live.key);
  copyFileSync(cert.cert, live.cert);
}

test('AlephBet on an HTTPS page counts exactly over TLS, across a certificate renewal', { timeout: 120_000 }, async () => {
  const work = await makeWorkDir();
  const first = makeCertificate(work.root, 'first');
  const renewed = makeCertificate(work.root, 'renewed');
  const live = { cert: path.join(work.root, 'fullchain.pem'), key: path.join(work.root, 'privkey.pem') };
  install(first, live);
  const ca = [first.pem, renewed.pem];
  const lamed = await startLamed({
    work, ca, serveArgs: ['--tls-cert', live.cert, '--tls-key', live.key],
  });
  const site = await startSite({ tls: { key: first.keyPem, cert: first.pem } });
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
  try {
    assert.match(lamed.base, /^https:\/\/127\.0\.0\.1:\d+$/, 'the banner prints an https:// URL');
    assert.ok(lamed.snippet.includes(`"${lamed.base}/track"`), lamed.snippet);
    assert.equal(await servedFingerprint(lamed.port, ca), first.fingerprint);

    const ns = 'e2e-tls';
    const name = 'secure checkout';
    const url = site.add(experimentPage({
      url: lamed.trackUrl, namespace: ns, name,
      variants: { red: {}, blue: {} },
      goals: [{ name: 'checkout' }],
    }), 'tls');
    assert.ok(url.startsWith('https://'));
    const one = await visitor({ ignoreHTTPSErrors: true }, lamed);
    await one.goto(url);
    await one.page.evaluate(() => window.goals.checkout.complete());
    await one.settle();
    assert.deepEqual(one.pageErrors, []);
    assert.ok(one.sentEvents().length >= 2 && one.sentEvents().every((e) => e.status === 200),
      JSON.stringify(one.sentEvents()));
    const oneVariant = await one.storedVariant(name);
    await expectCounts(lamed, ns, { [name]: { checkout: { [oneVariant]: [1, 1] } } });

    // A connection opened before the renewals, kept alive across them.
    const before = await getThrough(agent, `${lamed.base}/health`);
    assert.equal(before.status, 200);

    // A broken certificate (SIGHUP asks for the reload at once): logged, the old one kept.
    writeFileSync(live.cert, '-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n');
    process.kill(lamed.pid, 'SIGHUP');
    const deadline = Date.now() + 10_000;
    while (!lamed.stderr.includes('the new TLS certificate does not load')) {
      assert.ok(Date.now() < deadline, `no error logged:\n${lamed.stderr}`);
      await sleep(50);
    }
    assert.equal(await servedFingerprint(lamed.port, ca), first.fingerprint, 'the old certificate kept');

    // The renewal: new files, picked up by the server watching them.
    install(renewed, live);
    while ((await servedFingerprint(lamed.port, ca)) !== renewed.fingerprint) {
      assert.ok(Date.now() < deadline + 10_000, 'the renewed certificate is served within seconds');
      await sleep(200);
    }
    const after = await getThrough(agent, `${lamed.base}/health`);
    assert.deepEqual(after, { status: 200, reused: true }, 'the open connection was kept');

    // Counting goes on exactly: the first visitor's repeated goal counts
    // nothing, a second visitor counts once.
    await one.page.evaluate(() => window.goals.checkout.complete());
    const two = await visitor({ ignoreHTTPSErrors: true }, lamed);
    await two.goto(url);
    await two.page.evaluate(() => window.goals.checkout.complete());
    await two.settle();
    await one.settle();
    assert.ok(two.sentEvents().every((e) => e.status === 200), JSON.stringify(two.sentEvents()));
    const twoVariant = await two.storedVariant(name);
    const expected = { [oneVariant]: [1, 1] };
    expected[twoVariant] = oneVariant === twoVariant ? [2, 2] : [1, 1];
    await expectCounts(lamed, ns, { [name]: { checkout: expected } });

    const exit = await lamed.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, `graceful shutdown over TLS:\n${lamed.stderr}`);
  } finally {
    agent.destroy();
    await site.close();
    await lamed.stop();
    await removeWorkDir(work);
  }
});
