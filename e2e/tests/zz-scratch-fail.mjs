import { test, after } from 'node:test';
import { startLamed } from '../lib/lamed.mjs';
import { launchBrowser } from '../lib/browser.mjs';
let l, b;
test('fails with a server running', async () => {
  l = await startLamed(); b = await launchBrowser();
  console.log('PID', l.pid);
  throw new Error('boom');
});
test('hangs', { timeout: 1000 }, async () => { l2 = await startLamed(); console.log('PID2', l2.pid); await new Promise(() => {}); });
let l2;
after(async () => { await b?.close(); await l?.stop(); });
