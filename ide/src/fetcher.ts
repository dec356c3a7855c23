// GraphiQL's fetcher: queries and mutations over HTTP POST, subscriptions over graphql-ws, both with
// the auth panel's access token. An HTTP operation that fails because the access token expired is
// retried once after a (single-flight) refresh; a socket that the server closes with 4403
// TOKEN_EXPIRED reconnects after the same refresh, with the new token.
import type { Fetcher, FetcherOpts, FetcherParams } from '@graphiql/toolkit';
import { type DocumentNode, getOperationAST, parse } from 'graphql';
import { type Client, createClient } from 'graphql-ws';
import { type GraphQLError, GRAPHQL_PATH, getSession, isTokenExpired, refresh, subscribe } from './session';

type Result = { data?: unknown; errors?: GraphQLError[]; extensions?: unknown };

/** The same endpoint as a WebSocket URL (ws: or wss: like the page). */
function socketURL(): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${GRAPHQL_PATH}`;
}

/** The close code of every authentication failure of the socket (its reason is an AuthErrorReason). */
const WS_CLOSE_FORBIDDEN = 4403;

function isCloseEvent(value: unknown): value is CloseEvent {
  return typeof value === 'object' && value !== null && 'code' in value && 'reason' in value;
}

let client: Client | null = null;
/** The access token of the socket's connection_init (null: none). */
let socketToken: string | null = null;
/** The refresh started by a 4403 TOKEN_EXPIRED close, which the reconnect waits for. */
let refreshForSocket: Promise<boolean> | null = null;

function socket(): Client {
  client ??= createClient({
    url: socketURL(),
    // Called for every connection, the first and each reconnect, so a reconnect after a refresh
    // carries the new token. The key is the HTTP header's name.
    connectionParams: () => {
      socketToken = getSession().accessToken;
      return socketToken ? { Authorization: `Bearer ${socketToken}` } : {};
    },
    lazy: true,
    // Retry what a new connection can fix: the network or the server going away, and an expired
    // token once refreshed. Any other 4403 (revoked session, invalid token) is final.
    shouldRetry: (closeEvent) => {
      if (!isCloseEvent(closeEvent)) return false;
      if (closeEvent.code !== WS_CLOSE_FORBIDDEN) return true;
      return closeEvent.reason === 'TOKEN_EXPIRED';
    },
    retryAttempts: 5,
    retryWait: async (retries) => {
      const refreshed = refreshForSocket;
      refreshForSocket = null;
      if (refreshed && (await refreshed)) return; // reconnect at once with the new token
      await new Promise((resolve) => setTimeout(resolve, 2 ** retries * 1000));
    },
    on: {
      closed: (event) => {
        if (isCloseEvent(event) && event.code === WS_CLOSE_FORBIDDEN && event.reason === 'TOKEN_EXPIRED') {
          refreshForSocket = refresh(socketToken).catch(() => false);
        }
      },
    },
  });
  return client;
}

// A socket belongs to one login: when the user logs out or another one logs in, close it (its
// subscriptions end) instead of letting it run on the old session.
let socketUser: string | null = null;
subscribe(() => {
  const user = getSession().user?.id ?? null;
  const loggedOut = getSession().accessToken === null;
  if ((loggedOut || user !== socketUser) && client) {
    void client.dispose();
    client = null;
  }
  socketUser = user;
});

function isSubscription(params: FetcherParams, doc: DocumentNode | undefined): boolean {
  try {
    const ast = doc ?? parse(params.query);
    return getOperationAST(ast, params.operationName ?? undefined)?.operation === 'subscription';
  } catch {
    return false; // the server reports the syntax error
  }
}

function hasHeader(headers: Record<string, unknown>, name: string): boolean {
  return Object.keys(headers).some((k) => k.toLowerCase() === name.toLowerCase());
}

async function post(params: FetcherParams, headers: Record<string, string>): Promise<Result> {
  const res = await fetch(GRAPHQL_PATH, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...headers },
    body: JSON.stringify(params),
  });
  const text = await res.text();
  try {
    return JSON.parse(text) as Result;
  } catch {
    return { errors: [{ message: `HTTP ${res.status}: ${text.slice(0, 200)}` }] };
  }
}

/**
 * The fetcher. Headers from GraphiQL's Headers tab are sent as written; an Authorization header there
 * wins over the auth panel's token (and is then never refreshed).
 */
export const fetcher: Fetcher = (params: FetcherParams, opts?: FetcherOpts) => {
  const own: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts?.headers ?? {})) own[k] = String(v);
  const manual = hasHeader(own, 'Authorization');

  if (isSubscription(params, opts?.documentAST)) {
    return socket().iterate({
      query: params.query,
      operationName: params.operationName ?? undefined,
      variables: params.variables ?? undefined,
    }) as unknown as ReturnType<Fetcher>; // graphql-ws's result type is GraphiQL's, formatted
  }

  return (async () => {
    const token = getSession().accessToken;
    const withToken = (t: string | null) => (manual || !t ? own : { ...own, Authorization: `Bearer ${t}` });
    const result = await post(params, withToken(token));
    if (manual || !token || !isTokenExpired(result.errors)) return result as never;
    // The token expired: refresh once (shared with every other operation that found the same) and
    // retry once with the new token. If the refresh is refused, the original answer stands.
    let refreshed = false;
    try {
      refreshed = await refresh(token);
    } catch {
      refreshed = false;
    }
    if (!refreshed) return result as never;
    return (await post(params, withToken(getSession().accessToken))) as never;
  })();
};
