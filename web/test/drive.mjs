// Drives srgraph's page in headless Chromium (Debian's, through playwright-core), offline:
// every request that is not to 127.0.0.1 is aborted and counted, and any such request fails
// the run. Opens URL, waits for the page's automation result (document.title set to a JSON
// object), and writes it to --out (or stdout).
//
//   node web/test/drive.mjs URL [--out FILE] [--timeout SECONDS] [--screenshot PNG [--of SELECTOR]]
//
// Exit status: 0 when the page reported {"ok": true, ...}, 1 otherwise (its error printed).
import { chromium } from 'playwright-core';
import { writeFileSync } from 'node:fs';

const args = process.argv.slice(2);
const url = args.find((a) => !a.startsWith('--') && !args[args.indexOf(a) - 1]?.startsWith('--'));
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
if (!url) {
  console.error('usage: node web/test/drive.mjs URL [--out FILE] [--timeout SECONDS] [--screenshot PNG]');
  process.exit(2);
}
const timeout = Number(flag('timeout', 300)) * 1000;
const executablePath = process.env.SRGRAPH_CHROMIUM || '/usr/bin/chromium';

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let status = 1;
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
  const outside = [];
  await page.route('**/*', (route) => {
    const host = new URL(route.request().url()).hostname;
    if (host === '127.0.0.1' || host === 'localhost') return route.continue();
    outside.push(route.request().url());
    return route.abort();
  });
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`page error: ${e.message}`));
  await page.goto(url);
  await page.waitForFunction(() => document.title.startsWith('{'), null, { timeout, polling: 200 });
  const result = JSON.parse(await page.title());
  if (outside.length) {
    result.ok = false;
    result.error = `the page asked for ${outside.length} address(es) outside 127.0.0.1: ${outside.slice(0, 5).join(', ')}`;
  }
  result.outside_requests = outside.length;
  const shot = flag('screenshot');
  const of = flag('of');
  if (shot) await (of ? page.locator(of).screenshot({ path: shot }) : page.screenshot({ path: shot, fullPage: true }));
  const text = JSON.stringify(result);
  const out = flag('out');
  if (out) writeFileSync(out, text);
  else console.log(text);
  if (result.ok) status = 0;
  else {
    console.error(`the page reported an error: ${result.error}`);
    for (const l of logs.slice(-20)) console.error(`  ${l}`);
  }
} catch (e) {
  console.error(`drive.mjs: ${e.message}`);
} finally {
  await browser.close();
}
process.exit(status);
