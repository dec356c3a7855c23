// End-to-end test of the SPA against the real server in a headless Chromium (Debian's, never a
// downloaded one): cookie mode, CORS, single-flight refresh, session revocation, logout; and, with the
// mail read back from Mailpit, e-mail verification and password reset.
//
//   npm run e2e          (needs Go, /usr/bin/chromium: apt-get install -y chromium, and Mailpit)
//
// Everything runs on loopback: the server on 127.0.0.1:18080, `vite preview` on localhost:5173, Mailpit
// (SMTP TEST_SMTP_URL, default smtp://127.0.0.1:1025; API TEST_MAILPIT_URL, default http://127.0.0.1:8025).
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

// Mailpit, which may be shared with other tests: this test only reads mail to its own unique addresses
// and never deletes any.
const SMTP_URL = process.env.TEST_SMTP_URL || 'smtp://127.0.0.1:1025';
const MAILPIT_URL = (process.env.TEST_MAILPIT_URL || 'http://127.0.0.1:8025').replace(/\/+$/, '');

const SERVER_ENV = {
  ADDR: SERVER_ADDR,
  REFRESH_TOKEN_COOKIE: 'true',
  COOKIE_SECURE: 'false', // the page is http://localhost; never in production
  CORS_ALLOWED_ORIGINS: APP_ORIGIN,
  ACCESS_TOKEN_TTL: `${ACCESS_TOKEN_TTL_S}s`,
  LOGIN_RATE_LIMIT: 'off',
  SMTP_URL,
  // The mailed links open the SPA, which calls resetPassword / verifyEmail with the token.
  PASSWORD_RESET_URL: `${APP_ORIGIN}/reset-password?token={token}`,
  EMAIL_VERIFICATION_URL: `${APP_ORIGIN}/verify-email?token={token}`,
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

/** A unique address for one test, so that its mail can be told apart in a shared Mailpit. */
function uniqueEmail(prefix) {
  return `${prefix}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`;
}

async function mailpit(pathAndQuery) {
  const res = await fetch(`${MAILPIT_URL}${pathAndQuery}`, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`Mailpit ${pathAndQuery}: HTTP ${res.status}`);
  return res.json();
}

const mailText = new Map(); // Mailpit message ID → its text part (messages do not change)

/** Every message to `to` in Mailpit, oldest first, with its subject and text part. */
async function mailTo(to) {
  const found = await mailpit(`/api/v1/search?limit=200&query=${encodeURIComponent(`to:"${to}"`)}`);
  const messages = (found.messages ?? []).filter((m) => (m.To ?? []).some((r) => r.Address.toLowerCase() === to.toLowerCase()));
  messages.sort((a, b) => Date.parse(a.Created) - Date.parse(b.Created));
  const out = [];
  for (const m of messages) {
    if (!mailText.has(m.ID)) mailText.set(m.ID, (await mailpit(`/api/v1/message/${encodeURIComponent(m.ID)}`)).Text ?? '');
    out.push({ id: m.ID, subject: m.Subject, text: mailText.get(m.ID) });
  }
  return out;
}

/**
 * Waits until at least `count` mails to `to` carry a link to APP_ORIGIN + pathname (`?token=…`) in
 * their text part, and returns the newest such link. The server sends from its outbox in the
 * background, so the mail comes a moment after the mutation that asked for it.
 */
async function waitForLink(to, pathname, { count = 1, timeoutMs = 30_000 } = {}) {
  const escaped = `${APP_ORIGIN}${pathname}`.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const pattern = new RegExp(`${escaped}\\?token=[A-Za-z0-9_-]+`);
  const deadline = Date.now() + timeoutMs;
  let mails = [];
  while (Date.now() < deadline) {
    mails = await mailTo(to);
    const links = mails.map((m) => m.text.match(pattern)?.[0]).filter(Boolean);
    if (links.length >= count) return links[links.length - 1];
    await sleep(250);
  }
  const seen = mails.map((m) => `- ${m.subject}`).join('\n') || '(none)';
  throw new Error(`no ${count} mail(s) with a ${pathname} link to ${to} within ${timeoutMs} ms; mail to it:\n${seen}`);
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
    await mailpit('/api/v1/info').catch((err) => {
      throw new Error(
        `no Mailpit API at ${MAILPIT_URL} (${err.message}): run mailpit --smtp 127.0.0.1:1025 --listen 127.0.0.1:8025, ` +
          'or set TEST_SMTP_URL and TEST_MAILPIT_URL',
      );
    });
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

/**
 * Watches a page for a test: the browser console, every GraphQL call with its error codes, helpers on
 * data-testid elements, and step(), which screenshots each step (e2e/screenshots/<prefix>-NN-<step>.png)
 * and, when one fails, names it and adds the console, the calls and the server's log to the error.
 */
function watch(context, page, prefix) {
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
    await page.screenshot({ path: path.join(shotsDir, `${prefix}-${String(shot).padStart(2, '0')}-${name}.png`), fullPage: true });
  };

  const byId = (id) => page.locator(`[data-testid="${id}"]`);
  const idle = () => page.waitForSelector('body:not([aria-busy])', { state: 'attached' });
  const visible = (id) => byId(id).waitFor({ state: 'visible' });
  const text = (id) => byId(id).textContent();
  const rows = () => byId('session-row').count();
  const noError = async () => assert.equal(await byId('error').isVisible(), false, `error shown: ${await text('error')}`);
  const pageErrors = () => consoleLog.filter((l) => l.startsWith('[pageerror]'));
  const refreshCookie = async () =>
    (await context.cookies(API_FOR_BROWSER)).find((c) => c.name === 'refresh_token');

  const step = async (name, fn) => {
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

  return { calls, settle, refreshCalls, byId, idle, visible, text, rows, noError, refreshCookie, step, pageErrors };
}

test('SPA: cookie session, single-flight refresh, revoke, logout', { timeout: 90_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const { calls, settle, refreshCalls, byId, idle, visible, text, rows, noError, refreshCookie, step, pageErrors } = watch(context, page, 'session');

  const email = uniqueEmail('e2e');
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

    assert.deepEqual(pageErrors(), [], 'uncaught errors in the page');
  } finally {
    await context.close().catch(() => {});
  }
});

test('SPA: e-mail verification and password reset, with the mail read back from Mailpit', { timeout: 150_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const { byId, idle, visible, text, noError, refreshCookie, step, pageErrors } = watch(context, page, 'mail');

  const email = uniqueEmail('e2e-mail');
  const oldPassword = 'correct horse battery';
  const newPassword = 'tr0ubador & new staple';
  const neutral = 'If an account exists for that address, we sent a link.';
  const verified = () => byId('me-verified').getAttribute('data-verified');
  const setNewPassword = async (pw, again = pw) => {
    await byId('reset-password-input').fill(pw);
    await byId('reset-password-confirm-input').fill(again);
    await byId('reset-button').click();
    await idle();
  };
  const logIn = async (pw) => {
    await byId('email-input').fill(email);
    await byId('password-input').fill(pw);
    await byId('login-button').click();
    await idle();
  };

  try {
    await step('registered-unverified', async () => {
      await page.goto(`${APP_ORIGIN}/`);
      await idle();
      await byId('email-input').fill(email);
      await byId('password-input').fill(oldPassword);
      await byId('register-button').click();
      await idle();
      await noError();
      assert.equal(await text('me-email'), email);
      assert.equal(await verified(), 'false');
      await visible('resend-verification-button');
    });

    await step('verification-resent', async () => {
      await waitForLink(email, '/verify-email'); // the one register sent
      await byId('resend-verification-button').click();
      await idle();
      await noError();
      assert.equal(await text('status'), `Verification e-mail sent to ${email}.`);
    });

    let verifyLink;
    await step('verified', async () => {
      verifyLink = await waitForLink(email, '/verify-email', { count: 2 }); // the newest: the resent one
      await page.goto(verifyLink);
      await idle();
      await noError();
      await visible('verify');
      assert.equal(await byId('verify-result').getAttribute('data-result'), 'verified', await text('verify-result'));
      assert.match(await text('verify-result'), new RegExp(email.replace(/[.+]/g, '\\$&')));
      assert.equal(new URL(page.url()).search, '', 'the spent token stayed in the address bar');
    });

    await step('signed-in-view-shows-verified', async () => {
      await byId('verify-continue-link').click();
      await idle();
      await noError();
      assert.equal(await text('me-email'), email, 'the cookie session did not come back after the verify page');
      assert.equal(await verified(), 'true');
      assert.equal(await byId('resend-verification-button').isVisible(), false);
    });

    await step('verification-link-single-use', async () => {
      await page.goto(verifyLink);
      await idle();
      await noError();
      assert.equal(await byId('verify-result').getAttribute('data-result'), 'invalid');
      assert.match(await text('verify-result'), /^This link is invalid or has expired\./);
    });

    await step('forgot-password-page', async () => {
      await page.goto(`${APP_ORIGIN}/`);
      await idle();
      await byId('logout-button').click();
      await idle();
      await visible('login-form');
      await byId('forgot-link').click();
      await idle();
      await visible('forgot-form');
      assert.equal(new URL(page.url()).pathname, '/forgot-password');
      await noError();
    });

    // The same answer for an address without an account, and no mail to it (checked below, once the
    // mail to the real address has arrived).
    const nobody = uniqueEmail('e2e-nobody');
    await step('forgot-unknown-address', async () => {
      await byId('forgot-email-input').fill(nobody);
      await byId('forgot-button').click();
      await idle();
      await noError();
      await visible('forgot-sent');
      assert.equal(await text('forgot-sent'), neutral);
    });

    await step('forgot-known-address', async () => {
      await byId('forgot-email-input').fill(email);
      await byId('forgot-button').click();
      await idle();
      await noError();
      await visible('forgot-sent');
      assert.equal(await text('forgot-sent'), neutral);
    });

    let resetLink;
    await step('reset-mail-arrived', async () => {
      resetLink = await waitForLink(email, '/reset-password');
      assert.deepEqual(await mailTo(nobody), [], 'mail went to an address that has no account');
    });

    await step('reset-invalid-token', async () => {
      await page.goto(`${APP_ORIGIN}/reset-password?token=not-a-real-token`);
      await idle();
      await setNewPassword(newPassword);
      await noError();
      await visible('reset-invalid');
      assert.equal((await text('reset-invalid')).trim(), 'This link is invalid or has expired. Request a new one.');
      await byId('reset-request-new-link').click();
      await idle();
      await visible('forgot-form');
    });

    await step('reset-passwords-differ', async () => {
      await page.goto(resetLink);
      await idle();
      await visible('reset-form');
      await setNewPassword(newPassword, `${newPassword}!`);
      await visible('reset-field-error');
      assert.equal(await text('reset-field-error'), 'The two passwords do not match.');
    });

    await step('reset-weak-password-keeps-link', async () => {
      await setNewPassword('short');
      await noError();
      await visible('reset-field-error');
      assert.notEqual(await text('reset-field-error'), 'The two passwords do not match.');
      await visible('reset-form');
    });

    await step('reset-signed-in', async () => {
      await setNewPassword(newPassword);
      await noError();
      await visible('account');
      assert.equal(await text('me-email'), email);
      assert.equal(await verified(), 'true');
      assert.equal(new URL(page.url()).pathname + new URL(page.url()).search, '/', 'the spent link stayed in the address bar');
      assert.ok(await refreshCookie(), 'resetPassword set no refresh_token cookie');
      assert.equal(await text('status'), 'Your password was changed; every other session was signed out.');
      await page.reload();
      await idle();
      await noError();
      assert.equal(await text('me-email'), email, 'the session of the reset did not survive a reload');
    });

    await step('reset-link-single-use', async () => {
      await page.goto(resetLink);
      await idle();
      await setNewPassword('yet another password');
      await noError();
      await visible('reset-invalid');
    });

    await step('old-password-refused', async () => {
      await page.goto(`${APP_ORIGIN}/`);
      await idle();
      await byId('logout-button').click();
      await idle();
      await visible('login-form');
      await logIn(oldPassword);
      await visible('error');
      assert.match(await text('error'), /^INVALID_CREDENTIALS/);
    });

    await step('new-password-works', async () => {
      await logIn(newPassword);
      await noError();
      assert.equal(await text('me-email'), email);
    });

    assert.deepEqual(pageErrors(), [], 'uncaught errors in the page');
  } finally {
    await context.close().catch(() => {});
  }
});
