// The harness of the end-to-end tests (spa.test.mjs, factors.test.mjs, live.test.mjs): the real server and `vite preview`
// on loopback, Debian's headless Chromium (never a downloaded one), Mailpit for mail, and watch(), which
// screenshots every step and explains a failure with the page's console, GraphQL calls and server log.
//
// Everything runs on loopback: the server on 127.0.0.1:18080, `vite preview` on localhost:5173, Mailpit
// (SMTP TEST_SMTP_URL, default smtp://127.0.0.1:1025; API TEST_MAILPIT_URL, default http://127.0.0.1:8025).
// Each test file starts its own stack (node --test runs the files one after another).
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
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

export const SERVER_ADDR = '127.0.0.1:18080';
export const API_FOR_BROWSER = 'http://localhost:18080/graphql'; // what the SPA is built with
export const API_FOR_NODE = `http://${SERVER_ADDR}/graphql`;
export const APP_ORIGIN = 'http://localhost:5173';
export const ACCESS_TOKEN_TTL_S = 3;
export const SERVER_EXP_LEEWAY_S = 5; // the server accepts a token until 5 s (clock skew) after its exp
export const REAUTH_MAX_AGE_S = 60;

// Mailpit, which may be shared with other tests: this test only reads mail to its own unique addresses
// and never deletes any.
const SMTP_URL = process.env.TEST_SMTP_URL || 'smtp://127.0.0.1:1025';
const MAILPIT_URL = (process.env.TEST_MAILPIT_URL || 'http://127.0.0.1:8025').replace(/\/+$/, '');

const SERVER_ENV = {
  ADDR: SERVER_ADDR,
  // Passkeys: the page's origin is the relying party's (localhost is a secure context, so WebAuthn works).
  WEBAUTHN_RP_ID: 'localhost',
  WEBAUTHN_RP_ORIGINS: APP_ORIGIN,
  // Step-up: the shortest the server allows, so that factors.test.mjs can see a sign-in go stale.
  REAUTH_MAX_AGE: `${REAUTH_MAX_AGE_S}s`,
  // factors.test.mjs spends a few wrong codes on purpose (wrong code, replayed recovery code, a challenge
  // killed by five wrong codes): room for them, so that the per-account limit is not what it tests.
  MFA_RATE_LIMIT: '50/15m',
  // TOTP_ENCRYPTION_KEY unset: in development the server makes DATA_DIR/totp.key.
  REFRESH_TOKEN_COOKIE: 'true',
  COOKIE_SECURE: 'false', // the page is http://localhost; never in production
  CORS_ALLOWED_ORIGINS: APP_ORIGIN,
  ACCESS_TOKEN_TTL: `${ACCESS_TOKEN_TTL_S}s`,
  LOGIN_RATE_LIMIT: 'off',
  SMTP_URL,
  // The mailed links open the SPA, which calls resetPassword / verifyEmail with the token.
  PASSWORD_RESET_URL: `${APP_ORIGIN}/reset-password?token={token}`,
  EMAIL_VERIFICATION_URL: `${APP_ORIGIN}/verify-email?token={token}`,
  // Trusted documents: the server runs only the SPA's operations (src/gql/persisted-documents.json) and
  // the few that the tests send from Node (NODE_DOCUMENTS); startStack writes the two into one manifest.
  TRUSTED_DOCUMENTS: 'require',
};

/**
 * The operations the tests send from Node (gql), the server's other trusted client (think: a phone
 * app with a manifest of its own). gql refuses any other text, as the server would.
 */
const NODE_DOCUMENTS = [
  'mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken } }',
  'mutation($i: LoginInput!) { login(input: $i) { accessToken } }',
  'mutation { refreshToken { accessToken } }',
  '{ me { email } }',
];

/** The code with which the server refuses an operation that is not in its manifest. */
export const NOT_TRUSTED = 'OPERATION_NOT_TRUSTED';

const documentIdOf = (text) => `sha256:${createHash('sha256').update(text).digest('hex')}`;

/** The SPA's manifest, as codegen wrote it: documentId ("sha256:<hex>") → document. */
const SPA_MANIFEST = JSON.parse(await readFile(path.join(appDir, 'src', 'gql', 'persisted-documents.json'), 'utf8'));

/** Every trusted document (the SPA's and NODE_DOCUMENTS) by documentId. */
const MANIFEST = { ...SPA_MANIFEST, ...Object.fromEntries(NODE_DOCUMENTS.map((d) => [documentIdOf(d), d])) };

/**
 * The text of the document a GraphQL request body (or graphql-ws subscribe payload) stands for: its
 * query, or the trusted document its documentId or extensions.persistedQuery names ('' if none).
 */
export function documentOf(body) {
  if (body?.query) return body.query;
  const apq = body?.extensions?.persistedQuery?.sha256Hash;
  return MANIFEST[body?.documentId] ?? (apq ? MANIFEST[`sha256:${apq}`] : undefined) ?? '';
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
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

/**
 * A GraphQL request from Node, straight to the server (not a browser: no Origin, no cookie jar). The
 * query must be one of NODE_DOCUMENTS: it is sent by its documentId, as a trusted client does.
 */
export async function gql(query, options = {}) {
  const id = documentIdOf(query);
  if (!MANIFEST[id]) throw new Error(`gql: not a trusted document; add it to NODE_DOCUMENTS in harness.mjs: ${query}`);
  return post({ documentId: id, variables: options.variables }, options);
}

/** An ad-hoc operation from Node: its text, which the server (TRUSTED_DOCUMENTS=require) must refuse. */
export async function untrustedGql(query, options = {}) {
  return post({ query, variables: options.variables }, options);
}

async function post(payload, { token, cookie } = {}) {
  const headers = { 'Content-Type': 'application/json', 'User-Agent': 'gqlauth-e2e-node' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (cookie) headers.Cookie = cookie;
  const res = await fetch(API_FOR_NODE, { method: 'POST', headers, body: JSON.stringify(payload) });
  const body = await res.json();
  const setCookie = res.headers.getSetCookie().find((c) => c.startsWith('refresh_token='));
  return { status: res.status, body, cookie: setCookie?.split(';')[0] };
}

/** A unique address for one test, so that its mail can be told apart in a shared Mailpit. */
export function uniqueEmail(prefix) {
  return `${prefix}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`;
}

async function mailpit(pathAndQuery) {
  const res = await fetch(`${MAILPIT_URL}${pathAndQuery}`, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`Mailpit ${pathAndQuery}: HTTP ${res.status}`);
  return res.json();
}

const mailText = new Map(); // Mailpit message ID → its text part (messages do not change)

/** Every message to `to` in Mailpit, oldest first, with its subject and text part. */
export async function mailTo(to) {
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
export async function waitForLink(to, pathname, { count = 1, timeoutMs = 30_000 } = {}) {
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

/**
 * Builds and starts the server and `vite preview`, launches Chromium and returns it. `shotPrefixes`: the
 * screenshot names of the calling test file, whose old screenshots are removed (other files' stay).
 */
export async function startStack({ shotPrefixes }) {
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
  await mkdir(shotsDir, { recursive: true });
  for (const name of await readdir(shotsDir)) {
    if (shotPrefixes.some((p) => name.startsWith(`${p}-`))) await rm(path.join(shotsDir, name), { force: true });
  }

  // 1. The server, with a fresh data directory and only the settings below (no inherited
  //    DATABASE_URL, REDIS_URL or keys).
  const serverBin = path.join(tmp, 'server');
  const manifest = path.join(tmp, 'trusted-documents.json');
  await writeFile(manifest, JSON.stringify(MANIFEST, null, 2));
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
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? tmp,
      DATA_DIR: path.join(tmp, 'data'),
      TRUSTED_DOCUMENTS_FILE: manifest,
      ...SERVER_ENV,
    },
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
  return browser;
}

export async function stopStack() {
  await browser?.close().catch(() => {});
  await Promise.all([stopProcess(preview), stopProcess(server)]);
  if (tmp) await rm(tmp, { recursive: true, force: true });
}

/**
 * Watches a page for a test: the browser console, every GraphQL call with its error codes, helpers on
 * data-testid elements, and step(), which screenshots each step (e2e/screenshots/<prefix>-NN-<step>.png)
 * and, when one fails, names it and adds the console, the calls and the server's log to the error.
 */
export function watch(context, page, prefix) {
  const consoleLog = [];
  page.on('console', (m) => consoleLog.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLog.push(`[pageerror] ${e.message}`));

  // Every GraphQL POST the page makes: the operation (the trusted document its hash names), whether it
  // carried the text itself (sentText: it should not), and, once answered, the error codes.
  const calls = [];
  page.on('request', (req) => {
    if (req.method() !== 'POST' || req.url() !== API_FOR_BROWSER) return;
    let body = {};
    try {
      body = JSON.parse(req.postData() ?? '{}');
    } catch {
      // counted below as an unknown operation
    }
    const call = { query: documentOf(body), sentText: Boolean(body.query), codes: null, done: null };
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

  // Every WebSocket of the page (the live feed's graphql-ws connection): its graphql-ws messages both
  // ways (parsed JSON; pings and pongs left out) and whether it closed. (Playwright does not report
  // the close code: the page keeps it in live-state's data-last-close.)
  const sockets = [];
  page.on('websocket', (ws) => {
    const socket = { url: ws.url(), sent: [], received: [], closed: false };
    const keep = (list) => (frame) => {
      let message;
      try {
        message = JSON.parse(String(frame.payload));
      } catch {
        message = { type: 'unparsable', payload: String(frame.payload).slice(0, 200) };
      }
      if (message.type !== 'ping' && message.type !== 'pong') list.push(message);
    };
    ws.on('framesent', keep(socket.sent));
    ws.on('framereceived', keep(socket.received));
    ws.on('close', () => {
      socket.closed = true;
    });
    sockets.push(socket);
  });
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
      const socketLines = sockets.map(
        (s, i) =>
          `#${i + 1}${s.closed ? ' (closed)' : ''} sent ${s.sent.map((m) => m.type).join(',') || '-'}; ` +
          `received ${s.received.map((m) => m.payload?.data?.sessionEvents?.type ?? m.type).join(',') || '-'}`,
      );
      err.message =
        `step "${name}" failed: ${err.message}\n` +
        `--- browser console ---\n${consoleLog.slice(-30).join('\n')}\n` +
        `--- GraphQL calls of the page ---\n${ops.slice(-30).join('\n')}\n` +
        `--- WebSockets of the page ---\n${socketLines.slice(-10).join('\n')}\n` +
        `--- server output (tail) ---\n${server.log.slice(-4000)}`;
      throw err;
    }
  };

  return { calls, settle, refreshCalls, sockets, byId, idle, visible, text, rows, noError, refreshCookie, step, pageErrors };
}
