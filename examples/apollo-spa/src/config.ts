/** The GraphQL endpoint, fixed at build time: `VITE_GRAPHQL_URL=… npm run build` (or `npm run dev`). */
export const GRAPHQL_URL: string = import.meta.env.VITE_GRAPHQL_URL || 'http://localhost:8080/graphql';
