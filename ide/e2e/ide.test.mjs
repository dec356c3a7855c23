// End-to-end test of the embedded IDE (GET / in development) in a headless Chromium (Debian's, never a
// downloaded one) against the real server, with every request to anything but loopback aborted and
// recorded: the IDE must render and work with no network at all. It registers and logs in from the auth
// panel, runs `me`, lets the 3-second access token expire and runs `me` again (one refreshToken call),
// and logs out. No Content-Security-Policy violation may occur.
//
//   npm run e2e     (needs Go and /usr/bin/chromium: apt-get install -y chromium)
//   IDE_SCREENSHOT=1 npm run e2e    also rewrites docs/ide.png for the README
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const shotsDir = path.join(here, 'screenshots');
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

// Not 18080/5173: the SPA's end-to-end test uses those.
const ADDR = '127.0.0.1:18090';
const ORIGIN = `http://${ADDR}`;
const ACCESS_TOKEN_TTL_S = 3;

const SERVER_ENV = {
  ADDR,
  APP_ENV: 'development',
  ACCESS_TOKEN_TTL: `${ACCESS_TOKEN_TTL_S}s`,
  JWT_LEEWAY: '0s', // the token is refused as soon as it expires
  LOGIN_RATE_LIMIT: 'off',
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const execFileP = promisify(execFile);

let tmp;
let server;
let serverLog = '';
let serverExited = false;
let browser;

function isLoopback(url) {
  try {
    const u = new URL(url);
    if (u.protocol === 'data:' || u.protocol === 'blob:' || u.protocol === 'about:') return true;
    return ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
  } catch {
    return false;
  }
}

before(async () => {
  if (!existsSync(chromiumPath)) throw new Error(`no Chromium at ${chromiumPath}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  try {
    await fetch(`${ORIGIN}/healthz`, { signal: AbortSignal.timeout(500) });
    throw new Error(`something already answers at ${ORIGIN}; stop it first`);
  } catch (err) {
    if (String(err.message).startsWith('something')) throw err;
  }
  tmp = await mkdtemp(path.join(tmpdir(), 'gqlauth-ide-e2e-'));
  await mkdir(shotsDir, { recursive: true });
  const bin = path.join(tmp, 'server');
  await execFileP('go', ['build', '-o', bin, './cmd/server'], { cwd: repoRoot, timeout: 180_000 }).catch((err) => {
    throw new Error(`go build failed:\n${err.stderr || err.message}`);
  });
  // A fresh data directory (SQLite, generated keys) and only the settings above.
  server = spawn(bin, [], {
    cwd: tmp,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmp, DATA_DIR: path.join(tmp, 'data'), ...SERVER_ENV },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (chunk) => {
    serverLog = (serverLog + chunk.toString()).slice(-20_000);
  };
  server.stdout.on('data', keep);
  server.stderr.on('data', keep);
  server.on('exit', () => {
    serverExited = true;
  });
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (serverExited) throw new Error(`the server exited:\n${serverLog}`);
    try {
      if ((await fetch(`${ORIGIN}/healthz`, { signal: AbortSignal.timeout(1000) })).ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`the server did not answer within 15 s:\n${serverLog}`);
    await sleep(100);
  }
  browser = await chromium.launch({
    executablePath: chromiumPath,
    timeout: 30_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}, { timeout: 240_000 });

after(async () => {
  await browser?.close().catch(() => {});
  if (server && !serverExited) {
    server.kill('SIGTERM');
    for (let i = 0; i < 50 && !serverExited; i++) await sleep(100);
    if (!serverExited) server.kill('SIGKILL');
  }
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test('IDE: offline, strict CSP, auth panel logs in, refreshes once, logs out', { timeout: 120_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  // The network is blocked except loopback: any other request is aborted and recorded.
  const foreign = [];
  await context.route(
    (url) => !isLoopback(url.href),
    (route) => {
      foreign.push(route.request().url());
      return route.abort('blockedbyclient');
    },
  );
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);

  // The page's own record of CSP violations (an init script runs outside the page's CSP).
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const consoleLog = [];
  page.on('console', (m) => consoleLog.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLog.push(`[pageerror] ${e.message}`));
  const requests = [];
  page.on('request', (req) => requests.push(req.url()));
  // Every GraphQL POST of the page, by operation.
  const operations = [];
  page.on('request', (req) => {
    if (req.method() !== 'POST' || !req.url().endsWith('/graphql')) return;
    try {
      const body = JSON.parse(req.postData() ?? '{}');
      operations.push({ query: body.query ?? '', auth: req.headers().authorization ?? null });
    } catch {
      operations.push({ query: '?', auth: null });
    }
  });
  const refreshCalls = () => operations.filter((o) => /refreshToken\s*\(/.test(o.query)).length;

  const byId = (id) => page.locator(`[data-testid="${id}"]`);
  let shot = 0;
  const step = async (name, fn) => {
    try {
      await fn();
      shot += 1;
      await page.screenshot({ path: path.join(shotsDir, `ide-${String(shot).padStart(2, '0')}-${name}.png`) });
    } catch (err) {
      await page.screenshot({ path: path.join(shotsDir, `ide-FAILED-${name}.png`) }).catch(() => {});
      err.message =
        `step "${name}" failed: ${err.message}\n--- console ---\n${consoleLog.slice(-30).join('\n')}\n` +
        `--- GraphQL operations ---\n${operations.map((o) => o.query.replace(/\s+/g, ' ').slice(0, 80)).join('\n')}\n` +
        `--- server (tail) ---\n${serverLog.slice(-3000)}`;
      throw err;
    }
  };
  /** The response editor's text without whitespace (Monaco wraps long lines and renders spaces as nbsp). */
  const responseText = async () =>
    ((await page.locator('.graphiql-response .view-lines').textContent().catch(() => '')) ?? '').replace(/\s/g, '');
  /** Runs the query editor's operation and waits for a response containing `expect` (spaces ignored). */
  const execute = async (expect) => {
    await page.locator('.graphiql-response .view-lines').evaluate((el) => {
      el.textContent = ''; // so that the wait below sees the new response only
    });
    await page.locator('.graphiql-execute-button').click();
    const want = expect.replace(/\s/g, '');
    const deadline = Date.now() + 15_000;
    let text = '';
    while (Date.now() < deadline) {
      text = await responseText();
      if (text.includes(want)) return text;
      await sleep(100);
    }
    throw new Error(`the response never showed ${expect}: ${text}`);
  };

  const email = `ide-${Date.now()}@example.com`;
  const password = 'correct horse battery';

  await step('renders', async () => {
    const res = await page.goto(`${ORIGIN}/`);
    assert.equal(res.status(), 200);
    const csp = res.headers()['content-security-policy'] ?? '';
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    await page.locator('.graphiql-container').waitFor();
    await byId('auth-panel').waitFor();
    await byId('auth-logged-out').waitFor();
    // Monaco is up (the query editor shows the default `me` query).
    await page.locator('.graphiql-query-editor .view-lines').filter({ hasText: 'me' }).waitFor();
  });

  await step('registered', async () => {
    await byId('auth-email').fill(email);
    await byId('auth-password').fill(password);
    await byId('auth-register').click();
    await byId('auth-logged-in').waitFor();
    assert.equal(await byId('auth-user').textContent(), email);
    assert.equal(await byId('auth-refresh-via').textContent(), 'in memory');
    assert.match(await byId('auth-expires').textContent(), /in \d+ s/);
  });

  await step('me', async () => {
    const text = await execute(email);
    assert.match(text, /"role":"USER"/);
    const me = operations.filter((o) => o.query.includes('query Me')).at(-1);
    assert.match(me.auth ?? '', /^Bearer ey/, 'the IDE did not send the access token');
    if (process.env.IDE_SCREENSHOT === '1') {
      await page.screenshot({ path: path.join(repoRoot, 'docs', 'ide.png') });
    }
  });

  await step('me-after-expiry', async () => {
    const before = operations.length;
    assert.equal(refreshCalls(), 0);
    await sleep(ACCESS_TOKEN_TTL_S * 1000 + 1200);
    await execute(email);
    assert.equal(refreshCalls(), 1, 'want exactly one refreshToken call');
    // The first `me` was refused (expired), then the refresh, then the retry with the new token.
    const mine = operations.slice(before).map((o) => (o.query.includes('refreshToken') ? 'refresh' : o.query.includes('query Me') ? 'me' : 'other'));
    assert.deepEqual(mine, ['me', 'refresh', 'me']);
    assert.equal(await byId('auth-refreshes').textContent(), '1');
  });

  await step('logged-out', async () => {
    await byId('auth-logout').click();
    await byId('auth-logged-out').waitFor();
    assert.match(operations.at(-1).query, /logout\(/);
    await execute('UNAUTHENTICATED');
    assert.equal(operations.at(-1).auth, null, 'a token was sent after logout');
  });

  await step('logged-in', async () => {
    await byId('auth-email').fill(email);
    await byId('auth-password').fill(password);
    await byId('auth-login').click();
    await byId('auth-logged-in').waitFor();
    assert.equal(await byId('auth-user').textContent(), email);
    await execute(email);
    await byId('auth-logout').click();
    await byId('auth-logged-out').waitFor();
  });

  const violations = await page.evaluate(() => window.__cspViolations);
  assert.deepEqual(violations, [], 'Content-Security-Policy violations');
  assert.deepEqual(foreign, [], 'requests to other hosts than loopback');
  assert.deepEqual(requests.filter((u) => !isLoopback(u)), [], 'requests to other hosts than loopback');
  assert.deepEqual(consoleLog.filter((l) => l.startsWith('[pageerror]')), [], 'page errors');
  await context.close();
});
