// Package httpapi owns every net/http concern of the service: the routes (POST and GET /graphql, the
// CORS preflight, /healthz, /readyz, /metrics, the JWKS, and the IDE and SDL in development), the
// middleware order, CORS and CSRF, the refresh-token cookie, the client's IP address behind trusted
// proxies, the Authorization header, body limits and batch refusal, the request timeout, gqlgen's
// HTTP transports, the http.Server's timeouts, and (tracing on) the HTTP server span. The GraphQL schema, resolvers and error table are
// package graph's; this package puts them on the wire.
package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"gqlauth/auth"
	"gqlauth/graph"
	"gqlauth/ide"
	"gqlauth/observe"
	"gqlauth/token"
)

// Paths served by New.
const (
	PathGraphQL = "/graphql"
	PathHealth  = "/healthz"
	PathReady   = "/readyz"
	PathMetrics = "/metrics"
	PathJWKS    = "/.well-known/jwks.json"
	PathSchema  = "/graphql/schema.graphql"
)

// DefaultMaxBodyBytes caps a GraphQL request body. The largest legitimate request (changePassword
// with two 256-character passwords, or an IDE's introspection query) is a few KiB.
const DefaultMaxBodyBytes = 16 << 10

// Options configure New.
type Options struct {
	Logger *slog.Logger // nil means slog.Default()
	// Development serves the GraphQL IDE at / and the SDL, and allows introspection.
	Development bool
	// MaxBodyBytes caps request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxDepth, MaxComplexity and MaxTokens are the operation limits (see graph.Options); 0 means
	// graph's defaults.
	MaxDepth, MaxComplexity, MaxTokens int
	// TrustedProxies are the peers whose X-Forwarded-For header names the client.
	TrustedProxies []netip.Prefix
	// RequestTimeout is each GraphQL request's deadline, passed to the database and to the queue for a
	// password-hashing slot, so a stalled database fails requests instead of hanging them; 0 means none.
	RequestTimeout time.Duration
	// Cookie configures cookie mode (the refresh token in an HttpOnly cookie).
	Cookie CookieOptions
	// CORSOrigins are the browser origins allowed to call the API with credentials ("*": any origin,
	// without credentials). Cross-origin POSTs from other origins are refused.
	CORSOrigins []string
	// Ready reports whether the service can serve (the database answers); GET /readyz calls it with
	// a 2-second timeout. nil means always ready.
	Ready func(ctx context.Context) error
	// Metrics, if set, is served at GET /metrics, counts HTTP requests, overruns and GraphQL
	// operations (once per request: name and outcome), and the graphql-ws sockets.
	Metrics *observe.Metrics
	// Sockets are the graphql-ws sockets of /graphql (see NewSockets); nil means a set with the
	// default WebSocketOptions that nobody shuts down.
	Sockets *Sockets
	// Persisted configures trusted documents and APQ (see graph.Persisted).
	Persisted graph.Persisted
	// TracerProvider, if set, makes each request a server span (honouring an incoming W3C
	// traceparent), and each GraphQL operation and root resolver a child of it (graph.Options);
	// nil (tracing off) wraps nothing.
	TracerProvider trace.TracerProvider
}

// New returns the service's whole HTTP surface (see the package comment), wrapped in its middleware:
// outermost the request id, then the HTTP metrics, the overrun watch and the access log. The server
// binary and every test build it (through app.New), so tests exercise the real middleware, transports,
// directive and error presenter. It fails only on an invalid CORS origin.
func New(svc *auth.Service, opts Options) (http.Handler, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	gopts := graph.Options{
		Logger:        opts.Logger,
		Development:   opts.Development,
		MaxDepth:      opts.MaxDepth,
		MaxComplexity: opts.MaxComplexity,
		MaxTokens:     opts.MaxTokens,
		Persisted:     opts.Persisted,

		TracerProvider: opts.TracerProvider,
	}
	if opts.Cookie.Enabled {
		gopts.Cookies = refreshCookies{opts.Cookie}
	}
	if opts.Metrics != nil {
		gopts.OnOperation = opts.Metrics.GraphQLOperation
	}
	return newHandler(svc, graph.New(svc, gopts), opts)
}

// newHandler serves gql (graph.New's server, to which it adds the transports) and the other routes;
// opts are already defaulted. Tests use it to watch gql's responses.
func newHandler(svc *auth.Service, gql *handler.Server, opts Options) (http.Handler, error) {
	cors := newCORS(opts.CORSOrigins)
	sockets := opts.Sockets
	if sockets == nil {
		sockets = NewSockets(WebSocketOptions{})
	}
	sockets.svc, sockets.log, sockets.metrics, sockets.cors = svc, opts.Logger, opts.Metrics, cors
	sockets.proxies = func(r *http.Request) string { return clientIP(r, opts.TrustedProxies) }
	addTransports(gql, opts.MaxBodyBytes, sockets)
	endpoint, err := csrf(opts.CORSOrigins, opts.Logger, cors.wrap(graphqlEndpoint(svc, gql, opts)))
	if err != nil {
		return nil, err
	}
	upgrade := sockets.serve(gql)
	mux := http.NewServeMux()
	mux.Handle("GET "+PathGraphQL, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A WebSocket upgrade skips the body limit and the request deadline (a socket lives on)
		// and CSRF (GET: no state changes; the Origin check is the socket's own).
		if isUpgrade(r) {
			upgrade.ServeHTTP(w, r)
			return
		}
		endpoint.ServeHTTP(w, r)
	}))
	mux.Handle("POST "+PathGraphQL, endpoint)
	mux.HandleFunc("OPTIONS "+PathGraphQL, cors.preflight)
	mux.HandleFunc("GET "+PathHealth, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET "+PathReady, readyHandler(opts.Ready, opts.Logger))
	if opts.Metrics != nil {
		mux.Handle("GET "+PathMetrics, opts.Metrics.Handler())
	}
	mux.HandleFunc("GET "+PathJWKS, func(w http.ResponseWriter, _ *http.Request) {
		// Built per request: the key set changes when keys rotate. Verifiers may cache it for
		// token.JWKSMaxAge, which key rotation allows for before a new key starts signing.
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(token.JWKSMaxAge.Seconds())))
		_, _ = w.Write(svc.JWKS())
	})
	if opts.Development {
		// Like introspection, the IDE and the SDL advertise the API: development only.
		// The embedded IDE (package ide), under a strict Content-Security-Policy (ideHeaders).
		page := ideHeaders(ide.Handler())
		mux.Handle("GET /{$}", page)
		mux.Handle("GET "+ide.AssetsPrefix, page)
		sdl := []byte(graph.SDL())
		mux.HandleFunc("GET "+PathSchema, func(w http.ResponseWriter, _ *http.Request) {
			// The schema file itself, as compiled into this binary: the contract for code generators.
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			_, _ = w.Write(sdl)
		})
	}
	return middleware(mux, opts), nil
}

// middleware wraps h, outermost first: the request id, so that every log line of the request carries
// it; the server span when tracing is on (see traced), so that the log lines below carry its trace
// and span ids; the HTTP metrics and the access log, which read the route (r.Pattern) that the mux
// sets on the same request; and the watch, which reports a request still running a second past its
// own deadline while it runs.
func middleware(h http.Handler, opts Options) http.Handler {
	var onOverrun func(kind string)
	if opts.Metrics != nil {
		onOverrun = opts.Metrics.Overrun
	}
	logged := observe.AccessLog(opts.Logger, h)
	watched := observe.Watch(opts.Logger, opts.RequestTimeout+time.Second, onOverrun, logged)
	// A WebSocket runs as long as it is open: it is not a request that overruns.
	h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isUpgrade(r) {
			logged.ServeHTTP(w, r)
			return
		}
		watched.ServeHTTP(w, r)
	})
	if opts.Metrics != nil {
		h = opts.Metrics.HTTP(h)
	}
	if opts.TracerProvider != nil {
		h = traced(h, opts.TracerProvider)
	}
	return observe.RequestID(h)
}

// traced makes each request a server span named by its route ("POST /graphql"), a child of the
// caller's span when the request carries a W3C traceparent (baggage is honoured too). The span
// records the method, route, status and sizes, never the query string or a header other than
// User-Agent. Two kinds of request get no span: WebSocket upgrades, whose span would last as long as
// the socket (each subscription's operation is a span of its own), and the probes (/healthz,
// /readyz, /metrics), which would bury the traces worth reading. The middleware passes the writer's
// http.Hijacker through, so upgrades work either way.
func traced(h http.Handler, tp trace.TracerProvider) http.Handler {
	// otelhttp names the span by the route once served, but sets http.route only from a pattern
	// known before: add it from the pattern the mux set (on this same request).
	routed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if _, route, ok := strings.Cut(r.Pattern, " "); ok {
			trace.SpanFromContext(r.Context()).SetAttributes(semconv.HTTPRoute(route))
		}
	})
	return otelhttp.NewHandler(routed, "HTTP",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(observe.Propagator()),
		// Request metrics are Prometheus' (observe.Metrics): none from here.
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithFilter(func(r *http.Request) bool {
			switch r.URL.Path {
			case PathHealth, PathReady, PathMetrics:
				return false
			}
			return !isUpgrade(r)
		}),
	)
}

// graphqlEndpoint caps the body size and puts the request's credentials in the context (without
// checking them: public fields must work whatever the Authorization header holds), with the
// request and response for the refresh cookie and the request's deadline; gql's transports do the
// rest.
func graphqlEndpoint(svc *auth.Service, gql http.Handler, opts Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Responses carry tokens: never cache them (RFC 6749 §5.1).
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		r.Body = http.MaxBytesReader(w, r.Body, opts.MaxBodyBytes)
		tok, tokErr := BearerToken(r.Header.Get("Authorization"))
		ctx := svc.WithRequest(r.Context(), tok, tokErr, auth.Client{
			UserAgent: r.UserAgent(),
			IP:        clientIP(r, opts.TrustedProxies),
		})
		ctx = withExchange(ctx, w, r)
		if opts.RequestTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, opts.RequestTimeout)
			defer cancel()
		}
		gql.ServeHTTP(w, r.WithContext(ctx))
	})
}

// readyHandler answers GET /readyz: 200 "ready" when ready (nil means always ready) returns nil
// within 2 seconds, else 503 "not ready". The error itself is never sent: it may name hosts.
func readyHandler(ready func(context.Context) error, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			err := ready(ctx)
			cancel()
			if err != nil {
				log.WarnContext(r.Context(), "not ready", "err", err)
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("not ready\n"))
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	}
}

// NewServer returns the HTTP server for h on addr, with timeouts that keep slow or idle clients from
// holding connections: a header must arrive within 5s, a whole request within 15s, and a response
// must be written within 30s.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}
