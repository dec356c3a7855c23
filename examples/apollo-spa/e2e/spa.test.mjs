// End-to-end test of the SPA against the real server in a headless Chromium (Debian's, never a
// downloaded one): cookie mode, CORS, single-flight refresh, session revocation, logout; and, with the
// mail read back from Mailpit, e-mail verification and password reset. (Second factors and passkeys:
// factors.test.mjs; live session events over graphql-ws: live.test.mjs; the server, vite and Chromium:
// harness.mjs.)
//
//   npm run e2e          (needs Go, /usr/bin/chromium: apt-get install -y chromium, and Mailpit)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCESS_TOKEN_TTL_S,
  APP_ORIGIN,
  NOT_TRUSTED,
  SERVER_EXP_LEEWAY_S,
  gql,
  mailTo,
  sleep,
  startStack,
  stopStack,
  uniqueEmail,
  untrustedGql,
  waitForLink,
  watch,
} from './harness.mjs';

let browser;

before(async () => {
  browser = await startStack({ shotPrefixes: ['session', 'mail'] });
}, { timeout: 150_000 });

after(stopStack);

test('SPA: cookie session, single-flight refresh, revoke, logout', { timeout: 90_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  // This test is about the HTTP path: requests that find the access token expired, one refresh. The
  // live feed's socket would refresh the token by itself when the server closes it with 4403
  // TOKEN_EXPIRED (live.test.mjs tests that), so here it is held by a route that never answers, like a
  // proxy that does not pass WebSockets on: the page keeps working over HTTP.
  await context.routeWebSocket(/\/graphql$/, () => {});
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
      assert.equal(failed.length, 3, `expected me, sessions and passkeys to fail with TOKEN_EXPIRED once each; calls: ${JSON.stringify(these.map((c) => c.codes))}`);
      assert.equal(refreshCalls(these).length, 1, `expected exactly one refreshToken request, got ${refreshCalls(these).length}`);
      assert.equal(these.length, 7, 'expected me + sessions + passkeys, one refresh, me + sessions + passkeys again');
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

    // The server runs in TRUSTED_DOCUMENTS=require: the page sent every operation as a hash, and an
    // operation that is not in the manifest is refused before it runs, even a valid one.
    await step('trusted-documents-only', async () => {
      await settle();
      assert.ok(calls.length > 0);
      const unknown = calls.filter((c) => c.query === '');
      assert.equal(unknown.length, 0, 'a page request named no trusted document');
      const withText = calls.filter((c) => c.sentText).map((c) => c.query.slice(0, 60));
      assert.deepEqual(withText, [], 'the page sent operation text instead of its hash');
      const adHoc = await untrustedGql('{ me { id email role } }');
      assert.equal(adHoc.body.errors?.[0]?.extensions?.code, NOT_TRUSTED, JSON.stringify(adHoc.body));
      assert.equal(adHoc.body.data ?? null, null);
      const login = await untrustedGql('mutation($i: LoginInput!) { login(input: $i) { accessToken user { id } } }', {
        variables: { i: { email, password } },
      });
      assert.equal(login.body.errors?.[0]?.extensions?.code, NOT_TRUSTED, JSON.stringify(login.body));
      assert.equal(login.cookie, undefined, 'the refused login set a cookie');
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
