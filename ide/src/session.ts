// The IDE's session: the access token, the refresh token (in memory, or none in cookie mode) and who is
// logged in. Everything lives in this module only: nothing goes to localStorage, sessionStorage or a
// script-written cookie, so a reload logs out (in cookie mode the HttpOnly cookie survives it, and
// restore() gets a new access token with it).
//
// The auth calls below go straight to the endpoint with fetch, never through GraphiQL's fetcher, so a
// failing refresh can never trigger another refresh.

/** The GraphQL endpoint: the page is served by the same server, so a same-origin path. */
export const GRAPHQL_PATH = '/graphql';

export type User = { id: string; email: string; role: string };

export type Session = {
  /** The access token sent as `Authorization: Bearer …` (null: logged out). */
  accessToken: string | null;
  /** Its `exp` claim in milliseconds since the epoch (null when the token has none or is not a JWT). */
  expiresAt: number | null;
  /**
   * The refresh token of the last AuthPayload. Null with a pasted token, and in cookie mode
   * (REFRESH_TOKEN_COOKIE=true), where the server keeps it in an HttpOnly cookie that the browser
   * sends by itself and the payload carries none.
   */
  refreshToken: string | null;
  /** The server holds the refresh token in a cookie (the payload of a login carried none). */
  cookieMode: boolean;
  /** The result of `me` for the current token. */
  user: User | null;
  /** Access-token refreshes done since the login (shown, and read by the browser test). */
  refreshes: number;
};

export type GraphQLError = { message: string; extensions?: Record<string, unknown> };

type Result<T> = { data?: T | null; errors?: GraphQLError[] };

/** An operation failed: `code` is the first error's extensions.code (the network's: NETWORK_ERROR). */
export class AuthError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'AuthError';
  }
}

/** A login with the right password on an account with a second factor: finish with verifyMfa. */
export class MFARequired extends Error {
  constructor(readonly challenge: string) {
    super('a second factor is required');
    this.name = 'MFARequired';
  }
}

const empty: Session = {
  accessToken: null,
  expiresAt: null,
  refreshToken: null,
  cookieMode: false,
  user: null,
  refreshes: 0,
};

let session: Session = empty;
const listeners = new Set<() => void>();

// In cookie mode a reload can restore the session from the HttpOnly cookie. The page cannot see that
// cookie, so it remembers in sessionStorage only THAT a cookie session was opened in this tab (a flag,
// never a token), and calls refreshToken on load only then.
const COOKIE_FLAG = 'gqlauth-ide-cookie-session';

function update(next: Partial<Session>): void {
  session = { ...session, ...next };
  try {
    if (session.cookieMode && session.accessToken) sessionStorage.setItem(COOKIE_FLAG, '1');
    else if (!session.accessToken) sessionStorage.removeItem(COOKIE_FLAG);
  } catch {
    // storage disabled: a reload logs out
  }
  for (const l of listeners) l();
}

/** The current session (a new object after every change, for useSyncExternalStore). */
export function getSession(): Session {
  return session;
}

/** Calls `listener` after every change of the session; returns the unsubscribe function. */
export function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The `exp` claim of a JWT in milliseconds, or null. The token is not verified: the server does that. */
export function tokenExpiry(token: string): number | null {
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/** The code of an UNAUTHENTICATED error that a refresh can fix (the schema's AuthErrorReason). */
export function isTokenExpired(errors: GraphQLError[] | undefined): boolean {
  return (errors ?? []).some(
    (e) =>
      e.extensions?.reason === 'TOKEN_EXPIRED' ||
      // Older servers and other gqlauth-like APIs put the reason in the code itself.
      e.extensions?.code === 'TOKEN_EXPIRED',
  );
}

/** POSTs one operation to the endpoint (same origin: the refresh cookie goes along in cookie mode). */
async function post<T>(query: string, variables: Record<string, unknown>, token?: string | null): Promise<Result<T>> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json', Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(GRAPHQL_PATH, {
      method: 'POST',
      credentials: 'same-origin',
      headers,
      body: JSON.stringify({ query, variables }),
    });
    return (await res.json()) as Result<T>;
  } catch (err) {
    throw new AuthError(`the server could not be reached: ${String(err)}`, 'NETWORK_ERROR');
  }
}

function fail(errors: GraphQLError[] | undefined): never {
  const e = errors?.[0];
  const ext = e?.extensions ?? {};
  throw new AuthError(e?.message ?? 'no data in the response', String(ext.code ?? 'UNKNOWN'), ext);
}

const payloadFields = 'accessToken refreshToken user { id email role }';

type Payload = { accessToken: string; refreshToken: string | null; user: User };

function adopt(p: Payload, refreshes: number): void {
  update({
    accessToken: p.accessToken,
    expiresAt: tokenExpiry(p.accessToken),
    refreshToken: p.refreshToken,
    cookieMode: p.refreshToken === null,
    user: p.user,
    refreshes,
  });
}

/** Logs in; throws MFARequired when a second factor is needed, AuthError otherwise. */
export async function login(email: string, password: string): Promise<void> {
  const r = await post<{ login: Payload }>(
    `mutation IDELogin($i: LoginInput!) { login(input: $i) { ${payloadFields} } }`,
    { i: { email, password } },
  );
  if (r.data?.login) return adopt(r.data.login, 0);
  const mfa = r.errors?.find((e) => e.extensions?.code === 'MFA_REQUIRED');
  if (mfa && typeof mfa.extensions?.mfaChallenge === 'string') throw new MFARequired(mfa.extensions.mfaChallenge);
  fail(r.errors);
}

/** Finishes a login that needed a second factor. */
export async function verifyMfa(challenge: string, code: string): Promise<void> {
  const r = await post<{ verifyMfa: Payload }>(
    `mutation IDEVerifyMfa($c: String!, $code: String!) { verifyMfa(challenge: $c, code: $code) { ${payloadFields} } }`,
    { c: challenge, code },
  );
  if (r.data?.verifyMfa) return adopt(r.data.verifyMfa, 0);
  fail(r.errors);
}

/** Creates an account and logs it in. */
export async function register(email: string, password: string): Promise<void> {
  const r = await post<{ register: Payload }>(
    `mutation IDERegister($i: RegisterInput!) { register(input: $i) { ${payloadFields} } }`,
    { i: { email, password } },
  );
  if (r.data?.register) return adopt(r.data.register, 0);
  fail(r.errors);
}

/** Uses a pasted access token (no refresh token: it cannot be refreshed unless a cookie is there). */
export async function adoptToken(token: string): Promise<void> {
  const t = token.trim().replace(/^Bearer\s+/i, '');
  update({ ...empty, accessToken: t, expiresAt: tokenExpiry(t) });
  try {
    await loadMe();
  } catch (err) {
    update({ ...empty }); // a token the server refuses is not kept
    throw err;
  }
}

/** Runs `me` with the current token and stores the user (refreshing once if the token expired). */
export async function loadMe(): Promise<void> {
  const query = 'query IDEMe { me { id email role } }';
  let r = await post<{ me: User }>(query, {}, session.accessToken);
  if (isTokenExpired(r.errors) && (await refresh(session.accessToken))) {
    r = await post<{ me: User }>(query, {}, session.accessToken);
  }
  if (r.data?.me) return update({ user: r.data.me });
  fail(r.errors);
}

let inFlight: Promise<boolean> | null = null;

/**
 * Gets a new access token with the refresh token (from memory, or the cookie in cookie mode). Single
 * flight: callers arriving while a refresh is under way share it, so any number of operations that
 * found the token expired cause ONE refreshToken call (the server rotates the refresh token on each
 * call, so two would race). `staleToken` is the token the failed operation carried: when it has been
 * replaced since, there is nothing to refresh.
 *
 * Resolves true when a new access token is stored; false when the session cannot be refreshed (the
 * tokens are then forgotten). Throws AuthError when the server could not answer.
 */
export function refresh(staleToken?: string | null): Promise<boolean> {
  if (inFlight) return inFlight;
  if (staleToken && session.accessToken && session.accessToken !== staleToken) return Promise.resolve(true);
  inFlight = (async () => {
    const r = await post<{ refreshToken: Payload }>(
      `mutation IDERefresh($rt: String) { refreshToken(refreshToken: $rt) { ${payloadFields} } }`,
      { rt: session.refreshToken },
    );
    const p = r.data?.refreshToken;
    if (p) {
      adopt(p, session.refreshes + 1);
      return true;
    }
    const code = r.errors?.[0]?.extensions?.code;
    if (code === 'INVALID_REFRESH_TOKEN' || code === 'UNAUTHENTICATED' || code === 'BAD_REQUEST') {
      update({ ...empty });
      return false;
    }
    return fail(r.errors);
  })().finally(() => {
    inFlight = null;
  });
  return inFlight;
}

/**
 * In cookie mode a reload keeps the HttpOnly refresh cookie: one refreshToken call brings the session
 * back (only tried when this tab opened a cookie session, see COOKIE_FLAG). Without a live cookie the
 * server answers INVALID_REFRESH_TOKEN and the page stays logged out.
 */
export async function restore(): Promise<void> {
  try {
    if (sessionStorage.getItem(COOKIE_FLAG) !== '1') return;
    await refresh();
  } catch {
    // The server is not there (yet): stay logged out.
  }
}

/**
 * Logs out: revokes the session on the server (by the refresh token in memory, or the cookie, or
 * else the access token's session) and forgets every token, whatever the server answered.
 */
export async function logout(): Promise<void> {
  const { accessToken, refreshToken } = session;
  update({ ...empty });
  const r = await post<{ logout: boolean }>(
    'mutation IDELogout($rt: String) { logout(refreshToken: $rt) }',
    { rt: refreshToken },
    accessToken,
  );
  if (r.data?.logout !== true) fail(r.errors);
}
