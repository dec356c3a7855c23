import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from '@apollo/client';
import { from, mergeMap, of } from 'rxjs';
import { getAccessToken, refreshAccessToken } from './auth';
import { GRAPHQL_URL } from './config';

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

export const client = new ApolloClient({
  link: ApolloLink.from([
    refreshLink,
    authLink,
    // credentials: 'include' sends the refresh-token cookie (logout needs it) and accepts Set-Cookie.
    new HttpLink({ uri: GRAPHQL_URL, credentials: 'include' }),
  ]),
  cache: new InMemoryCache(),
  // Always ask the server: a cached `me` or `sessions` would hide a revoked or expired session.
  defaultOptions: {
    query: { fetchPolicy: 'network-only' },
    watchQuery: { fetchPolicy: 'network-only' },
  },
});
