import './style.css';
import { CombinedGraphQLErrors } from '@apollo/client';
import { client } from './apollo';
import { clearAccessToken, getAccessToken, onLoggedOut, refreshAccessToken, setAccessToken } from './auth';
import type { SessionsQuery } from './gql/graphql';
import {
  beginPasskeyLoginMutation,
  finishPasskeyLoginMutation,
  loginMutation,
  logoutAllMutation,
  logoutMutation,
  meQuery,
  passkeysQuery,
  registerMutation,
  requestEmailVerificationMutation,
  requestPasswordResetMutation,
  resetPasswordMutation,
  revokeSessionMutation,
  sessionsQuery,
  verifyEmailMutation,
  verifyMfaMutation,
} from './operations';
import { startLive, stopLive } from './live';
import { initSecurity, renderSecurity, resetSecurity } from './security';
import { byTestId, cell, clearError, errorCode, errorExtension, run, showError } from './ui';
import { getPasskey } from './webauthn';

const ui = {
  status: byTestId<HTMLParagraphElement>('status'),
  form: byTestId<HTMLFormElement>('login-form'),
  email: byTestId<HTMLInputElement>('email-input'),
  password: byTestId<HTMLInputElement>('password-input'),
  passkeyLogin: byTestId<HTMLButtonElement>('passkey-login-button'),
  mfaForm: byTestId<HTMLFormElement>('mfa-form'),
  mfaCode: byTestId<HTMLInputElement>('mfa-code-input'),
  mfaCancel: byTestId<HTMLButtonElement>('mfa-cancel-button'),
  account: byTestId<HTMLElement>('account'),
  meEmail: byTestId<HTMLElement>('me-email'),
  meVerified: byTestId<HTMLElement>('me-verified'),
  resendVerification: byTestId<HTMLButtonElement>('resend-verification-button'),
  forgotForm: byTestId<HTMLFormElement>('forgot-form'),
  forgotEmail: byTestId<HTMLInputElement>('forgot-email-input'),
  forgotSent: byTestId<HTMLParagraphElement>('forgot-sent'),
  resetForm: byTestId<HTMLFormElement>('reset-form'),
  resetPassword: byTestId<HTMLInputElement>('reset-password-input'),
  resetConfirm: byTestId<HTMLInputElement>('reset-password-confirm-input'),
  resetFieldError: byTestId<HTMLParagraphElement>('reset-field-error'),
  resetInvalid: byTestId<HTMLElement>('reset-invalid'),
  verify: byTestId<HTMLElement>('verify'),
  verifyResult: byTestId<HTMLParagraphElement>('verify-result'),
  sessions: byTestId<HTMLTableSectionElement>('sessions'),
  refresh: byTestId<HTMLButtonElement>('refresh-button'),
  logout: byTestId<HTMLButtonElement>('logout-button'),
  logoutAll: byTestId<HTMLButtonElement>('logout-all-button'),
};

// The page's views: exactly one is shown at a time (see showView).
const views = [ui.form, ui.mfaForm, ui.account, ui.forgotForm, ui.resetForm, ui.resetInvalid, ui.verify];

function showView(view: HTMLElement): void {
  for (const v of views) v.hidden = v !== view;
}

function showLogin(status = 'Not signed in.'): void {
  ui.meEmail.textContent = '';
  ui.meVerified.textContent = '';
  ui.sessions.replaceChildren();
  mfaChallenge = '';
  ui.mfaCode.value = '';
  showView(ui.form);
  ui.status.textContent = status;
}

// Server data goes into the page with textContent only, never innerHTML: the user agent is whatever
// a client sent, and an XSS here could use the in-memory access token.
function renderSessions(sessions: SessionsQuery['sessions']): void {
  ui.sessions.replaceChildren(
    ...sessions.map((s) => {
      const row = document.createElement('tr');
      row.dataset.testid = 'session-row';
      row.dataset.current = String(s.current);
      const action = document.createElement('td');
      if (s.current) {
        const marker = document.createElement('span');
        marker.className = 'current';
        marker.dataset.testid = 'current-marker';
        marker.textContent = '● this browser';
        action.append(marker);
      } else {
        const revoke = document.createElement('button');
        revoke.type = 'button';
        revoke.className = 'danger';
        revoke.dataset.testid = 'revoke-button';
        revoke.textContent = 'Revoke';
        revoke.addEventListener('click', () => run(() => revokeSession(s.id)));
        action.append(revoke);
      }
      row.append(
        cell(s.userAgent ?? '—', 'ua'),
        cell(s.ip ?? '—'),
        cell(new Date(s.createdAt).toLocaleString()),
        action,
      );
      return row;
    }),
  );
}

function renderVerified(verified: boolean): void {
  ui.meVerified.textContent = verified ? '✔ E-mail address verified' : 'E-mail address not verified yet';
  ui.meVerified.className = verified ? 'verified' : 'unverified';
  ui.meVerified.dataset.verified = String(verified);
  ui.resendVerification.hidden = verified;
}

/** Loads me, sessions and passkeys in parallel and shows the logged-in view. */
async function loadAccount(): Promise<void> {
  const [me, sessions, passkeys] = await Promise.all([
    client.query({ query: meQuery, fetchPolicy: 'network-only' }),
    client.query({ query: sessionsQuery, fetchPolicy: 'network-only' }),
    client.query({ query: passkeysQuery, fetchPolicy: 'network-only' }),
  ]);
  if (!me.data || !sessions.data || !passkeys.data) throw new Error('empty response');
  ui.meEmail.textContent = me.data.me.email;
  renderVerified(me.data.me.emailVerified);
  renderSessions(sessions.data.sessions);
  renderSecurity(me.data.me.totpEnabled, passkeys.data.passkeys);
  showView(ui.account);
  ui.status.textContent = `Loaded at ${new Date().toLocaleTimeString()}.`;
  startLive(onSessionEvent);
}

/** A live event (live.ts) about another session or the password: the sessions list is reloaded. */
function onSessionEvent(): void {
  void client
    .query({ query: sessionsQuery, fetchPolicy: 'network-only' })
    .then(({ data }) => {
      if (data && getAccessToken() !== null && !ui.account.hidden) renderSessions(data.sessions);
    })
    .catch((err: unknown) => {
      // In the background, not a user action: shown only while still signed in (an event that comes
      // as the session ends fails with it, and the login form says enough).
      if (getAccessToken() !== null && !ui.account.hidden) showError(err);
    });
}

async function revokeSession(id: string): Promise<void> {
  const { data } = await client.mutate({ mutation: revokeSessionMutation, variables: { id } });
  if (!data?.revokeSession) throw new Error('That session was not found (already ended?).');
  await loadAccount();
}

/** Forgets everything about the user on this page. */
async function forgetUser(status: string): Promise<void> {
  clearAccessToken();
  stopLive();
  resetSecurity();
  await client.clearStore();
  showLogin(status);
}

/** Signed in by any route (password, second factor, passkey): stores the token, shows the account. */
async function signedIn(accessToken: string): Promise<void> {
  setAccessToken(accessToken); // the refresh token arrived as an HttpOnly cookie
  ui.password.value = '';
  mfaChallenge = '';
  ui.mfaCode.value = '';
  await loadAccount();
}

// ---- The second step of a login: TOTP or recovery code -------------------------------------------
// With TOTP on, the right password answers MFA_REQUIRED with extensions.mfaChallenge (opaque, single
// use, 5 minutes); verifyMfa turns it and a code into a session. It lives in this variable only.
let mfaChallenge = '';

/** If err is MFA_REQUIRED, shows the code step and returns true. */
function startMfaStep(err: unknown): boolean {
  const challenge = errorExtension(err, 'mfaChallenge');
  if (errorCode(err) !== 'MFA_REQUIRED' || typeof challenge !== 'string' || challenge === '') return false;
  mfaChallenge = challenge;
  ui.password.value = '';
  ui.mfaCode.value = '';
  showView(ui.mfaForm);
  ui.status.textContent = 'Password accepted: one more step.';
  ui.mfaCode.focus();
  return true;
}

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  const register = (event.submitter as HTMLButtonElement | null)?.value === 'register';
  const input = { email: ui.email.value, password: ui.password.value };
  void run(async () => {
    let token: string;
    if (register) {
      const { data } = await client.mutate({ mutation: registerMutation, variables: { input } });
      if (!data) throw new Error('empty response');
      token = data.register.accessToken;
    } else {
      try {
        const { data } = await client.mutate({ mutation: loginMutation, variables: { input } });
        if (!data) throw new Error('empty response');
        token = data.login.accessToken;
      } catch (err) {
        if (startMfaStep(err)) return;
        throw err;
      }
    }
    await signedIn(token);
  });
});

ui.mfaForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const code = ui.mfaCode.value.trim();
  void run(async () => {
    try {
      const { data } = await client.mutate({ mutation: verifyMfaMutation, variables: { challenge: mfaChallenge, code } });
      if (!data) throw new Error('empty response');
      await signedIn(data.verifyMfa.accessToken);
    } catch (err) {
      // A dead challenge (expired, used, or five wrong codes): back to the password.
      if (errorCode(err) === 'INVALID_MFA_CODE' && errorExtension(err, 'field') === 'challenge') {
        showLogin('That sign-in attempt has ended. Please log in again.');
      } else if (!ui.mfaForm.hidden) {
        ui.mfaCode.value = ''; // a wrong code: the step stays for another try
        ui.mfaCode.focus();
      }
      throw err;
    }
  });
});

ui.mfaCancel.addEventListener('click', () => {
  clearError();
  showLogin();
});

// ---- Passwordless: a passkey (discoverable credential: no e-mail typed) ---------------------------
ui.passkeyLogin.addEventListener('click', () =>
  void run(async () => {
    const { data } = await client.mutate({ mutation: beginPasskeyLoginMutation });
    if (!data) throw new Error('empty response');
    const credential = await getPasskey(data.beginPasskeyLogin.options);
    const finished = await client.mutate({
      mutation: finishPasskeyLoginMutation,
      variables: { challengeId: data.beginPasskeyLogin.challengeId, credential },
    });
    if (!finished.data) throw new Error('empty response');
    await signedIn(finished.data.finishPasskeyLogin.accessToken);
  }),
);

ui.refresh.addEventListener('click', () => void run(loadAccount));

ui.logout.addEventListener('click', () =>
  void run(async () => {
    try {
      await client.mutate({ mutation: logoutMutation }); // ends the cookie's session, clears the cookie
    } finally {
      await forgetUser('Logged out.');
    }
  }),
);

ui.logoutAll.addEventListener('click', () =>
  void run(async () => {
    const { data } = await client.mutate({ mutation: logoutAllMutation });
    await forgetUser(`Logged out of ${data?.logoutAll ?? 0} session(s).`);
  }),
);

ui.resendVerification.addEventListener('click', () =>
  void run(async () => {
    await client.mutate({ mutation: requestEmailVerificationMutation });
    ui.status.textContent = `Verification e-mail sent to ${ui.meEmail.textContent ?? 'your address'}.`;
  }),
);

// Forgot password: the answer is the same whether or not an account has the address (the server
// answers true either way, so the page cannot tell, and neither can anyone probing for accounts).
ui.forgotForm.addEventListener('submit', (event) => {
  event.preventDefault();
  void run(async () => {
    ui.forgotSent.hidden = true;
    await client.mutate({ mutation: requestPasswordResetMutation, variables: { email: ui.forgotEmail.value } });
    ui.forgotSent.hidden = false;
  });
});

ui.resetForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const newPassword = ui.resetPassword.value;
  clearError();
  ui.resetFieldError.hidden = true;
  if (newPassword !== ui.resetConfirm.value) {
    showFieldError('The two passwords do not match.');
    return;
  }
  const token = linkToken();
  void run(async () => {
    let accessToken: string;
    try {
      const { data } = await client.mutate({ mutation: resetPasswordMutation, variables: { input: { token, newPassword } } });
      if (!data) throw new Error('empty response');
      accessToken = data.resetPassword.accessToken;
    } catch (err) {
      const code = errorCode(err);
      if (code === 'INVALID_EMAIL_TOKEN') {
        showView(ui.resetInvalid);
        return;
      }
      // The password is not allowed; the token stays usable, so the form stays up for another try.
      if (code === 'BAD_USER_INPUT' && CombinedGraphQLErrors.is(err)) {
        showFieldError(err.errors[0]?.message ?? 'This password is not allowed.');
        return;
      }
      // The password is changed, but the account has TOTP on: the new session needs the second step.
      if (startMfaStep(err)) {
        ui.resetPassword.value = '';
        ui.resetConfirm.value = '';
        history.replaceState(null, '', '/');
        ui.status.textContent = 'Your password was changed. One more step: enter the code from your authenticator app.';
        return;
      }
      throw err;
    }
    // Signed in, like login: every other session of the account was revoked, this one is new and its
    // refresh token arrived as the HttpOnly cookie. The spent link leaves the address bar and history.
    setAccessToken(accessToken);
    ui.resetPassword.value = '';
    ui.resetConfirm.value = '';
    history.replaceState(null, '', '/');
    await loadAccount();
    ui.status.textContent = 'Your password was changed; every other session was signed out.';
  });
});

function showFieldError(message: string): void {
  ui.resetFieldError.textContent = message;
  ui.resetFieldError.hidden = false;
}

/** The token of a mailed link (`?token=…`), or '' when there is none. */
function linkToken(): string {
  return new URLSearchParams(location.search).get('token') ?? '';
}

async function verifyEmail(): Promise<void> {
  const token = linkToken();
  ui.verifyResult.dataset.result = 'pending';
  ui.verifyResult.textContent = 'Verifying your e-mail address…';
  try {
    if (!token) throw new Error('no token');
    const { data } = await client.mutate({ mutation: verifyEmailMutation, variables: { token } });
    if (!data) throw new Error('empty response');
    ui.verifyResult.dataset.result = 'verified';
    ui.verifyResult.textContent = `Thank you: ${data.verifyEmail.email} is verified.`;
  } catch (err) {
    if (token && errorCode(err) !== 'INVALID_EMAIL_TOKEN') {
      ui.verifyResult.dataset.result = 'error';
      ui.verifyResult.textContent = 'The address could not be verified.';
      throw err; // shown with its code (EMAIL_TAKEN, RATE_LIMITED, a network error, …)
    }
    ui.verifyResult.dataset.result = 'invalid';
    ui.verifyResult.textContent =
      'This link is invalid or has expired. Log in and use "Resend verification e-mail" to get a new one.';
  } finally {
    // The token is spent (or useless): drop it from the address bar, so a reload does not send it again.
    history.replaceState(null, '', '/verify-email');
  }
}

type Route = 'home' | 'forgot' | 'reset' | 'verify';

function currentRoute(): Route {
  switch (location.pathname) {
    case '/forgot-password':
      return 'forgot';
    case '/reset-password':
      return 'reset';
    case '/verify-email':
      return 'verify';
    default:
      return 'home';
  }
}

/** Shows the view of the address bar's path. The server (vite dev/preview, or any static host set up
 *  for an SPA) answers every path with index.html, so the mailed links open this page. */
async function route(): Promise<void> {
  clearError();
  switch (currentRoute()) {
    case 'forgot':
      ui.forgotSent.hidden = true;
      if (!ui.forgotEmail.value) ui.forgotEmail.value = ui.email.value;
      showView(ui.forgotForm);
      ui.status.textContent = '';
      return;
    case 'reset':
      ui.resetFieldError.hidden = true;
      showView(linkToken() ? ui.resetForm : ui.resetInvalid);
      ui.status.textContent = '';
      return;
    case 'verify':
      showView(ui.verify);
      ui.status.textContent = '';
      return verifyEmail();
    case 'home':
      // There may be no access token (it lives in memory only, so a page load starts without one): the
      // refresh-token cookie, if any, gets one. No cookie or a dead session: the login form.
      try {
        if (getAccessToken() !== null || (await refreshAccessToken())) await loadAccount();
      } finally {
        if (ui.account.hidden) showLogin();
      }
  }
}

function navigate(path: string): void {
  history.pushState(null, '', path);
  void run(route);
}

// Links marked data-route switch views without a page load (which would drop the in-memory token).
document.addEventListener('click', (event) => {
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = (event.target as Element | null)?.closest<HTMLAnchorElement>('a[data-route]');
  if (!link) return;
  event.preventDefault();
  navigate(link.pathname + link.search);
});
window.addEventListener('popstate', () => void run(route));

// The session is over: a refresh found it so (revoked elsewhere, expired, logged out in another tab),
// or the live socket said so (SESSION_REVOKED: its event, or its close), without any user action.
onLoggedOut(() => {
  stopLive();
  void client.clearStore();
  resetSecurity(); // a TOTP secret or recovery codes on display go too
  if (currentRoute() === 'home') showLogin('Your session has ended. Please log in.');
});

// (index.html starts with aria-busy="true"; run() removes it when the first view is ready.)
initSecurity(loadAccount);
void run(route);
