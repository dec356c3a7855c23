package graph

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/99designs/gqlgen/graphql/playground"

	"gqlauth/auth"
	"gqlauth/graph/model"
	"gqlauth/token"
)

// Paths served by NewHandler.
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

// Options configure NewHandler.
type Options struct {
	Logger *slog.Logger // nil means slog.Default()
	// Development serves the GraphQL IDE at / and allows introspection.
	Development bool
	// MaxBodyBytes caps request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxDepth caps field nesting; 0 means DefaultMaxDepth.
	MaxDepth int
	// MaxComplexity caps the fields of an operation, fragments expanded (one per field, aliases
	// included, introspection counted apart); 0 means DefaultMaxComplexity.
	MaxComplexity int
	// MaxTokens caps the lexical tokens of a GraphQL document; 0 means DefaultMaxTokens.
	MaxTokens int
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
	// OnOperation, if set, is called once per GraphQL request with the operation's name ("anonymous"
	// without one) and outcome: "ok" or the first error's extensions.code. It must be fast.
	OnOperation func(name, outcome string)
	// Ready reports whether the service can serve (the database answers); GET /readyz calls it with
	// a 2-second timeout. nil means always ready.
	Ready func(ctx context.Context) error
	// Metrics, if set, is served at GET /metrics.
	Metrics http.Handler
}

// NewHandler returns the service's whole HTTP surface: POST and GET /graphql, the IDE at / and the
// SDL (in development), /healthz (liveness), /readyz (readiness), /metrics (when Options.Metrics is
// set) and the JWKS. main and every GraphQL test use it, so tests exercise the
// real middleware, directive and error presenter. It fails only on an invalid CORS origin.
func NewHandler(svc *auth.Service, opts Options) (http.Handler, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	if opts.MaxComplexity <= 0 {
		opts.MaxComplexity = DefaultMaxComplexity
	}
	if opts.MaxTokens <= 0 {
		opts.MaxTokens = DefaultMaxTokens
	}
	cfg := Config{Resolvers: &Resolver{Auth: svc, Cookies: opts.Cookie}}
	cfg.Directives.Auth = authDirective
	cfg.Directives.Public = publicDirective

	srv := handler.New(NewExecutableSchema(cfg))
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	cache := newQueryCache(queryCacheEntries, queryCacheBytes)
	srv.SetQueryCache(cache)
	srv.SetParserTokenLimit(opts.MaxTokens)
	// Field suggestions ("Did you mean …?") spell out the schema, like introspection.
	srv.SetDisableSuggestion(!opts.Development)
	if opts.Development {
		srv.Use(extension.Introspection{})
	}
	// The guard runs before gqlgen parses and validates: it alone bounds depth and complexity (gqlgen's
	// own complexity walker would expand every fragment spread, so it is not used).
	srv.Use(operationGuard{cache: cache, limits: Limits{
		MaxTokens: opts.MaxTokens, MaxDepth: opts.MaxDepth, MaxComplexity: opts.MaxComplexity,
		MaxIntrospection: DefaultMaxIntrospection, Introspection: opts.Development,
	}})
	if opts.OnOperation != nil {
		srv.Use(operationObserver{})
	}
	srv.SetErrorPresenter(presentError(opts.Logger))
	srv.SetRecoverFunc(recoverPanic(opts.Logger))

	mux := http.NewServeMux()
	cors := newCORS(opts.CORSOrigins)
	endpoint, err := csrf(opts.CORSOrigins, cors.wrap(graphqlEndpoint(svc, srv, opts)))
	if err != nil {
		return nil, err
	}
	mux.Handle("GET "+PathGraphQL, endpoint)
	mux.Handle("POST "+PathGraphQL, endpoint)
	mux.HandleFunc("OPTIONS "+PathGraphQL, cors.preflight)
	mux.HandleFunc("GET "+PathHealth, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET "+PathReady, readyHandler(opts.Ready, opts.Logger))
	if opts.Metrics != nil {
		mux.Handle("GET "+PathMetrics, opts.Metrics)
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
		mux.Handle("GET /{$}", playground.Handler("gqlauth", PathGraphQL))
		mux.HandleFunc("GET "+PathSchema, func(w http.ResponseWriter, _ *http.Request) {
			// The schema file itself, as compiled into this binary: the contract for code generators.
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			for _, src := range sources {
				_, _ = w.Write([]byte(src.Input))
			}
		})
	}
	return mux, nil
}

// graphqlEndpoint puts the request's credentials in the context (without checking them: public
// fields must work whatever the Authorization header holds), caps the body size and refuses JSON
// array batches.
func graphqlEndpoint(svc *auth.Service, srv *handler.Server, opts Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Responses carry tokens: never cache them (RFC 6749 §5.1).
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.ContentLength > opts.MaxBodyBytes {
			writeError(w, http.StatusRequestEntityTooLarge, model.ErrorCodePayloadTooLarge, tooLargeMessage(opts.MaxBodyBytes))
			reportOperation(opts.OnOperation, &opRecord{}, string(model.ErrorCodePayloadTooLarge))
			return
		}
		body := &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, opts.MaxBodyBytes)}
		r.Body = body
		if r.Method == http.MethodPost && startsWithArray(body) {
			// A batch could carry many login attempts past per-request limits; gqlgen would refuse it
			// too, but with a message that echoes the body back.
			writeError(w, http.StatusBadRequest, model.ErrorCodeBadRequest,
				"batched requests (a JSON array) are not supported: send one operation per request")
			reportOperation(opts.OnOperation, &opRecord{}, string(model.ErrorCodeBadRequest))
			return
		}
		ctx := svc.WithRequest(r.Context(), r.Header.Get("Authorization"), auth.Client{
			UserAgent: r.UserAgent(),
			IP:        clientIP(r, opts.TrustedProxies),
		})
		ctx = withExchange(ctx, w, r)
		if opts.RequestTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, opts.RequestTimeout)
			defer cancel()
		}
		rec := &opRecord{}
		ctx = context.WithValue(ctx, opRecordKey{}, rec)
		cw := &codedErrorWriter{ResponseWriter: w, body: body, maxBody: opts.MaxBodyBytes}
		srv.ServeHTTP(cw, r.WithContext(ctx))
		reportOperation(opts.OnOperation, rec, cw.finish())
	})
}
