// The IDE served at / in development: GraphiQL, bundled with everything it needs (no CDN), plus the
// auth panel. Monaco's workers are separate files of this origin (CSP worker-src 'self').
import 'graphiql/setup-workers/vite';
import 'graphiql/style.css';
import './style.css';
import { GraphiQL } from 'graphiql';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { authPlugin, SessionBadge } from './AuthPanel';
import { fetcher } from './fetcher';
import { restore } from './session';

const defaultQuery = `# Log in or register in the Authentication panel (the key icon):
# every operation then carries your access token, refreshed
# by itself when it expires.

query Me {
  me {
    id
    email
    role
  }
}
`;

const root = document.getElementById('graphiql');
if (!root) throw new Error('no #graphiql element');
root.textContent = '';

createRoot(root).render(
  <StrictMode>
    <GraphiQL fetcher={fetcher} plugins={[authPlugin]} visiblePlugin={authPlugin} defaultQuery={defaultQuery}>
      <GraphiQL.Logo>
        <SessionBadge />
      </GraphiQL.Logo>
    </GraphiQL>
  </StrictMode>,
);

// Cookie mode: a refresh-token cookie from before the reload brings the session back.
void restore();
