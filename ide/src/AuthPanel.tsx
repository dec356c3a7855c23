// The auth panel, a GraphiQL plugin: log in, register or paste a token; shows who is logged in and
// until when; refreshes by itself (see fetcher.ts) and logs out.
import type { GraphiQLPlugin } from '@graphiql/react';
import { type FormEvent, useEffect, useState, useSyncExternalStore } from 'react';
import {
  AuthError,
  getSession,
  loadMe,
  login,
  logout,
  MFARequired,
  refresh,
  register,
  type Session,
  subscribe,
  adoptToken,
  verifyMfa,
} from './session';

export function useSession(): Session {
  return useSyncExternalStore(subscribe, getSession);
}

/** Re-renders every second, for the countdown to the token's expiry. */
function useNow(): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(id);
  }, []);
  return now;
}

function describe(err: unknown): string {
  if (err instanceof AuthError) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

function KeyIcon() {
  return (
    <svg viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" strokeWidth="1.5" aria-hidden="true">
      <circle cx="8" cy="15" r="4" />
      <path d="M10.8 12.2 20 3m-3 3 3 3m-6 0 2 2" />
    </svg>
  );
}

function LoggedIn({ session }: { session: Session }) {
  const now = useNow();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = (fn: () => Promise<unknown>) => async () => {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  };
  const left = session.expiresAt === null ? null : Math.round((session.expiresAt - now) / 1000);
  const refreshVia = session.refreshToken ? 'in memory' : session.cookieMode ? 'HttpOnly cookie' : 'none (pasted token)';
  return (
    <div className="auth-section" data-testid="auth-logged-in">
      <dl className="auth-facts">
        <dt>User</dt>
        <dd data-testid="auth-user">{session.user?.email ?? '(unknown: run me)'}</dd>
        <dt>Role</dt>
        <dd>{session.user?.role ?? '—'}</dd>
        <dt>Access token expires</dt>
        <dd data-testid="auth-expires">
          {session.expiresAt === null
            ? 'unknown'
            : `${new Date(session.expiresAt).toLocaleTimeString()} (${left! > 0 ? `in ${left} s` : 'expired: refreshed on next use'})`}
        </dd>
        <dt>Refresh token</dt>
        <dd data-testid="auth-refresh-via">{refreshVia}</dd>
        <dt>Refreshes</dt>
        <dd data-testid="auth-refreshes">{session.refreshes}</dd>
      </dl>
      <p className="auth-note">
        Every operation of the IDE sends <code>Authorization: Bearer …</code> with this token (unless the Headers
        tab sets its own); an expired token is refreshed and the operation retried once.
      </p>
      <div className="auth-buttons">
        <button type="button" className="graphiql-button" disabled={busy} onClick={run(loadMe)} data-testid="auth-me">
          Who am I
        </button>
        <button type="button" className="graphiql-button" disabled={busy} onClick={run(() => refresh())} data-testid="auth-refresh">
          Refresh now
        </button>
        <button
          type="button"
          className="graphiql-button"
          disabled={busy}
          onClick={run(() => navigator.clipboard.writeText(session.accessToken ?? ''))}
        >
          Copy token
        </button>
        <button type="button" className="graphiql-button" disabled={busy} onClick={run(logout)} data-testid="auth-logout">
          Log out
        </button>
      </div>
      {error && (
        <p className="auth-error" role="alert" data-testid="auth-error">
          {error}
        </p>
      )}
    </div>
  );
}

function LoggedOut() {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [challenge, setChallenge] = useState<string | null>(null);
  const [code, setCode] = useState('');
  const [pasted, setPasted] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const attempt = async (fn: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (err) {
      if (err instanceof MFARequired) setChallenge(err.challenge);
      else setError(describe(err));
    } finally {
      setBusy(false);
    }
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void attempt(() => (challenge ? verifyMfa(challenge, code.trim()) : login(email.trim(), password)));
  };

  return (
    <div className="auth-section" data-testid="auth-logged-out">
      <form onSubmit={submit} className="auth-form" data-testid="auth-form">
        <label>
          E-mail
          <input type="email" autoComplete="username" value={email} onChange={(e) => setEmail(e.target.value)} data-testid="auth-email" required />
        </label>
        <label>
          Password
          <input
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            data-testid="auth-password"
            required
          />
        </label>
        {challenge && (
          <label>
            Second factor (TOTP or recovery code)
            <input
              inputMode="numeric"
              autoComplete="one-time-code"
              value={code}
              onChange={(e) => setCode(e.target.value)}
              data-testid="auth-mfa-code"
              autoFocus
            />
          </label>
        )}
        <div className="auth-buttons">
          <button type="submit" className="graphiql-button" disabled={busy} data-testid="auth-login">
            {challenge ? 'Verify' : 'Log in'}
          </button>
          {!challenge && (
            <button
              type="button"
              className="graphiql-button"
              disabled={busy || !email || !password}
              onClick={() => void attempt(() => register(email.trim(), password))}
              data-testid="auth-register"
            >
              Register
            </button>
          )}
          {challenge && (
            <button type="button" className="graphiql-button" onClick={() => setChallenge(null)}>
              Cancel
            </button>
          )}
        </div>
      </form>
      <form
        className="auth-form"
        onSubmit={(e) => {
          e.preventDefault();
          void attempt(() => adoptToken(pasted));
        }}
      >
        <label>
          Or paste an access token
          <textarea rows={3} value={pasted} onChange={(e) => setPasted(e.target.value)} data-testid="auth-token-input" spellCheck={false} />
        </label>
        <div className="auth-buttons">
          <button type="submit" className="graphiql-button" disabled={busy || !pasted.trim()} data-testid="auth-token-use">
            Use token
          </button>
        </div>
      </form>
      {error && (
        <p className="auth-error" role="alert" data-testid="auth-error">
          {error}
        </p>
      )}
    </div>
  );
}

function AuthContent() {
  const session = useSession();
  return (
    <div className="auth-panel" data-testid="auth-panel">
      <div className="graphiql-doc-explorer-title">Authentication</div>
      {session.accessToken ? <LoggedIn session={session} /> : <LoggedOut />}
    </div>
  );
}

export const authPlugin: GraphiQLPlugin = {
  title: 'Authentication',
  icon: KeyIcon,
  content: AuthContent,
};

/** The logo slot of GraphiQL: who is logged in, at a glance. */
export function SessionBadge() {
  const session = useSession();
  return (
    <span className="auth-badge" data-testid="auth-badge">
      gqlauth{session.user ? ` · ${session.user.email}` : session.accessToken ? ' · token' : ' · logged out'}
    </span>
  );
}
