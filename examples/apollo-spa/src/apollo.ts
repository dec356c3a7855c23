import { ApolloClient, ApolloLink, CombinedGraphQLErrors, HttpLink, InMemoryCache } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { OperationTypeNode, print } from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import { from, mergeMap, Observable, of } from 'rxjs';
import { endSession, getAccessToken, refreshAccessToken } from './auth';
import { GRAPHQL_URL, GRAPHQL_WS_URL } from './config';
import { sha256Hash } from './persisted';

declare module '@apollo/client' {
  interface DefaultContext {
    /** The access token this request was sent with (null: none), set by authLink. */
    sentToken?: string | null;
    /** Set once the operation has been retried after a refresh, so it is never retried twice. */
    retriedAfterRefresh?: boolean;
  }
}

// Adds `Authorization: Bearer <token>` when there is an access token. It runs again for a retry, so
// the retry carries the refreshed token.
const authLink = new ApolloLink((operation, forward) => {
  const token = getAccessToken();
  operation.setContext(({ headers }) => {
    const next: Record<string, string> = { ...headers };
    if (token) next.authorization = `Bearer ${token}`;
    else delete next.authorization;
    return { headers: next, sentToken: token };
  });
  return forward(operation);
});

// When a result carries an UNAUTHENTICATED error (expired, missing or invalid access token), waits for
// the single-flight refresh and retries the operation once. If the refresh fails, the original result
// goes on to the caller; auth.ts has already told the app that the user is logged out.
const refreshLink = new ApolloLink((operation, forward) =>
  forward(operation).pipe(
    mergeMap((result) => {
      const unauthenticated = result.errors?.some((e) => e.extensions?.code === 'UNAUTHENTICATED');
      if (!unauthenticated || operation.getContext().retriedAfterRefresh) return of(result);
      const refreshed = refreshAccessToken(operation.getContext().sentToken ?? null).catch(() => false);
      return from(refreshed).pipe(
        mergeMap((ok) => {
          if (!ok) return of(result);
          operation.setContext({ retriedAfterRefresh: true });
          return forward(operation);
        }),
      );
    }),
  ),
);

// ---- Subscriptions: graphql-ws over one WebSocket -------------------------------------------------
// The server closes a socket with 4403 and the reason (an AuthErrorReason) when its access token is
// missing, invalid or expired, or its session is revoked: at connection_init, and later while it is
// open (the token expires; someone logs out everywhere, revokes this session, changes the password).

/** The close code of every authentication failure of the socket. */
export const WS_CLOSE_FORBIDDEN = 4403;

/** The access token the socket's connection_init carried (null: none), like sentToken of HTTP calls. */
let socketToken: string | null = null;

/** The refresh started by a 4403 TOKEN_EXPIRED close, which the reconnect waits for (retryWait). */
let refreshForSocket: Promise<boolean> | null = null;

/** The last close was a normal one (1000): a subscription that came while the socket was closing. */
let closedNormally = false;

function isCloseEvent(value: unknown): value is CloseEvent {
  return typeof value === 'object' && value !== null && 'code' in value && 'reason' in value;
}

/** graphql-ws's default wait before a reconnect: 2^retries s plus 0.3–3 s of jitter. */
function backoff(retries: number): Promise<void> {
  const ms = 2 ** retries * 1000 + Math.floor(Math.random() * 2700 + 300);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export const wsClient = createClient({
  url: GRAPHQL_WS_URL,
  // A function, called for every connection (the first and each reconnect): the token is the current
  // one, so a reconnect after a refresh carries the new token. The key is the HTTP header's.
  connectionParams: async () => {
    socketToken = getAccessToken();
    return socketToken ? { Authorization: `Bearer ${socketToken}` } : {};
  },
  // Connect on the first subscription, close after the last one ends (logout unsubscribes).
  lazy: true,
  // Retry closes that a new attempt can fix: the network or the server going away (the library's
  // default: any close event), and an expired token once refreshed. Any other 4403 is final: a
  // revoked session, or a token that a retry would only send again.
  shouldRetry: (errOrClose) => {
    if (!isCloseEvent(errOrClose)) return false;
    if (errOrClose.code !== WS_CLOSE_FORBIDDEN) return true;
    return errOrClose.reason === 'TOKEN_EXPIRED';
  },
  // After TOKEN_EXPIRED, reconnect as soon as the refresh is done (no backoff); if it failed, back off
  // as usual (a refused refresh has already logged the page out, and the retry finds no subscriber).
  // A subscription that arrived while the last one's socket was closing (log out, log in again)
  // connects at once too; everything else backs off.
  retryWait: async (retries) => {
    const refreshed = refreshForSocket;
    refreshForSocket = null;
    if (refreshed && (await refreshed)) return;
    if (closedNormally && retries === 0) return;
    await backoff(retries);
  },
  on: {
    closed: (event) => {
      closedNormally = isCloseEvent(event) && event.code === 1000;
      if (!isCloseEvent(event) || event.code !== WS_CLOSE_FORBIDDEN) return;
      if (event.reason === 'TOKEN_EXPIRED') {
        // The app's single-flight refresh: shared with any HTTP request that found the same token
        // expired, and resolved at once when the token was already replaced (then: just reconnect).
        refreshForSocket = refreshAccessToken(socketToken).catch(() => false);
      } else if (event.reason === 'SESSION_REVOKED') {
        endSession(); // the login form, without any user action
      }
    },
  },
});

// ---- Trusted documents -----------------------------------------------------------------------------
// The server runs only the operations of src/gql/persisted-documents.json (TRUSTED_DOCUMENTS=require):
// every operation goes as its hash, extensions.persistedQuery.sha256Hash, without its text. The hash is
// codegen's (persisted.ts), not computed here. If a server answers PERSISTED_QUERY_NOT_FOUND (one without
// the manifest, using APQ instead), the link sends the operation again with its text.
const persistedLink = new PersistedQueryLink({ generateHash: (document) => sha256Hash(document) });

/**
 * GraphQLWsLink, but a subscription goes as its hash: the subscribe payload carries
 * extensions.persistedQuery and an empty query (graphql-ws requires a string), unless the persisted
 * link asks for the text (http.includeQuery, its retry after PERSISTED_QUERY_NOT_FOUND).
 */
class PersistedWsLink extends ApolloLink {
  constructor(private readonly ws: Client) {
    super();
  }

  override request(operation: ApolloLink.Operation): Observable<ApolloLink.Result> {
    return new Observable((observer) => {
      const { query, variables, operationName, extensions } = operation;
      const hashOnly = Boolean(extensions.persistedQuery) && operation.getContext().http?.includeQuery === false;
      return this.ws.subscribe(
        { variables, operationName, extensions, query: hashOnly ? '' : print(query) },
        {
          next: (value) => observer.next(value as ApolloLink.Result),
          complete: () => observer.complete(),
          error: (err: unknown) => {
            if (err instanceof Error) return observer.error(err);
            if (isCloseEvent(err)) return observer.error(new Error(`Socket closed with event ${err.code} ${err.reason}`));
            if (Array.isArray(err)) return observer.error(new CombinedGraphQLErrors({ errors: err }));
            return observer.error(new Error(String(err)));
          },
        },
      );
    });
  }
}

// Subscriptions go over the socket; queries and mutations over HTTP, through the refresh and auth links.
export const client = new ApolloClient({
  link: ApolloLink.from([
    persistedLink,
    ApolloLink.split(
      (operation) => operation.operationType === OperationTypeNode.SUBSCRIPTION,
      new PersistedWsLink(wsClient),
      ApolloLink.from([
        refreshLink,
        authLink,
        // credentials: 'include' sends the refresh-token cookie (logout needs it) and accepts Set-Cookie.
        new HttpLink({ uri: GRAPHQL_URL, credentials: 'include' }),
      ]),
    ),
  ]),
  cache: new InMemoryCache(),
  // Always ask the server: a cached `me` or `sessions` would hide a revoked or expired session.
  defaultOptions: {
    query: { fetchPolicy: 'network-only' },
    watchQuery: { fetchPolicy: 'network-only' },
  },
});
