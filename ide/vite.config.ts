import { defineConfig } from 'vite';

// The IDE is built once, committed (dist/) and embedded in the Go binary (ide.go), so the build must be
// reproducible: content-hashed file names, no source maps, nothing that depends on the machine or the
// time. Everything (React, GraphiQL, Monaco and its workers, fonts) is bundled: the page never loads
// anything from another origin, and the server's CSP (httpapi) forbids it anyway.
export default defineConfig({
  base: '/',
  oxc: { jsx: { runtime: 'automatic' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    // Monaco and GraphiQL are large; the IDE is a development tool served from loopback.
    chunkSizeWarningLimit: 8192,
    // Fonts and icons stay files (font-src 'self'), apart from the data: URLs GraphiQL's CSS ships.
    assetsInlineLimit: 0,
    // No inline <script>: the module preload polyfill would be a separate script anyway, but modern
    // browsers need none.
    modulePreload: { polyfill: false },
    rolldownOptions: {
      output: {
        // Every dependency in one vendor chunk that never imports the app's code: a change of src/
        // rewrites only the small index-*.js and index.html in the committed dist/, not megabytes of
        // Monaco whose names would otherwise change with the entry's hash. (It also puts GraphiQL's
        // lazily loaded prettier plugins in the page's first load: 5 MB from the local server.)
        codeSplitting: { groups: [{ name: 'vendor', test: /node_modules/ }] },
      },
      onLog(level, log, handler) {
        // framer-motion's "use client" directives mean nothing outside React Server Components.
        if (log.code === 'MODULE_LEVEL_DIRECTIVE') return;
        handler(level, log);
      },
    },
  },
  worker: { format: 'es' },
  // `npm run dev`: the page on Vite's port, /graphql (HTTP and WebSocket) passed on to a server on :8080,
  // so the page stays same-origin with its API as when embedded.
  server: {
    proxy: { '/graphql': { target: 'http://127.0.0.1:8080', ws: true } },
  },
});
