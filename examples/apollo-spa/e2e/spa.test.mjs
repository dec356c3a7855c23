// End-to-end test of the SPA against the real server in a headless Chromium (Debian's, never a
// downloaded one): cookie mode, CORS, single-flight refresh, session revocation, logout.
//
//   npm run e2e          (needs Go, and /usr/bin/chromium: apt-get install -y chromium)
//
// Everything runs on loopback: the server on 127.0.0.1:18080, `vite preview` on localhost:5173.
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
const appDir = path.resolve(here, '..');
const repoRoot = path.resolve(appDir, '../..');
const shotsDir = path.join(here, 'screenshots');
const viteBin = path.join(appDir, 'node_modules', 'vite', 'bin', 'vite.js');
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const SERVER_ADDR = '127.0.0.1:18080';
const API_FOR_BROWSER = 'http://localhost:18080/graphql'; // what the SPA is built with
const API_FOR_NODE = `http://${SERVER_ADDR}/graphql`;
const APP_ORIGIN = 'http://localhost:5173';
const ACCESS_TOKEN_TTL_S = 3;
const SERVER_EXP_LEEWAY_S = 5; // the server accepts a token until 5 s (clock skew) after its exp

const SERVER_ENV = {
  ADDR: SERVER_ADDR,
  REFRESH_TOKEN_COOKIE: 'true',
  COOKIE_SECURE: 'false', // the page is http://localhost; never in production
  CORS_ALLOWED_ORIGINS: APP_ORIGIN,
  ACCESS_TOKEN_TTL: `${ACCESS_TOKEN_TTL_S}s`,
  LOGIN_RATE_LIMIT: 'off',
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const execFileP = promisify(execFile);

/** A child process whose output is kept (bounded) for failure messages. */
function startProcess(name, cmd, args, options) {
  const child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = { name, child, log: '', exited: false, exitCode: null };
  const keep = (chunk) => {
    proc.log = (proc.log + chunk.toString()).slice(-20_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.on('exit', (code, signal) => {
    proc.exited = true;
    proc.exitCode = code ?? signal;
  });
  child.on('error', (err) => keep(`\n[spawn error] ${err.message}\n`));
  return proc;
}

async function stopProcess(proc) {
  if (!proc || proc.exited) return;
  proc.child.kill('SIGTERM');
  for (let i = 0; i < 50 && !proc.exited; i++) await sleep(100);
  if (!proc.exited) proc.child.kill('SIGKILL');
}

/** Polls url until it answers 200, failing early when proc dies. */
async function waitForHttp(url, proc, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exited) throw new Error(`${proc.name} exited (${proc.exitCode}) before ${url} answered:\n${proc.log}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await sleep(100);
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms; ${proc.name} output:\n${proc.log}`);
}

async function portAnswers(url) {
  try {
    await fetch(url, { signal: AbortSignal.timeout(500) });
    return true;
  } catch {
    return false;
  }
}

/** A GraphQL request from Node, straight to the server (not a browser: no Origin, no cookie jar). */
async function gql(query, { variables, token, cookie } = {}) {
  const headers = { 'Content-Type': 'application/json', 'User-Agent': 'gqlauth-e2e-node' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (cookie) headers.Cookie = cookie;
  const res = await fetch(API_FOR_NODE, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = await res.json();
  const setCookie = res.headers.getSetCookie().find((c) => c.startsWith('refresh_token='));
  return { status: res.status, body, cookie: setCookie?.split(';')[0] };
}

let tmp;
let server;
let preview;
let browser;

before(
  async () => {
    if (!existsSync(chromiumPath)) {
      throw new Error(`no Chromium at ${chromiumPath}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
    }
    if (!existsSync(viteBin)) throw new Error(`no ${viteBin}: run npm ci in ${appDir}`);
    for (const url of [`http://${SERVER_ADDR}/healthz`, `${APP_ORIGIN}/`]) {
      if (await portAnswers(url)) throw new Error(`something already answers at ${url}; stop it first`);
    }
    tmp = await mkdtemp(path.join(tmpdir(), 'gqlauth-spa-e2e-'));
    await rm(shotsDir, { recursive: true, force: true });
    await mkdir(shotsDir, { recursive: true });

    // 1. The server, with a fresh data directory and only the settings below (no inherited
    //    DATABASE_URL, REDIS_URL or keys).
    const serverBin = path.join(tmp, 'server');
    const dist = path.join(tmp, 'dist');
    const built = Promise.all([
      execFileP('go', ['build', '-o', serverBin, './cmd/server'], { cwd: repoRoot, timeout: 120_000 }).catch((err) => {
        throw new Error(`go build failed:\n${err.stderr || err.message}`);
      }),
      // 2. The SPA, built against the server's URL.
      execFileP(process.execPath, [viteBin, 'build', '--outDir', dist, '--emptyOutDir', '--logLevel', 'warn'], {
        cwd: appDir,
        timeout: 120_000,
        env: { ...process.env, VITE_GRAPHQL_URL: API_FOR_BROWSER },
      }).catch((err) => {
        throw new Error(`vite build failed:\n${err.stderr || err.message}`);
      }),
    ]);
    await built;

    server = startProcess('server', serverBin, [], {
      cwd: tmp,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmp, DATA_DIR: path.join(tmp, 'data'), ...SERVER_ENV },
    });
    preview = startProcess(
      'vite preview',
      process.execPath,
      [viteBin, 'preview', '--outDir', dist, '--host', 'localhost', '--port', '5173', '--strictPort'],
      { cwd: appDir, env: process.env },
    );
    await Promise.all([
      waitForHttp(`http://${SERVER_ADDR}/healthz`, server, 15_000),
      waitForHttp(`${APP_ORIGIN}/`, preview, 15_000),
    ]);

    browser = await chromium.launch({
      executablePath: chromiumPath,
      timeout: 30_000,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-quic',
        '--no-first-run',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  },
  { timeout: 150_000 },
);

after(async () => {
  await browser?.close().catch(() => {});
  await Promise.all([stopProcess(preview), stopProcess(server)]);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test('SPA: cookie session, single-flight refresh, revoke, logout', { timeout: 90_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);

  const consoleLog = [];
  page.on('console', (m) => consoleLog.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLog.push(`[pageerror] ${e.message}`));

  // Every GraphQL POST the page makes: the operation and, once answered, the error codes.
  const calls = [];
  page.on('request', (req) => {
    if (req.method() !== 'POST' || req.url() !== API_FOR_BROWSER) return;
    let body = {};
    try {
      body = JSON.parse(req.postData() ?? '{}');
    } catch {
      // counted below as an unknown operation
    }
    const call = { query: body.query ?? '', codes: null, done: null };
    call.done = req
      .response()
      .then((res) => res?.json())
      .then((json) => {
        call.codes = (json?.errors ?? []).map((e) => e.extensions?.reason ?? e.extensions?.code);
      })
      .catch(() => {
        call.codes = ['NO_RESPONSE'];
      });
    calls.push(call);
  });
  const settle = () => Promise.all(calls.map((c) => c.done));
  const refreshCalls = (list) => list.filter((c) => c.query.includes('refreshToken'));

  let shot = 0;
  const screenshot = async (name) => {
    shot += 1;
    await page.screenshot({ path: path.join(shotsDir, `${String(shot).padStart(2, '0')}-${name}.png`), fullPage: true });
  };

  const byId = (id) => page.locator(`[data-testid="${id}"]`);
  const idle = () => page.waitForSelector('body:not([aria-busy])', { state: 'attached' });
  const visible = (id) => byId(id).waitFor({ state: 'visible' });
  const text = (id) => byId(id).textContent();
  const rows = () => byId('session-row').count();
  const noError = async () => assert.equal(await byId('error').isVisible(), false, `error shown: ${await text('error')}`);
  const refreshCookie = async () =>
    (await context.cookies(API_FOR_BROWSER)).find((c) => c.name === 'refresh_token');

  const steps = [];
  const step = async (name, fn) => {
    steps.push(name);
    try {
      await fn();
      await screenshot(name);
    } catch (err) {
      await screenshot(`FAILED-${name}`).catch(() => {});
      await settle();
      const ops = calls.map((c) => `${c.query.replace(/\s+/g, ' ').slice(0, 60)} -> ${JSON.stringify(c.codes)}`);
      err.message =
        `step "${name}" failed: ${err.message}\n` +
        `--- browser console ---\n${consoleLog.slice(-30).join('\n')}\n` +
        `--- GraphQL calls of the page ---\n${ops.slice(-30).join('\n')}\n` +
        `--- server output (tail) ---\n${server.log.slice(-4000)}`;
      throw err;
    }
  };

  const email = `e2e-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`;
  const password = 'correct horse battery';

  try {
    await step('login-form', async () => {
      await page.goto(`${APP_ORIGIN}/`);
      await idle();
      await visible('login-form');
      assert.equal(await byId('account').isVisible(), false);
      await noError();
    });

    await step('registered', async () => {
      await byId('email-input').fill(email);
      await byId('password-input').fill(password);
      await byId('register-button').click();
      await idle();
      await noError();
      assert.equal(await text('me-email'), email);
      assert.equal(await rows(), 1);
      const cookie = await refreshCookie();
      assert.ok(cookie, 'register set no refresh_token cookie');
      assert.equal(cookie.httpOnly, true, 'refresh_token cookie is not HttpOnly');
      assert.equal(cookie.sameSite, 'Strict');
      assert.equal(cookie.path, '/graphql');
      const stored = await page.evaluate(() => JSON.stringify([{ ...localStorage }, { ...sessionStorage }, document.cookie]));
      assert.equal(stored, '[{},{},""]', 'the page stored something in web storage or script-visible cookies');
    });

    await step('reloaded-still-logged-in', async () => {
      await page.reload();
      await idle();
      await noError();
      assert.equal(await text('me-email'), email, 'the cookie did not restore the session after a reload');
    });

    await step('refresh-after-expiry', async () => {
      // Past the access token's expiry (plus the server's leeway): the in-memory token is now refused.
      await sleep((ACCESS_TOKEN_TTL_S + SERVER_EXP_LEEWAY_S) * 1000 + 1500);
      await settle();
      const before = calls.length;
      await byId('refresh-button').click();
      await idle();
      await settle();
      await noError();
      const these = calls.slice(before);
      const failed = these.filter((c) => c.codes?.includes('TOKEN_EXPIRED'));
      assert.equal(failed.length, 2, `expected me and sessions to fail with TOKEN_EXPIRED once each; calls: ${JSON.stringify(these.map((c) => c.codes))}`);
      assert.equal(refreshCalls(these).length, 1, `expected exactly one refreshToken request, got ${refreshCalls(these).length}`);
      assert.equal(these.length, 5, 'expected me + sessions, one refresh, me + sessions again');
      assert.equal(await text('me-email'), email);
      assert.equal(await rows(), 1);
    });

    // A second session of the same user, made from Node (think: a phone).
    let other;
    await step('second-session-listed', async () => {
      const { body, cookie } = await gql('mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken } }', {
        variables: { i: { email, password } },
      });
      assert.ok(body.data?.login?.accessToken, `login from Node failed: ${JSON.stringify(body)}`);
      assert.equal(body.data.login.refreshToken, null, 'cookie mode must not return the refresh token in the body');
      assert.ok(cookie, 'login from Node got no refresh_token cookie');
      other = { cookie };
      await byId('refresh-button').click();
      await idle();
      await noError();
      assert.equal(await rows(), 2);
      assert.equal(await byId('revoke-button').count(), 1, 'exactly the non-current session has a Revoke button');
      assert.equal(await byId('current-marker').count(), 1);
    });

    await step('other-session-revoked', async () => {
      // A fresh access token for the other session, so that it cannot have expired by the check below.
      const refreshed = await gql('mutation { refreshToken { accessToken } }', { cookie: other.cookie });
      assert.ok(refreshed.body.data?.refreshToken?.accessToken, `refresh from Node failed: ${JSON.stringify(refreshed.body)}`);
      other = { token: refreshed.body.data.refreshToken.accessToken, cookie: refreshed.cookie };

      await byId('revoke-button').click();
      await idle();
      await noError();
      const me = await gql('{ me { email } }', { token: other.token });
      assert.equal(await rows(), 1);
      assert.equal(await byId('current-marker').count(), 1, 'the remaining session is not the current one');
      const ext = me.body.errors?.[0]?.extensions;
      assert.deepEqual(
        { code: ext?.code, reason: ext?.reason },
        { code: 'UNAUTHENTICATED', reason: 'SESSION_REVOKED' },
        `me with the revoked session's access token: ${JSON.stringify(me.body)}`,
      );
      const again = await gql('mutation { refreshToken { accessToken } }', { cookie: other.cookie });
      assert.equal(again.body.errors?.[0]?.extensions?.code, 'INVALID_REFRESH_TOKEN', JSON.stringify(again.body));
    });

    await step('logged-out', async () => {
      await byId('logout-button').click();
      await idle();
      await noError();
      await visible('login-form');
      assert.equal(await byId('account').isVisible(), false);
      assert.equal(await refreshCookie(), undefined, 'logout did not clear the refresh_token cookie');
    });

    await step('reloaded-still-logged-out', async () => {
      await page.reload();
      await idle();
      await noError();
      await visible('login-form');
      assert.equal(await byId('account').isVisible(), false);
    });

    await step('wrong-password', async () => {
      await byId('email-input').fill(email);
      await byId('password-input').fill('not the password');
      await byId('login-button').click();
      await idle();
      await visible('error');
      assert.match(await text('error'), /^INVALID_CREDENTIALS/);
      await visible('login-form');
    });

    await step('logged-in-again', async () => {
      await byId('password-input').fill(password);
      await byId('login-button').click();
      await idle();
      await noError();
      assert.equal(await text('me-email'), email);
      assert.equal(await rows(), 1);
    });

    await step('logged-out-everywhere', async () => {
      await byId('logout-all-button').click();
      await idle();
      await noError();
      await visible('login-form');
      await page.reload();
      await idle();
      await visible('login-form');
      assert.equal(await byId('account').isVisible(), false);
    });

    const pageErrors = consoleLog.filter((l) => l.startsWith('[pageerror]'));
    assert.deepEqual(pageErrors, [], 'uncaught errors in the page');
  } finally {
    await context.close().catch(() => {});
  }
});
