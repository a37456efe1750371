// The API reference page in a real browser: Debian's Chromium, headless, driven by playwright-core.
//
//   node tests/contract/docs_browser.mjs http://127.0.0.1:PORT build/docs-page.png
//
// Loads BASE/docs and checks: no console error, no page error, no failed request, and no request
// to anything but the gateway itself (others are refused and reported); every operation of the
// served /openapi.json is listed; "Try it out" on POST /invoke/{name} with name=echo sends the
// request to the gateway and shows its 200 answer. Saves a screenshot of that answer (and of the
// whole list, as SCREENSHOT-overview.png). Prints
// one JSON line of what it saw; exits 1 with the reasons on any failure.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [base, shot] = process.argv.slice(2);
if (!base || !shot) {
  console.error('usage: docs_browser.mjs BASE_URL SCREENSHOT.png');
  process.exit(2);
}
const origin = new URL(base).origin;
const problems = [];
const consoleErrors = [];
const foreign = [];
const failed = [];

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'lgw-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  viewport: { width: 1280, height: 1000 },
});
try {
  // Nothing leaves the machine: only the gateway's origin (and the page's own data: URIs).
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(origin + '/') || url.startsWith('data:')) return route.continue();
    foreign.push(url);
    return route.abort();
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push('page error: ' + e.message));
  page.on('requestfailed', (r) => failed.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`));

  const docResp = await fetch(origin + '/openapi.json');
  const doc = await docResp.json();
  const ops = [];
  for (const [p, item] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(item)) {
      if (op && op.operationId) ops.push({ method: m, path: p, id: op.operationId, tag: op.tags[0] });
    }
  }

  const resp = await page.goto(base + '/docs', { waitUntil: 'load' });
  if (!resp || resp.status() !== 200) problems.push(`GET /docs answered ${resp && resp.status()}`);
  await page.waitForSelector('.opblock', { timeout: 30000 });
  await page.waitForSelector('.info .title', { timeout: 30000 });
  const title = (await page.textContent('.info .title')).trim();

  // Every operation is listed: Swagger UI gives each the id operations-TAG-OPERATIONID.
  const missing = [];
  for (const op of ops) {
    const el = page.locator(`[id="operations-${op.tag}-${op.id}"]`);
    if ((await el.count()) !== 1) {
      missing.push(`${op.method.toUpperCase()} ${op.path}`);
      continue;
    }
    // (.opblock-summary-path, or .opblock-summary-path__deprecated)
    const shown = await el.locator('.opblock-summary [data-path]').first().getAttribute('data-path', { timeout: 5000 });
    if (shown !== op.path) missing.push(`${op.method.toUpperCase()} ${op.path} (shown as ${shown})`);
  }
  if (missing.length) problems.push('operations not listed: ' + missing.join(', '));

  // The list of endpoints, as a reader first sees it.
  fs.mkdirSync(path.dirname(shot), { recursive: true });
  await page.screenshot({ path: shot.replace(/\.png$/, '') + '-overview.png', fullPage: true });

  // Try it out: POST /invoke/{name} with name=echo and a body of our own.
  const block = page.locator('[id="operations-gateway-invokeByName"]');
  await block.locator('.opblock-summary-control').click();
  await block.locator('.try-out__btn').click();
  const nameInput = block.locator('tr[data-param-name="name"][data-param-in="path"] input');
  await nameInput.fill('echo');
  const body = { from: 'the docs page', n: 42 };
  await block.locator('textarea.body-param__text').fill(JSON.stringify(body));
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.url() === origin + '/invoke/echo' && r.request().method() === 'POST'),
    block.locator('button.execute').click(),
  ]);
  const live = block.locator('.live-responses-table');
  await live.waitFor({ timeout: 30000 });
  const shownStatus = (await live.locator('.response .response-col_status').first().textContent()).trim();
  const shownBody = await live.locator('.response-col_description pre').first().textContent();
  let shownJson = null;
  try { shownJson = JSON.parse(shownBody); } catch { /* reported below */ }
  if (answer.status() !== 200) problems.push(`the gateway answered ${answer.status()} to try-it`);
  if (shownStatus !== '200') problems.push(`the page shows status ${shownStatus}`);
  if (JSON.stringify(shownJson) !== JSON.stringify(body)) {
    problems.push(`the page shows ${JSON.stringify(shownBody)}, not the echoed ${JSON.stringify(body)}`);
  }
  await block.locator('.live-responses-table').scrollIntoViewIfNeeded();
  await page.evaluate(() => window.scrollBy(0, -420));
  await page.screenshot({ path: shot });

  if (consoleErrors.length) problems.push('console errors: ' + consoleErrors.join(' | '));
  if (foreign.length) problems.push('requests off the gateway (refused): ' + foreign.join(', '));
  if (failed.length) problems.push('failed requests: ' + failed.join(', '));
  console.log(JSON.stringify({
    title, operations: ops.length, missing: missing.length, tryIt: { status: shownStatus, body: shownJson },
    consoleErrors: consoleErrors.length, foreign: foreign.length, screenshot: shot,
  }));
} catch (e) {
  problems.push('exception: ' + (e && e.stack ? e.stack : e));
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
if (problems.length) {
  for (const p of problems) console.error('docs page: ' + p);
  process.exit(1);
}
