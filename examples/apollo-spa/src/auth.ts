import { GRAPHQL_URL } from './config';
import type { RefreshTokenMutation } from './gql/graphql';
import { refreshTokenMutation } from './operations';
import { documentId } from './persisted';

// The access token lives ONLY in this module variable: never in localStorage, sessionStorage or a
// cookie written by script, where any injected script could read it (and keep it). It is lost on
// reload, which is fine: the refresh token is in an HttpOnly cookie that the browser sends with
// `credentials: 'include'`, so one refreshToken call brings a new access token back.
let accessToken: string | null = null;

// The one refresh request under way, shared by every caller that needs it (single flight).
let inFlight: Promise<boolean> | null = null;

const loggedOutListeners = new Set<() => void>();

export function getAccessToken(): string | null {
  return accessToken;
}

/** Stores the access token of a login or register payload. */
export function setAccessToken(token: string): void {
  accessToken = token;
}

/** Forgets the access token (after logout). */
export function clearAccessToken(): void {
  accessToken = null;
}

/**
 * The session is over (revoked, found out by the live socket): forgets the access token and calls the
 * logged-out listeners, as a failed refresh does. Does nothing when there is no token any more (the
 * page already logged out), so the listeners run once however many signals arrive.
 */
export function endSession(): void {
  if (accessToken === null) return;
  accessToken = null;
  for (const listener of loggedOutListeners) listener();
}

/** Calls `listener` whenever the session is found over (a refresh refused, or endSession); returns an unsubscribe function. */
export function onLoggedOut(listener: () => void): () => void {
  loggedOutListeners.add(listener);
  return () => loggedOutListeners.delete(listener);
}

/** A refresh that failed for another reason than an ended session (network down, server error). */
export class RefreshError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'RefreshError';
  }
}

/**
 * Gets a new access token with the refresh-token cookie. Single flight: callers arriving while a
 * refresh is under way share its promise, so any number of failed requests cause ONE refreshToken
 * request (the server rotates the refresh token on every call, so parallel refreshes would also race).
 *
 * `staleToken` is the access token a failed request carried. If the token has been replaced since
 * (another caller's refresh already finished), there is nothing to refresh and this resolves at once.
 *
 * Resolves true when a new access token is stored; false when the session is over (the token is
 * cleared and the logged-out listeners are called); rejects with RefreshError when the server could
 * not answer (the token is kept: the session may still be alive).
 */
export function refreshAccessToken(staleToken?: string | null): Promise<boolean> {
  if (inFlight) return inFlight;
  if (staleToken !== undefined && accessToken !== null && accessToken !== staleToken) {
    return Promise.resolve(true);
  }
  inFlight = requestRefresh().finally(() => {
    inFlight = null;
  });
  return inFlight;
}

type RefreshResponse = {
  data?: RefreshTokenMutation | null;
  errors?: { message: string; extensions?: { code?: string } }[];
};

// Sent with plain fetch, not through the Apollo link chain, so that a failing refresh can never
// trigger another refresh.
async function requestRefresh(): Promise<boolean> {
  let body: RefreshResponse;
  try {
    const res = await fetch(GRAPHQL_URL, {
      method: 'POST',
      credentials: 'include', // send the HttpOnly refresh-token cookie, accept the rotated one
      headers: { 'Content-Type': 'application/json' },
      // The trusted document's id, not its text (persisted.ts).
      body: JSON.stringify({ operationName: 'RefreshToken', documentId: documentId(refreshTokenMutation) }),
    });
    body = (await res.json()) as RefreshResponse;
  } catch (err) {
    throw new RefreshError(`refresh failed: ${String(err)}`, 'NETWORK_ERROR');
  }
  const token = body.data?.refreshToken.accessToken;
  if (token) {
    accessToken = token;
    return true;
  }
  const code = body.errors?.[0]?.extensions?.code;
  if (code === 'INVALID_REFRESH_TOKEN' || code === 'UNAUTHENTICATED') {
    accessToken = null;
    for (const listener of loggedOutListeners) listener();
    return false;
  }
  throw new RefreshError(body.errors?.[0]?.message ?? 'refresh failed', code);
}
