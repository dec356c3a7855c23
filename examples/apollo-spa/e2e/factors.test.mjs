// End-to-end test of second factors and passkeys in the SPA, against the real server in headless Chromium:
// TOTP enrolment (QR code), the MFA step of login and of a password reset, recovery codes, disabling TOTP;
// passkeys registered and used with Chrome's virtual authenticator (DevTools protocol, WebAuthn domain);
// and the step-up dialog ("Confirm it's you") with a password plus code and with a passkey.
//
// Step-up is tested for real, not by faking the server's answer: the server runs with REAUTH_MAX_AGE=60s
// (its minimum), and the first test signs in two users whose sign-ins go stale while the TOTP and passkey
// tests run; the last test waits for whatever is left of the 60 s, so the whole file stays near 1.5 min.
//
// TOTP codes are computed here (RFC 6238: HMAC-SHA1 over the 30-s step counter, dynamic truncation, 6
// digits) from the secret the page shows. The server accepts each step's code once, so a second code for
// the same user waits for the next step (TotpClock).
//
//   npm run e2e          (needs Go, /usr/bin/chromium: apt-get install -y chromium, and Mailpit)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { APP_ORIGIN, REAUTH_MAX_AGE_S, sleep, startStack, stopStack, uniqueEmail, waitForLink, watch } from './harness.mjs';

let browser;

before(async () => {
  browser = await startStack({ shotPrefixes: ['stale', 'totp', 'passkey'] });
}, { timeout: 150_000 });

after(async () => {
  for (const s of Object.values(stale)) await s?.context.close().catch(() => {});
  await stopStack();
});

// ---- RFC 6238 ----------------------------------------------------------------------------------------

function base32Decode(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of s.toUpperCase().replace(/=+$/, '')) {
    const i = alphabet.indexOf(ch);
    if (i < 0) throw new Error(`not base32: ${ch}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** The 6-digit TOTP code of `secret` (base32) for the 30-s step `step`. */
function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const bin = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(bin).padStart(6, '0');
}

const stepNow = () => Math.floor(Date.now() / 30_000);

/** Codes of one secret, each for a step not used before (the server refuses a step's code twice). */
class TotpClock {
  constructor(secret) {
    this.secret = secret;
    this.last = -1;
  }

  /** A code for the current step; waits for the next step when this one is used already. */
  async code() {
    if (stepNow() <= this.last) await sleep((this.last + 1) * 30_000 - Date.now() + 250);
    this.last = stepNow();
    return totp(this.secret, this.last);
  }

  /** A 6-digit code that is wrong for every step the server might accept now. */
  wrong() {
    const valid = new Set([-2, -1, 0, 1, 2].map((d) => totp(this.secret, stepNow() + d)));
    return ['000000', '111111', '222222', '333333', '444444', '555555'].find((c) => !valid.has(c));
  }
}

// ---- Page helpers ---------------------------------------------------------------------------------

const PASSWORD = 'correct horse battery';

/** A page with the harness's helpers plus the flows every test needs. */
async function openPage(prefix, { initScript } = {}) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  if (initScript) await context.addInitScript(initScript);
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const w = watch(context, page, prefix);
  const { byId, idle, visible, noError } = w;
  const error = async () => {
    await visible('error');
    return w.text('error');
  };
  const register = async (email) => {
    await page.goto(`${APP_ORIGIN}/`);
    await idle();
    await byId('email-input').fill(email);
    await byId('password-input').fill(PASSWORD);
    await byId('register-button').click();
    await idle();
    await noError();
    assert.equal(await w.text('me-email'), email);
  };
  const logIn = async (email, password = PASSWORD) => {
    await byId('email-input').fill(email);
    await byId('password-input').fill(password);
    await byId('login-button').click();
    await idle();
  };
  const logOut = async () => {
    await byId('logout-button').click();
    await idle();
    await noError();
    await visible('login-form');
  };
  const submitMfa = async (code) => {
    await byId('mfa-code-input').fill(code);
    await byId('mfa-submit-button').click();
    await idle();
  };
  const totpEnabled = async () => (await byId('totp-state').getAttribute('data-enabled')) === 'true';
  /** Starts enabling TOTP: checks the QR code and returns a TotpClock of the secret shown. */
  const startEnrollment = async () => {
    await byId('totp-enable-button').click();
    await idle();
    await noError();
    await visible('totp-enroll');
    const qr = byId('totp-qr');
    assert.match((await qr.getAttribute('src')) ?? '', /^data:image\/png;base64,/, 'the QR code is not a local data URL');
    assert.ok(await qr.evaluate((img) => img.complete && img.naturalWidth > 0), 'the QR code image did not render');
    const secret = ((await w.text('totp-secret')) ?? '').trim();
    assert.match(secret, /^[A-Z2-7]{16,}$/, `not a base32 secret: ${secret}`);
    return new TotpClock(secret);
  };
  /** Confirms the enrolment with a code of `clock`; returns the 10 recovery codes shown. */
  const confirmEnrollment = async (clock) => {
    await byId('totp-code-input').fill(await clock.code());
    await byId('totp-confirm-button').click();
    await idle();
    await noError();
    await visible('recovery-codes');
    const codes = (await byId('recovery-code').allTextContents()).map((c) => c.trim());
    assert.equal(codes.length, 10, `recovery codes: ${JSON.stringify(codes)}`);
    assert.equal(new Set(codes).size, 10, 'recovery codes repeat');
    assert.equal(await totpEnabled(), true);
    assert.equal(await byId('totp-enroll').isVisible(), false);
    assert.equal(await w.text('totp-secret'), '', 'the secret stayed in the page');
    return codes;
  };
  /** Fills and submits the "Disable two-factor" / "New recovery codes" code form. */
  const codeAction = async (button, code) => {
    await byId(button).click();
    await visible('totp-action-form');
    await byId('totp-action-code-input').fill(code);
    await byId('totp-action-submit-button').click();
    await idle();
  };
  return { ...w, context, page, error, register, logIn, logOut, submitMfa, totpEnabled, startEnrollment, confirmEnrollment, codeAction };
}

/** Chrome's virtual authenticator in `page`: a platform authenticator with resident keys and user verification. */
async function virtualAuthenticator(p) {
  const cdp = await p.context.newCDPSession(p.page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { credentials: async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials };
}

const addPasskey = async (p, name) => {
  await p.byId('passkey-name-input').fill(name);
  await p.byId('passkey-add-button').click();
  await p.idle();
  await p.noError();
};

const passkeyNames = (p) => p.page.locator('[data-testid="passkey-row"] .passkey-name').allTextContents();

/**
 * The error codes of each GraphQL call of a page whose query mentions `field`, leaving out the calls
 * refused with TOKEN_EXPIRED (the access token lives 3 s here; the SPA refreshes it and sends them again).
 */
const callsOf = async (p, field) => {
  await p.settle();
  return p.calls.filter((c) => c.query.includes(field) && !c.codes.includes('TOKEN_EXPIRED')).map((c) => c.codes);
};

// ---- Step-up: two sign-ins that go stale while the other tests run --------------------------------

// stale.password: a user with TOTP on (the dialog asks for password and code); stale.passkey: a user with a
// passkey, in a page whose browser lacks the WebAuthn JSON helpers (so the SPA's base64url fallback runs).
const stale = {};

test('step-up setup: two users sign in (their sign-ins go stale during the next tests)', { timeout: 60_000 }, async () => {
  const p = await openPage('stale-password');
  stale.password = p;
  const email = uniqueEmail('e2e-stepup-pw');
  await p.step('registered-totp-on', async () => {
    await p.register(email);
    const clock = await p.startEnrollment();
    const codes = await p.confirmEnrollment(clock);
    await p.byId('recovery-saved-button').click();
    Object.assign(p, { email, clock, recoveryCodes: codes, signedInAt: Date.now() });
  });

  const q = await openPage('stale-passkey', {
    initScript: () => {
      delete PublicKeyCredential.parseCreationOptionsFromJSON;
      delete PublicKeyCredential.parseRequestOptionsFromJSON;
      delete PublicKeyCredential.prototype.toJSON;
    },
  });
  stale.passkey = q;
  await q.step('registered-passkey-added-by-fallback', async () => {
    q.authenticator = await virtualAuthenticator(q);
    await q.register(uniqueEmail('e2e-stepup-pk'));
    const helpers = await q.page.evaluate(() => [
      typeof PublicKeyCredential.parseCreationOptionsFromJSON,
      typeof PublicKeyCredential.parseRequestOptionsFromJSON,
      typeof PublicKeyCredential.prototype.toJSON,
    ]);
    assert.deepEqual(helpers, ['undefined', 'undefined', 'undefined'], 'the JSON helpers were not removed');
    await addPasskey(q, 'Fallback key');
    assert.deepEqual(await passkeyNames(q), ['Fallback key']);
    assert.equal((await q.authenticator.credentials()).length, 1);
    q.signedInAt = Date.now();
  });
});

// ---- TOTP --------------------------------------------------------------------------------------------

test('SPA: TOTP enrolment with a QR code, MFA login, recovery codes, password reset, disable', { timeout: 180_000 }, async () => {
  const p = await openPage('totp');
  const { byId, idle, visible, text, noError, step, pageErrors } = p;
  const email = uniqueEmail('e2e-totp');
  let clock;
  let codes;
  let password = PASSWORD;

  try {
    await step('registered-totp-off', async () => {
      await p.register(email);
      assert.equal(await p.totpEnabled(), false);
      await visible('totp-enable-button');
      assert.equal(await byId('totp-disable-button').isVisible(), false);
    });

    await step('enrolment-qr-code', async () => {
      clock = await p.startEnrollment();
      assert.equal(await p.totpEnabled(), false, 'TOTP is on before the enrolment is confirmed');
    });

    await step('enrolled', async () => {
      codes = await p.confirmEnrollment(clock);
      assert.equal(await byId('totp-disable-button').isVisible(), true);
      assert.equal(await byId('totp-enable-button').isVisible(), false);
    });

    await step('recovery-codes-saved', async () => {
      await byId('recovery-saved-button').click();
      assert.equal(await byId('recovery-codes').isVisible(), false);
      assert.equal(await byId('recovery-code').count(), 0, 'the recovery codes stayed in the page');
      await p.page.reload();
      await idle();
      await noError();
      assert.equal(await p.totpEnabled(), true);
      assert.equal(await byId('recovery-codes').isVisible(), false);
    });

    await step('login-asks-for-code', async () => {
      await p.logOut();
      await p.logIn(email);
      await noError();
      await visible('mfa-form');
      assert.equal(await byId('account').isVisible(), false);
      assert.equal(await byId('login-form').isVisible(), false);
    });

    await step('wrong-code-refused', async () => {
      await p.submitMfa(clock.wrong());
      assert.match(await p.error(), /^INVALID_MFA_CODE \(code\)/);
      await visible('mfa-form');
      assert.equal(await byId('mfa-code-input').inputValue(), '', 'the wrong code stayed in the input');
    });

    await step('right-code-signed-in', async () => {
      await p.submitMfa(await clock.code());
      await noError();
      assert.equal(await text('me-email'), email);
      assert.equal(await p.totpEnabled(), true);
    });

    await step('recovery-code-signed-in', async () => {
      await p.logOut();
      await p.logIn(email);
      await visible('mfa-form');
      await p.submitMfa(codes[0]);
      await noError();
      assert.equal(await text('me-email'), email);
    });

    await step('recovery-code-single-use', async () => {
      await p.logOut();
      await p.logIn(email);
      await visible('mfa-form');
      await p.submitMfa(codes[0]);
      assert.match(await p.error(), /^INVALID_MFA_CODE \(code\)/);
      await visible('mfa-form');
      await p.submitMfa(codes[1]);
      await noError();
      assert.equal(await text('me-email'), email);
    });

    // A password reset with TOTP on changes the password but opens no session without the second factor.
    await step('password-reset-asks-for-code', async () => {
      await p.logOut();
      await byId('forgot-link').click();
      await idle();
      await byId('forgot-email-input').fill(email);
      await byId('forgot-button').click();
      await idle();
      await noError();
      const link = await waitForLink(email, '/reset-password');
      await p.page.goto(link);
      await idle();
      password = 'a brand new passphrase';
      await byId('reset-password-input').fill(password);
      await byId('reset-password-confirm-input').fill(password);
      await byId('reset-button').click();
      await idle();
      await noError();
      await visible('mfa-form');
      assert.equal(new URL(p.page.url()).pathname, '/', 'the spent reset link stayed in the address bar');
      await p.submitMfa(codes[2]);
      await noError();
      assert.equal(await text('me-email'), email);
    });

    await step('dead-challenge-back-to-password', async () => {
      await p.logOut();
      await p.logIn(email, password);
      await visible('mfa-form');
      // Five wrong codes end the challenge; the code after that is refused for the challenge, and the
      // page goes back to the password form.
      let last = '';
      for (let i = 0; i < 6 && (await byId('mfa-form').isVisible()); i++) {
        await p.submitMfa(clock.wrong());
        last = await p.error();
        assert.match(last, /^INVALID_MFA_CODE/);
      }
      assert.match(last, /^INVALID_MFA_CODE \(challenge\)/);
      await visible('login-form');
      assert.equal(await byId('mfa-form').isVisible(), false);
    });

    await step('disabled-with-totp-code', async () => {
      await p.logIn(email, password);
      await visible('mfa-form');
      await p.submitMfa(codes[3]);
      await noError();
      await p.codeAction('totp-disable-button', await clock.code());
      await noError();
      assert.equal(await p.totpEnabled(), false);
      assert.equal(await byId('totp-action-form').isVisible(), false);
      assert.equal(await byId('reauth-dialog').isVisible(), false, 'a fresh sign-in needed the step-up dialog');
    });

    await step('login-without-code', async () => {
      await p.logOut();
      await p.logIn(email, password);
      await noError();
      assert.equal(await text('me-email'), email);
    });

    assert.deepEqual(pageErrors(), [], 'uncaught errors in the page');
  } finally {
    await p.context.close().catch(() => {});
  }
});

// ---- Passkeys ----------------------------------------------------------------------------------------

test("SPA: passkey registration and passwordless login with Chrome's virtual authenticator, deletion", { timeout: 90_000 }, async () => {
  const p = await openPage('passkey');
  const { byId, visible, text, noError, step, pageErrors } = p;
  const email = uniqueEmail('e2e-passkey');
  let authenticator;

  try {
    await step('registered', async () => {
      authenticator = await virtualAuthenticator(p);
      await p.register(email);
      assert.equal(await byId('passkey-row').count(), 0);
    });

    await step('passkey-added', async () => {
      await addPasskey(p, 'E2E laptop');
      assert.deepEqual(await passkeyNames(p), ['E2E laptop']);
      assert.equal(await p.page.locator('[data-testid="passkey-row"] .passkey-last-used').textContent(), 'never');
      const creds = await authenticator.credentials();
      assert.equal(creds.length, 1, `credentials on the authenticator: ${creds.length}`);
      assert.equal(creds[0].isResidentCredential, true, 'the passkey is not discoverable (resident)');
      assert.equal(creds[0].rpId, 'localhost');
      assert.ok(creds[0].userHandle, 'the passkey has no user handle');
    });

    await step('passkey-login-no-email', async () => {
      await p.logOut();
      await byId('email-input').fill('');
      await byId('password-input').fill('');
      const signCount = (await authenticator.credentials())[0].signCount;
      await byId('passkey-login-button').click();
      await p.idle();
      await noError();
      await visible('account');
      assert.equal(await text('me-email'), email);
      assert.notEqual(await p.page.locator('[data-testid="passkey-row"] .passkey-last-used').textContent(), 'never');
      assert.ok((await authenticator.credentials())[0].signCount > signCount, 'the authenticator did not sign');
    });

    await step('passkey-deleted', async () => {
      // A passkey login is a fresh authentication: no step-up dialog.
      await byId('passkey-delete-button').click();
      await p.idle();
      await noError();
      assert.equal(await byId('reauth-dialog').isVisible(), false);
      assert.equal(await byId('passkey-row').count(), 0);
    });

    await step('deleted-passkey-refused', async () => {
      await p.logOut();
      // The authenticator still holds the credential, but the server no longer knows it.
      assert.equal((await authenticator.credentials()).length, 1);
      await byId('passkey-login-button').click();
      await p.idle();
      assert.match(await p.error(), /^INVALID_PASSKEY/);
      await visible('login-form');
      assert.equal(await byId('account').isVisible(), false);
    });

    assert.deepEqual(pageErrors(), [], 'uncaught errors in the page');
  } finally {
    await p.context.close().catch(() => {});
  }
});

// ---- Step-up -----------------------------------------------------------------------------------------

test('SPA: step-up dialog after REAUTH_MAX_AGE, with password and code, and with a passkey', { timeout: 150_000 }, async () => {
  const p = stale.password;
  const q = stale.passkey;
  assert.ok(p?.signedInAt && q?.signedInAt, 'the step-up setup test failed');

  // Both sign-ins must be older than REAUTH_MAX_AGE (the server's clock counts from the response).
  const staleAt = Math.max(p.signedInAt, q.signedInAt) + REAUTH_MAX_AGE_S * 1000 + 2000;
  await sleep(Math.max(0, staleAt - Date.now()));

  await p.step('stepup-cancelled', async () => {
    await p.codeAction('recovery-regenerate-button', await p.clock.code());
    await p.visible('reauth-dialog');
    assert.equal(await p.byId('reauth-code-label').isVisible(), true, 'TOTP is on: the dialog must ask for a code');
    await p.byId('reauth-cancel-button').click();
    await p.idle();
    assert.match(await p.error(), /^Cancelled/);
    assert.equal(await p.byId('reauth-dialog').isVisible(), false);
    assert.equal(await p.byId('recovery-codes').isVisible(), false);
  });

  await p.step('stepup-wrong-password', async () => {
    await p.byId('totp-action-submit-button').click(); // the same code: the refused call did not spend it
    await p.idle();
    await p.visible('reauth-dialog');
    await p.byId('reauth-password-input').fill('not the password');
    await p.byId('reauth-code-input').fill(p.recoveryCodes[0]);
    await p.byId('reauth-submit-button').click();
    await p.idle();
    await p.visible('reauth-error');
    assert.match(await p.text('reauth-error'), /^INVALID_CREDENTIALS/);
    await p.visible('reauth-dialog');
  });

  await p.step('stepup-password-and-recovery-code', async () => {
    await p.byId('reauth-password-input').fill(PASSWORD);
    await p.byId('reauth-code-input').fill(p.recoveryCodes[1]);
    await p.byId('reauth-submit-button').click();
    await p.idle();
    await p.noError();
    assert.equal(await p.byId('reauth-dialog').isVisible(), false);
    // The operation was retried with the new token: new recovery codes are shown.
    await p.visible('recovery-codes');
    const fresh = (await p.byId('recovery-code').allTextContents()).map((c) => c.trim());
    assert.equal(fresh.length, 10);
    assert.ok(!fresh.some((c) => p.recoveryCodes.includes(c)), 'old recovery codes came back');
    const regenerate = await callsOf(p, 'regenerateRecoveryCodes');
    assert.deepEqual(regenerate.at(-1), [], `regenerateRecoveryCodes calls: ${JSON.stringify(regenerate)}`);
    assert.ok(regenerate.some((c) => c.includes('REAUTHENTICATION_REQUIRED')), JSON.stringify(regenerate));
    assert.deepEqual(await callsOf(p, 'reauthenticate'), [['INVALID_CREDENTIALS'], []]);
    p.recoveryCodes = fresh;
    await p.byId('recovery-saved-button').click();
  });

  await p.step('stepup-token-stays-fresh', async () => {
    // The access token reauthenticate returned is in use: another fresh-only action needs no dialog.
    const before = (await callsOf(p, 'reauthenticate')).length;
    await p.codeAction('totp-disable-button', p.recoveryCodes[0]);
    await p.noError();
    assert.equal(await p.totpEnabled(), false);
    assert.equal((await callsOf(p, 'reauthenticate')).length, before, 'asked to reauthenticate again');
  });

  await q.step('stepup-with-passkey', async () => {
    assert.deepEqual(await passkeyNames(q), ['Fallback key']);
    await q.byId('passkey-delete-button').click();
    await q.idle();
    await q.visible('reauth-dialog');
    assert.equal(await q.byId('reauth-code-label').isVisible(), false, 'TOTP is off: the dialog must not ask for a code');
    await q.byId('reauth-passkey-button').click();
    await q.idle();
    await q.noError();
    assert.equal(await q.byId('reauth-dialog').isVisible(), false);
    assert.equal(await q.byId('passkey-row').count(), 0, 'the passkey was not deleted after the step-up');
    const deletes = await callsOf(q, 'deletePasskey');
    assert.deepEqual(deletes.at(-1), [], JSON.stringify(deletes));
    assert.ok(deletes.some((c) => c.includes('REAUTHENTICATION_REQUIRED')), JSON.stringify(deletes));
    assert.deepEqual(await callsOf(q, 'reauthenticate'), [[]]);
  });

  assert.deepEqual([...p.pageErrors(), ...q.pageErrors()], [], 'uncaught errors in the pages');
});
