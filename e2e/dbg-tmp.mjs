import { startLamed, removeWorkDir } from './lib/lamed.mjs';
import { launchBrowser, startSite, experimentPage, Visitor } from './lib/browser.mjs';
const lamed = await startLamed(); const site = await startSite(); const browser = await launchBrowser();
try {
  const url = site.add(experimentPage({ url: lamed.trackUrl, namespace: 'x', name: 'x', variants: {red:{},blue:{}}, goals: [{name:'checkout'}] }));
  await lamed.stop();
  const b = await Visitor.open(browser, lamed.base);
  b.page.on('console', m => console.log('console', m.type(), m.text()));
  b.context.on('request', r => console.log('req', r.url().slice(0,60)));
  b.context.on('requestfailed', r => console.log('failed', r.url().slice(0,60), r.failure()));
  await b.goto(url);
  await b.page.evaluate(() => window.goals.checkout.complete());
  console.log(await b.settle({queueEmpty:false}));
  console.log('--- reload');
  await b.reload();
  console.log(await b.settle({queueEmpty:false}));
  await new Promise(r => setTimeout(r, 1000));
  console.log(b.sentEvents().length);
} finally { await browser.close(); await site.close(); await removeWorkDir(lamed.work); }
