import './style.css';
import { CombinedGraphQLErrors } from '@apollo/client';
import { client } from './apollo';
import {
  clearAccessToken,
  getAccessToken,
  onLoggedOut,
  RefreshError,
  refreshAccessToken,
  setAccessToken,
} from './auth';
import type { SessionsQuery } from './gql/graphql';
import {
  loginMutation,
  logoutAllMutation,
  logoutMutation,
  meQuery,
  registerMutation,
  requestEmailVerificationMutation,
  requestPasswordResetMutation,
  resetPasswordMutation,
  revokeSessionMutation,
  sessionsQuery,
  verifyEmailMutation,
} from './operations';

function byTestId<T extends HTMLElement>(id: string): T {
  const el = document.querySelector<T>(`[data-testid="${id}"]`);
  if (!el) throw new Error(`missing element ${id}`);
  return el;
}

const ui = {
  status: byTestId<HTMLParagraphElement>('status'),
  error: byTestId<HTMLParagraphElement>('error'),
  form: byTestId<HTMLFormElement>('login-form'),
  email: byTestId<HTMLInputElement>('email-input'),
  password: byTestId<HTMLInputElement>('password-input'),
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
const views = [ui.form, ui.account, ui.forgotForm, ui.resetForm, ui.resetInvalid, ui.verify];

function showView(view: HTMLElement): void {
  for (const v of views) v.hidden = v !== view;
}

/** The error code of a GraphQL error response (extensions.code), or undefined for anything else. */
function errorCode(err: unknown): string | undefined {
  if (!CombinedGraphQLErrors.is(err)) return undefined;
  const code = err.errors[0]?.extensions?.code;
  return typeof code === 'string' ? code : undefined;
}

/** "CODE (reason or field): message", from the server's errors[].extensions. */
function describeError(err: unknown): string {
  if (CombinedGraphQLErrors.is(err)) {
    const first = err.errors[0];
    const ext = first?.extensions ?? {};
    const detail = ext.reason ?? ext.field;
    return `${String(ext.code ?? 'ERROR')}${detail ? ` (${String(detail)})` : ''}: ${first?.message ?? ''}`;
  }
  if (err instanceof RefreshError) return `${err.code ?? 'REFRESH_FAILED'}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

function showError(err: unknown): void {
  ui.error.textContent = describeError(err);
  ui.error.hidden = false;
}

function clearError(): void {
  ui.error.textContent = '';
  ui.error.hidden = true;
}

function showLogin(status = 'Not signed in.'): void {
  ui.meEmail.textContent = '';
  ui.meVerified.textContent = '';
  ui.sessions.replaceChildren();
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
      const cell = (text: string, className?: string) => {
        const td = document.createElement('td');
        td.textContent = text;
        if (className) td.className = className;
        return td;
      };
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

/** Loads me and sessions in parallel and shows the logged-in view. */
async function loadAccount(): Promise<void> {
  const [me, sessions] = await Promise.all([
    client.query({ query: meQuery, fetchPolicy: 'network-only' }),
    client.query({ query: sessionsQuery, fetchPolicy: 'network-only' }),
  ]);
  if (!me.data || !sessions.data) throw new Error('empty response');
  ui.meEmail.textContent = me.data.me.email;
  renderVerified(me.data.me.emailVerified);
  renderSessions(sessions.data.sessions);
  showView(ui.account);
  ui.status.textContent = `Loaded at ${new Date().toLocaleTimeString()}.`;
}

async function revokeSession(id: string): Promise<void> {
  const { data } = await client.mutate({ mutation: revokeSessionMutation, variables: { id } });
  if (!data?.revokeSession) throw new Error('That session was not found (already ended?).');
  await loadAccount();
}

/** Forgets everything about the user on this page. */
async function forgetUser(status: string): Promise<void> {
  clearAccessToken();
  await client.clearStore();
  showLogin(status);
}

/** Runs a user action: buttons disabled meanwhile, errors shown with their code. */
async function run(action: () => Promise<void>): Promise<void> {
  const buttons = [...document.querySelectorAll('button')];
  buttons.forEach((b) => (b.disabled = true));
  document.body.setAttribute('aria-busy', 'true');
  clearError();
  try {
    await action();
  } catch (err) {
    showError(err);
  } finally {
    buttons.forEach((b) => (b.disabled = false));
    document.body.removeAttribute('aria-busy');
  }
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
      const { data } = await client.mutate({ mutation: loginMutation, variables: { input } });
      if (!data) throw new Error('empty response');
      token = data.login.accessToken;
    }
    setAccessToken(token); // the refresh token arrived as an HttpOnly cookie
    ui.password.value = '';
    await loadAccount();
  });
});

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

// A refresh found the session over (revoked elsewhere, expired, logged out in another tab).
onLoggedOut(() => {
  void client.clearStore();
  if (currentRoute() === 'home') showLogin('Your session has ended. Please log in.');
});

// (index.html starts with aria-busy="true"; run() removes it when the first view is ready.)
void run(route);
