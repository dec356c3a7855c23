/** The GraphQL endpoint, fixed at build time: `VITE_GRAPHQL_URL=… npm run build` (or `npm run dev`). */
export const GRAPHQL_URL: string = import.meta.env.VITE_GRAPHQL_URL || 'http://localhost:8080/graphql';

/**
 * The same endpoint for subscriptions (graphql-ws over a WebSocket): `VITE_GRAPHQL_WS_URL`, or
 * GRAPHQL_URL with http(s) turned into ws(s).
 */
export const GRAPHQL_WS_URL: string = import.meta.env.VITE_GRAPHQL_WS_URL || GRAPHQL_URL.replace(/^http/, 'ws');
