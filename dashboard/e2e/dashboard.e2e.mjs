// End-to-end test of the dashboard in a real headless Chromium, against a running
// `rampart serve` (started by crates/cli/tests/dashboard_browser.rs, which passes
// its address and admin token). Exits non-zero with a message on the first failure;
// writes screenshots and figures.json to RAMPART_SCREENSHOTS.
//
// Env: RAMPART_API, RAMPART_ADMIN_TOKEN, RAMPART_SCREENSHOTS, RAMPART_CHROMIUM,
// RAMPART_SHOP (the service to roll out), RAMPART_STATIC_SERVICES (comma list),
// RAMPART_GATED (a service whose step needs approval by release-manager).

import { chromium } from 'playwright-core';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const API = need('RAMPART_API');
const ADMIN = need('RAMPART_ADMIN_TOKEN');
const SHOTS = need('RAMPART_SCREENSHOTS');
const SHOP = process.env.RAMPART_SHOP ?? 'shop';
const STATICS = (process.env.RAMPART_STATIC_SERVICES ?? '').split(',').filter(Boolean);
const GATED = process.env.RAMPART_GATED; // a service whose one step needs approval by release-manager
const CHROMIUM = process.env.RAMPART_CHROMIUM ?? '/usr/bin/chromium';
const figures = {};
const step = (text) => console.log(`[e2e] ${text}`);

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

async function api(method, path, body, token = ADMIN) {
  const response = await fetch(API + path, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

function bundleSize() {
  const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
  let raw = 0;
  let gzip = 0;
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else {
        const data = readFileSync(path);
        raw += data.length;
        gzip += gzipSync(data, { level: 9 }).length;
      }
    }
  };
  walk(dist);
  return { raw, gzip };
}

async function newPage(browser, token, viewport = { width: 1366, height: 900 }) {
  const context = await browser.newContext({ viewport, timezoneId: 'Europe/Berlin' });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(String(e)));
  // CSP violations are reported as events; any one means the policy broke the page.
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  if (token) {
    await page.addInitScript((t) => sessionStorage.setItem('rampart.token', t), token);
  }
  return { context, page, problems };
}

async function login(page, token) {
  await page.goto(API + '/');
  await page.fill('#token', token);
  await page.click('button[type=submit]');
  await page.waitForSelector('[data-testid=live-status][data-status=live]', { timeout: 10_000 });
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  figures.bundle = bundleSize();
  step(`bundle ${figures.bundle.raw} B, ${figures.bundle.gzip} B gzipped`);
  assert(figures.bundle.gzip <= 200 * 1024, `bundle ${figures.bundle.gzip} B gzipped is over 200 kB`);

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    await run(browser);
  } finally {
    await browser.close();
  }
  writeFileSync(join(SHOTS, 'figures.json'), JSON.stringify(figures, null, 2));
  console.log(`[e2e] figures ${JSON.stringify(figures)}`);
}

async function run(browser) {
  // --- Login, as an operator would: the login form, then the overview.
  const admin = await newPage(browser, null);
  const { page } = admin;
  await page.goto(API + '/');
  await page.waitForSelector('#token');
  await shot(page, 'login');
  const headers = await (await fetch(API + '/')).headers;
  assert(headers.get('content-security-policy')?.includes("script-src 'self'"), 'CSP header on /');
  await login(page, ADMIN);
  const stored = await page.evaluate(() => ({ session: sessionStorage.getItem('rampart.token'), url: location.href }));
  assert(stored.session === ADMIN && !stored.url.includes(ADMIN), 'token in session storage, not in the URL');
  await page.waitForSelector(`tr[data-service="${SHOP}"]`);
  await page.waitForSelector('[data-testid=health-score]', { timeout: 15_000 });
  await shot(page, 'overview');

  // --- First meaningful render: a fresh load with a session, until the services table has rows.
  {
    const fresh = await newPage(browser, ADMIN);
    await fresh.page.goto(API + '/');
    await fresh.page.waitForSelector(`tr[data-service="${SHOP}"]`);
    figures.first_render_ms = Math.round(await fresh.page.evaluate(() => performance.now()));
    step(`first meaningful render ${figures.first_render_ms} ms`);
    await fresh.context.close();
  }

  // --- Deploy v2 from the form, and watch it go through its steps live.
  await page.click('nav >> text=Deploy');
  await page.selectOption('#deploy-service', SHOP);
  await page.fill('#deploy-version', 'v2');
  await page.fill('label:has-text("Reason") input', 'dashboard end-to-end test');
  await shot(page, 'deploy');
  await page.evaluate(() => (window.__noReload = true));
  await page.click('button[type=submit]');
  await page.waitForURL(/\/rollouts\//);
  const seen = new Set();
  const deadline = Date.now() + 90_000;
  let shotTaken = false;
  for (;;) {
    const state = await page.textContent('[data-testid=rollout-state]');
    const current = await page.$$eval('[data-testid=steps] li', (items) =>
      items.map((li) => li.getAttribute('data-state')).join(','),
    );
    seen.add(`${state}|${current}`);
    if (!shotTaken && current.startsWith('done,current')) {
      await page.waitForSelector('[data-testid=evidence] canvas', { timeout: 20_000 });
      await shot(page, 'rollout');
      shotTaken = true;
    }
    if (state === 'succeeded') break;
    assert(!['rolled back', 'failed', 'aborted'].includes(state), `v2 rollout ended ${state}`);
    assert(Date.now() < deadline, `v2 rollout not done; seen ${[...seen].join(' ; ')}`);
    await page.waitForTimeout(100);
  }
  const reached = [...seen].map((s) => s.split('|')[1]);
  assert(reached.some((s) => s.startsWith('current')), `step 1 seen live: ${[...seen]}`);
  assert(reached.some((s) => s.startsWith('done,current')), `step 2 seen live: ${[...seen]}`);
  assert(await page.evaluate(() => window.__noReload === true), 'the page was not reloaded');
  const charts = await page.$$eval('[data-testid=evidence] canvas', (c) => c.length);
  assert(charts >= 2, `the judge's evidence is charted (${charts} charts)`);
  figures.rollout_states_seen = [...seen];
  if (!shotTaken) await shot(page, 'rollout');

  // --- Emergency rollback of a rollout in flight, from the service page.
  const v3 = await api('POST', `/api/v1/services/${SHOP}/deployments`, { version: 'v3', reason: 'to be rolled back' });
  await page.click(`a[href="/services/${SHOP}"]`);
  await page.waitForFunction(
    () => document.querySelector('[data-testid=canary-version]')?.textContent === 'v3' &&
      parseFloat(document.querySelector('[data-testid=service-canary-weight]')?.textContent ?? '0') > 0,
    null,
    { timeout: 60_000 },
  );
  await shot(page, 'service');
  await page.click(`[data-testid="rollback-${SHOP}"]`);
  const plan = await page.textContent('[data-testid=rollback-plan]');
  assert(plan.includes(SHOP) && plan.includes('v3') && plan.includes('v2'), `confirmation names service and versions: ${plan}`);
  await shot(page, 'rollback-confirm');
  await page.click('dialog[open] [data-testid=confirm]');
  await page.waitForSelector('[data-testid=rollback-result]');
  const result = await page.textContent('[data-testid=rollback-result]');
  assert(/rolled back/.test(result) && / at 0 %/.test(result), `rollback result shown, canary at 0 %: ${result}`);
  await page.waitForFunction(
    () => document.querySelector('[data-testid=service-canary-weight]')?.textContent?.startsWith('0'),
    null,
    { timeout: 5_000 },
  );
  const v3state = await api('GET', `/api/v1/deployments/${v3.id}`);
  figures.rollback_state = v3state.summary.state;
  await page.waitForSelector('[data-testid=scaling] table');
  const scaling = await page.textContent('[data-testid=scaling]');
  assert(/autoscaled/i.test(scaling) && /instances ready/.test(scaling), `the scaling card shows the size: ${scaling}`);
  await shot(page, 'service-after-rollback');

  // --- The incident the rolled-back rollout opened: listed, its timeline, acknowledged.
  await page.click('nav >> text=Incidents');
  await page.waitForSelector('[data-testid=incidents-table] tr[data-incident]', { timeout: 20_000 });
  await shot(page, 'incidents');
  const incidentId = await page.getAttribute('[data-testid=incidents-table] tr[data-incident]', 'data-incident');
  await page.click(`tr[data-incident="${incidentId}"] a`);
  await page.waitForSelector('[data-testid=incident-timeline] tbody tr');
  await page.click('[data-testid=incident-acknowledge]');
  await page.click('dialog[open] [data-testid=confirm]');
  await page.waitForFunction(
    () => document.querySelector('[data-testid=incident-status]')?.textContent === 'acknowledged',
    null,
    { timeout: 5_000 },
  );
  await shot(page, 'incident');
  figures.incident_acknowledged = true;

  // --- Audit with the chain verified.
  await page.click('nav >> text=Audit');
  await page.waitForSelector('[data-testid=audit-table] tbody tr td.num');
  await page.click('[data-testid=verify-chain]');
  await page.waitForSelector('[data-testid=verify-result]');
  assert((await page.textContent('[data-testid=verify-result]')).includes('intact'), 'chain verifies');
  await shot(page, 'audit');

  // --- 20 services with one event per second each: the page stays responsive and current.
  if (STATICS.length) {
    await page.click('nav >> text=Overview');
    await page.waitForSelector(`tr[data-service="${STATICS[0]}"]`);
    await page.evaluate(() => {
      window.__lag = { max: 0, samples: [] };
      let last = performance.now();
      window.__lagTimer = setInterval(() => {
        const now = performance.now();
        const late = now - last - 50;
        last = now;
        window.__lag.samples.push(Math.max(0, late));
        window.__lag.max = Math.max(window.__lag.max, late);
      }, 50);
      window.__longTasks = 0;
      new PerformanceObserver((list) => (window.__longTasks += list.getEntries().length)).observe({ type: 'longtask', buffered: false });
    });
    // A canary set to split to (never sent a request: the services take no traffic).
    await Promise.all(
      STATICS.map((name) =>
        api('PUT', `/api/v1/services/${name}/traffic`, { canary: ['127.0.0.1:9'], version: 'v2', canary_weight: 0 }),
      ),
    );
    const seconds = 15;
    const delays = [];
    for (let s = 0; s < seconds; s++) {
      const began = Date.now();
      const weight = (s % 9) + 1;
      await Promise.all(
        STATICS.map((name) => api('PUT', `/api/v1/services/${name}/traffic`, { canary_weight: weight })),
      );
      const shown = Date.now();
      const target = STATICS[s % STATICS.length];
      await page.waitForFunction(
        ([name, w]) =>
          document.querySelector(`tr[data-service="${name}"] [data-testid=canary-weight]`)?.textContent?.startsWith(`${w} `),
        [target, weight],
        { timeout: 5_000, polling: 20 },
      );
      delays.push(Date.now() - shown);
      const rest = 1000 - (Date.now() - began);
      if (rest > 0) await page.waitForTimeout(rest);
    }
    const lag = await page.evaluate(() => {
      clearInterval(window.__lagTimer);
      const sorted = [...window.__lag.samples].sort((a, b) => a - b);
      return { max: window.__lag.max, p95: sorted[Math.floor(sorted.length * 0.95)] ?? 0, longTasks: window.__longTasks };
    });
    delays.sort((a, b) => a - b);
    figures.load = {
      services: STATICS.length,
      events_per_second: STATICS.length,
      seconds,
      change_shown_ms_median: delays[Math.floor(delays.length / 2)],
      change_shown_ms_max: delays.at(-1),
      timer_lag_ms_p95: Math.round(lag.p95),
      timer_lag_ms_max: Math.round(lag.max),
      long_tasks: lag.longTasks,
    };
    step(`under load: ${JSON.stringify(figures.load)}`);
    await shot(page, 'overview-20-services');

    // A hidden tab closes the stream; shown again, it resumes with what it missed.
    const setVisibility = (state) =>
      page.evaluate((s) => {
        Object.defineProperty(document, 'visibilityState', { value: s, configurable: true });
        document.dispatchEvent(new Event('visibilitychange'));
      }, state);
    await setVisibility('hidden');
    await page.waitForSelector('[data-testid=live-status][data-status=paused]', { timeout: 2_000 });
    await api('PUT', `/api/v1/services/${STATICS[0]}/traffic`, { canary_weight: 42 });
    await page.waitForTimeout(1_500);
    const whileHidden = await page.textContent(`tr[data-service="${STATICS[0]}"] [data-testid=canary-weight]`);
    assert(!whileHidden.startsWith('42 '), `no update while hidden (${whileHidden})`);
    await setVisibility('visible');
    await page.waitForSelector('[data-testid=live-status][data-status=live]', { timeout: 5_000 });
    await page.waitForFunction(
      (name) => document.querySelector(`tr[data-service="${name}"] [data-testid=canary-weight]`)?.textContent?.startsWith('42 '),
      STATICS[0],
      { timeout: 3_000 },
    );
  }

  // --- Phone width and dark theme.
  {
    const phone = await newPage(browser, ADMIN, { width: 390, height: 844 });
    await phone.page.emulateMedia({ colorScheme: 'dark' });
    await phone.page.goto(API + '/');
    await phone.page.waitForSelector(`tr[data-service="${SHOP}"]`);
    await phone.page.waitForSelector('[data-testid=health-score]');
    await shot(phone.page, 'overview-phone-dark');
    const overflow = await phone.page.evaluate(() => {
      const wide = [...document.querySelectorAll('body *')]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
        .slice(0, 5)
        .map((e) => `${e.tagName}.${e.className}`);
      return { by: document.documentElement.scrollWidth - window.innerWidth, wide };
    });
    assert(overflow.by <= 1, `no sideways scrolling on a phone (${overflow.by} px: ${overflow.wide.join(', ')})`);
    await phone.context.close();
  }

  // --- A viewer sees no action buttons (and the API refuses them anyway).
  const created = await api('POST', '/api/v1/tokens', { name: 'e2e-viewer', role: 'viewer' });
  const viewer = await newPage(browser, null);
  await login(viewer.page, created.secret);
  assert((await viewer.page.textContent('[data-testid=role]')) === 'viewer', 'role shown');
  await viewer.page.waitForSelector(`tr[data-service="${SHOP}"]`);
  const buttons = async () =>
    viewer.page.$$eval('[data-testid^=rollback-], [data-testid=rollout-actions], nav a[href="/deploy"]', (e) => e.length);
  assert((await buttons()) === 0, 'no rollback buttons or deploy link for a viewer (overview)');
  await shot(viewer.page, 'overview-viewer');
  await viewer.page.goto(`${API}/rollouts/${v3.id}`);
  await viewer.page.waitForSelector('[data-testid=rollout-state]');
  assert((await buttons()) === 0, 'no actions for a viewer (rollout)');
  await viewer.page.goto(`${API}/incidents/${incidentId}`);
  await viewer.page.waitForSelector('[data-testid=incident-status]');
  assert((await viewer.page.$$('[data-testid=incident-actions]')).length === 0, 'no incident actions for a viewer');
  await viewer.page.goto(`${API}/services/${SHOP}`);
  await viewer.page.waitForSelector('[data-testid=stable-version]');
  assert((await buttons()) === 0, 'no actions for a viewer (service)');
  const refused = await fetch(`${API}/api/v1/services/${SHOP}/rollback`, {
    method: 'POST',
    headers: { authorization: `Bearer ${created.secret}` },
  });
  assert(refused.status === 403, `the API refuses a viewer's rollback (${refused.status})`);
  await viewer.context.close();

  // --- An approval gate: approved from the dashboard by the person it names, a viewer
  // whose token is under the approval's name; resume and promote are not offered.
  if (GATED) {
    const approver = await api('POST', '/api/v1/tokens', { name: 'release-manager.e2e', role: 'viewer' });
    const gated = await api('POST', `/api/v1/services/${GATED}/deployments`, { version: 'v2', reason: 'gated' });
    const manager = await newPage(browser, null);
    await login(manager.page, approver.secret);
    await manager.page.goto(`${API}/rollouts/${gated.id}`);
    await manager.page.waitForSelector('[data-testid=action-approve]', { timeout: 60_000 });
    const offered = await manager.page.$$eval('[data-testid=rollout-actions] button', (b) =>
      b.map((x) => x.getAttribute('data-testid')),
    );
    assert(offered.join() === 'action-approve', `only approve is offered to the approver: ${offered}`);
    await shot(manager.page, 'rollout-approval');
    await manager.page.click('[data-testid=action-approve]');
    await manager.page.click('dialog[open] [data-testid=confirm]');
    await manager.page.waitForFunction(
      () => document.querySelector('[data-testid=rollout-state]')?.textContent === 'succeeded',
      null,
      { timeout: 60_000 },
    );
    const detail = await api('GET', `/api/v1/deployments/${gated.id}`);
    const approvals = detail.record.rollout.approvals;
    assert(approvals.length === 1 && approvals[0].by === 'release-manager.e2e', `approved by the approver: ${JSON.stringify(approvals)}`);
    figures.approved_from_dashboard = true;
    assert(manager.problems.length === 0, `approver page logged errors: ${manager.problems.join(' | ')}`);
    await manager.context.close();
  }

  for (const [who, problems] of [['admin', admin.problems]]) {
    assert(problems.length === 0, `${who} page logged errors: ${problems.join(' | ')}`);
  }
  await admin.context.close();
}

main().catch((e) => {
  console.error(`[e2e] FAILED: ${e.stack ?? e}`);
  process.exit(1);
});
