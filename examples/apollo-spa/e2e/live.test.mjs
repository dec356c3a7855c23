// End-to-end test of live sessions in the SPA (issue 15): the sessionEvents subscription over graphql-ws
// (GraphQLWsLink), against the real server in headless Chromium. Two pages of one user, in two browser
// contexts (two cookie jars: two sessions, like two devices):
//   - B's live feed shows A's sign-in (SESSION_CREATED) and B's sessions list follows;
//   - B's socket outlives its access token: the server closes it with 4403 TOKEN_EXPIRED (the harness's
//     ACCESS_TOKEN_TTL is 3 s), the page refreshes and reconnects with the new token, and the feed still
//     receives events;
//   - A logs out everywhere: B shows the login form within 1 s, without any user action.
// And, with the socket mocked by a Playwright route (the page's HTTP still goes to the real server), the
// close codes no live server sends on demand: 4403 TOKEN_INVALID stops the feed without a retry, a bare
// 4403 SESSION_REVOKED close (no event before it) logs the page out, and so does a SESSION_REVOKED event
// about the page's own session (current: true) on a socket that stays open.
//
//   npm run e2e          (needs Go, /usr/bin/chromium: apt-get install -y chromium, and Mailpit)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCESS_TOKEN_TTL_S,
  APP_ORIGIN,
  SERVER_EXP_LEEWAY_S,
  documentOf,
  gql,
  startStack,
  stopStack,
  uniqueEmail,
  watch,
} from './harness.mjs';

let browser;

before(async () => {
  browser = await startStack({ shotPrefixes: ['live-a', 'live-b', 'live-mock'] });
}, { timeout: 150_000 });

after(stopStack);

const password = 'correct horse battery';

/** A page in its own browser context (its own cookie jar, so its own session), watched. */
async function openPage(prefix) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  return { context, page, ...watch(context, page, prefix) };
}

/** Signs in through the login form (registering first when `register`), and waits for the live feed. */
async function signIn(p, email, { register = false } = {}) {
  await p.page.goto(`${APP_ORIGIN}/`);
  await p.idle();
  await p.visible('login-form');
  await p.byId('email-input').fill(email);
  await p.byId('password-input').fill(password);
  await p.byId(register ? 'register-button' : 'login-button').click();
  await p.idle();
  await p.noError();
  assert.equal(await p.text('me-email'), email);
  await liveState(p, 'live');
}

/** Waits until live-state's data-state is `state`. */
const liveState = (p, state, timeout) =>
  p.page.waitForSelector(`[data-testid="live-state"][data-state="${state}"]`, { state: 'attached', timeout });

/** Waits until the feed holds `count` events of `type` (and `current`, when given). */
async function feedHas(p, type, { count = 1, current, timeout } = {}) {
  const selector = `[data-testid="live-event"][data-type="${type}"]${current === undefined ? '' : `[data-current="${current}"]`}`;
  await p.page.waitForFunction(
    ([sel, n]) => document.querySelectorAll(sel).length >= n,
    [selector, count],
    { timeout, polling: 50 },
  );
}

/** How many times the page's socket has been (re)connected (acknowledged). */
const connections = (p) => p.byId('live-state').getAttribute('data-connections').then(Number);

/** Waits until the page's socket has been connected more than `n` times and is live. */
const reconnectedAfter = (p, n, timeout) =>
  p.page.waitForFunction(
    (count) => {
      const s = document.querySelector('[data-testid="live-state"]');
      return s?.dataset.state === 'live' && Number(s.dataset.connections) > count;
    },
    n,
    { timeout, polling: 50 },
  );

/** The Authorization of every connection_init the page's sockets sent, oldest first. */
const initTokens = (p) =>
  p.sockets.flatMap((s) => s.sent.filter((m) => m.type === 'connection_init').map((m) => m.payload?.Authorization ?? null));

test('Live: session events over graphql-ws; the socket outlives its token; log out everywhere reaches the other page within 1 s', { timeout: 120_000 }, async (t) => {
  const a = await openPage('live-a');
  const b = await openPage('live-b');
  const email = uniqueEmail('e2e-live');
  // An access token is refused from its exp plus the server's leeway: then its socket is closed.
  const tokenLifeMs = (ACCESS_TOKEN_TTL_S + SERVER_EXP_LEEWAY_S) * 1000;

  try {
    await b.step('b-signed-in-live', async () => {
      await signIn(b, email, { register: true });
      assert.equal(await b.rows(), 1);
      assert.equal(await b.byId('live-event').count(), 0, 'events before anything happened');
      const [init] = initTokens(b);
      assert.match(init ?? '', /^Bearer \S+$/, `connection_init payload: ${JSON.stringify(b.sockets[0]?.sent[0])}`);
      const subscribe = b.sockets.flatMap((s) => s.sent).find((m) => m.type === 'subscribe');
      assert.match(documentOf(subscribe?.payload), /sessionEvents/, 'no sessionEvents subscription on the socket');
      // Trusted documents: the subscription goes as its hash, without its text.
      assert.equal(subscribe.payload.query, '', `the subscribe payload carries the query text: ${JSON.stringify(subscribe.payload)}`);
      assert.match(subscribe.payload.extensions?.persistedQuery?.sha256Hash ?? '', /^[0-9a-f]{64}$/);
      // Only the subscription goes over the socket: queries and mutations stay on HTTP.
      assert.ok(b.calls.some((c) => c.query.includes('sessions')), 'the sessions query did not go over HTTP');
    });

    await a.step('a-signed-in', async () => {
      await signIn(a, email);
      assert.equal(await a.rows(), 2);
    });

    await b.step('b-sees-a-sign-in', async () => {
      await feedHas(b, 'SESSION_CREATED', { current: false });
      assert.match(await b.byId('live-event').first().textContent(), /New sign-in to your account\./);
      // The event reloads the sessions list: A's session shows up in B without a click.
      await b.page.waitForFunction(() => document.querySelectorAll('[data-testid="session-row"]').length === 2);
      await b.noError();
    });

    await b.step('b-socket-outlives-its-token', async () => {
      // The server closes the socket with 4403 TOKEN_EXPIRED once B's access token is past its exp (and
      // the server's leeway); the page refreshes and reconnects with the new token. Within the token's
      // whole lifetime plus a generous margin:
      await reconnectedAfter(b, 1, tokenLifeMs + 15_000);
      assert.equal(await b.byId('live-state').getAttribute('data-last-close'), '4403 TOKEN_EXPIRED');
      await b.settle();
      assert.ok(b.refreshCalls(b.calls).length >= 1, 'the page reconnected without refreshing its token');
      const tokens = initTokens(b);
      assert.ok(tokens.length >= 2, `connection_inits: ${tokens.length}`);
      assert.notEqual(tokens.at(-1), tokens[0], 'the reconnect sent the expired token again');
      await b.noError();
      await a.noError();

      // The feed still receives events: a sign-in from Node (think: a phone).
      const { body } = await gql('mutation($i: LoginInput!) { login(input: $i) { accessToken } }', {
        variables: { i: { email, password } },
      });
      assert.ok(body.data?.login?.accessToken, `login from Node failed: ${JSON.stringify(body)}`);
      await feedHas(b, 'SESSION_CREATED', { count: 2, current: false });
      await b.page.waitForFunction(() => document.querySelectorAll('[data-testid="session-row"]').length === 3);
      await b.noError();
    });

    await a.step('a-logs-out-everywhere', async () => {
      // Right after B's socket has reconnected (its new token lives for seconds), so that the logout
      // cannot fall into the short gap of a TOKEN_EXPIRED reconnect, where B would learn of it from
      // its refresh or its connection_init instead of the event asserted below.
      await reconnectedAfter(b, await connections(b), tokenLifeMs + 15_000);
      // Armed before the click: B's login form, within 1 s of A's click, B doing nothing.
      const started = Date.now();
      const shown = b.page
        .locator('[data-testid="login-form"]')
        .waitFor({ state: 'visible', timeout: 1000 })
        .then(() => Date.now() - started);
      await a.byId('logout-all-button').click();
      const elapsed = await shown;
      assert.ok(elapsed <= 1000, `B showed the login form ${elapsed} ms after the click`);
      t.diagnostic(`B showed the login form ${elapsed} ms after A's click on "Log out everywhere"`);
      await a.idle();
      await a.noError();
      await a.visible('login-form');
      assert.match(await a.text('status'), /^Logged out of 3 session\(s\)\.$/);
    });

    await b.step('b-logged-out-by-the-socket', async () => {
      await b.idle();
      await b.noError();
      assert.equal(await b.byId('account').isVisible(), false);
      assert.equal(await b.text('status'), 'Your session has ended. Please log in.');
      // The server pushed it: B's socket received SESSION_REVOKED about B's own session.
      const events = b.sockets.flatMap((s) => s.received).map((m) => m.payload?.data?.sessionEvents).filter(Boolean);
      assert.ok(
        events.some((e) => e.type === 'SESSION_REVOKED' && e.current === true),
        `B's socket got no SESSION_REVOKED (current) event: ${JSON.stringify(events)}`,
      );
      // Nothing of the user is left on the page: the feed and the sessions list are empty.
      assert.equal(await b.byId('live-event').count(), 0);
      assert.equal(await b.rows(), 0);
      // And the session is over for real: a reload (refresh-token cookie) does not bring it back.
      await b.page.reload();
      await b.idle();
      await b.visible('login-form');
      await b.noError();
    });

    assert.deepEqual(a.pageErrors(), [], 'uncaught errors in page A');
    assert.deepEqual(b.pageErrors(), [], 'uncaught errors in page B');
  } finally {
    await a.context.close().catch(() => {});
    await b.context.close().catch(() => {});
  }
});

test('Live: a mocked socket: 4403 TOKEN_INVALID stops the feed without a retry; a SESSION_REVOKED close, or event, logs the page out', { timeout: 60_000 }, async () => {
  const p = await openPage('live-mock');
  const email = uniqueEmail('e2e-live-mock');

  // The socket is answered by this route, not the server: it acknowledges connection_init and, on the
  // subscription, closes with `closeWith`, or when that is null sends the events of `events` and stays
  // open (the first connection and every reconnect alike).
  let closeWith = { code: 4403, reason: 'TOKEN_INVALID' };
  let events = [];
  let connections = 0;
  await p.context.routeWebSocket(/\/graphql$/, (ws) => {
    connections += 1;
    ws.onMessage((message) => {
      const { type, id } = JSON.parse(String(message));
      if (type === 'connection_init') ws.send(JSON.stringify({ type: 'connection_ack' }));
      if (type !== 'subscribe') return;
      if (closeWith) {
        ws.close(closeWith);
        return;
      }
      for (const e of events) {
        const sessionEvents = { sessionId: 'mocked', at: new Date().toISOString(), ...e };
        ws.send(JSON.stringify({ id, type: 'next', payload: { data: { sessionEvents } } }));
      }
    });
  });

  try {
    await p.step('token-invalid-stops', async () => {
      await p.page.goto(`${APP_ORIGIN}/`);
      await p.idle();
      await p.byId('email-input').fill(email);
      await p.byId('password-input').fill(password);
      await p.byId('register-button').click();
      await p.idle();
      await p.noError();
      assert.equal(await p.text('me-email'), email);
      // "stopped" is where graphql-ws gives up: a retry would have shown "reconnecting" and backed off
      // for seconds before each of its 5 attempts.
      await liveState(p, 'stopped');
      assert.equal(await p.byId('live-state').getAttribute('data-last-close'), '4403 TOKEN_INVALID');
      assert.equal(connections, 1, 'the page retried after 4403 TOKEN_INVALID');
      await p.visible('account'); // still signed in: HTTP works, only the live feed stopped
      await p.noError();
    });

    await p.step('session-revoked-close-logs-out', async () => {
      closeWith = { code: 4403, reason: 'SESSION_REVOKED' };
      await p.byId('refresh-button').click(); // loadAccount starts the stopped feed again
      await p.visible('login-form');
      assert.equal(connections, 2);
      assert.equal(await p.text('status'), 'Your session has ended. Please log in.');
      assert.equal(await p.byId('account').isVisible(), false);
    });

    await p.step('session-revoked-event-logs-out', async () => {
      // The mock revoked nothing on the server: the password still signs in (the same user, a new session).
      closeWith = null;
      events = [
        { type: 'SESSION_REVOKED', current: false },
        { type: 'SESSION_REVOKED', current: true },
      ];
      await p.idle();
      await p.byId('email-input').fill(email);
      await p.byId('password-input').fill(password);
      await p.byId('login-button').click();
      await p.idle(); // signed in: the account is shown and the feed subscribes
      await p.noError();
      await p.visible('login-form'); // the events came: out again
      assert.equal(connections, 3);
      assert.equal(await p.text('status'), 'Your session has ended. Please log in.');
      assert.equal(await p.byId('account').isVisible(), false);
      assert.equal(await p.byId('live-event').count(), 0, 'the feed outlived the session');
    });

    assert.deepEqual(p.pageErrors(), [], 'uncaught errors in the page');
  } finally {
    await p.context.close().catch(() => {});
  }
});
