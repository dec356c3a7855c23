import './style.css';
import { CombinedGraphQLErrors } from '@apollo/client';
import { client } from './apollo';
import { clearAccessToken, onLoggedOut, RefreshError, refreshAccessToken, setAccessToken } from './auth';
import type { SessionsQuery } from './gql/graphql';
import {
  loginMutation,
  logoutAllMutation,
  logoutMutation,
  meQuery,
  registerMutation,
  revokeSessionMutation,
  sessionsQuery,
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
  sessions: byTestId<HTMLTableSectionElement>('sessions'),
  refresh: byTestId<HTMLButtonElement>('refresh-button'),
  logout: byTestId<HTMLButtonElement>('logout-button'),
  logoutAll: byTestId<HTMLButtonElement>('logout-all-button'),
};

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
  ui.account.hidden = true;
  ui.meEmail.textContent = '';
  ui.sessions.replaceChildren();
  ui.form.hidden = false;
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

/** Loads me and sessions in parallel and shows the logged-in view. */
async function loadAccount(): Promise<void> {
  const [me, sessions] = await Promise.all([
    client.query({ query: meQuery, fetchPolicy: 'network-only' }),
    client.query({ query: sessionsQuery, fetchPolicy: 'network-only' }),
  ]);
  if (!me.data || !sessions.data) throw new Error('empty response');
  ui.meEmail.textContent = me.data.me.email;
  renderSessions(sessions.data.sessions);
  ui.form.hidden = true;
  ui.account.hidden = false;
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

// A refresh found the session over (revoked elsewhere, expired, logged out in another tab).
onLoggedOut(() => {
  void client.clearStore();
  showLogin('Your session has ended. Please log in.');
});

// On load there is no access token (it lived in memory only): the refresh-token cookie, if any,
// gets one. No cookie or a dead session: the login form.
// (index.html starts with aria-busy="true"; run() removes it when this is done.)
void run(async () => {
  try {
    if (await refreshAccessToken()) await loadAccount();
  } finally {
    if (ui.account.hidden) showLogin();
  }
});
