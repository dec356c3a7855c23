package graph

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"go.opentelemetry.io/otel/trace"

	"gqlauth/auth"
)

// Options configure New.
type Options struct {
	Logger *slog.Logger // nil means slog.Default()
	// Development allows introspection and field suggestions.
	Development bool
	// MaxDepth caps field nesting; 0 means DefaultMaxDepth.
	MaxDepth int
	// MaxComplexity caps the fields of an operation, fragments expanded (one per field, aliases
	// included, introspection counted apart); 0 means DefaultMaxComplexity.
	MaxComplexity int
	// MaxTokens caps the lexical tokens of a GraphQL document; 0 means DefaultMaxTokens.
	MaxTokens int
	// Cookies is the browser's refresh-token cookie in cookie mode (the refresh token travels in an
	// HttpOnly cookie instead of the response body); nil means cookie mode is off.
	Cookies RefreshCookies
	// OnOperation, if set, is called once per GraphQL response with the operation's name
	// ("anonymous" without one) and outcome: "ok" or the first error's extensions.code. It must be fast.
	OnOperation func(name, outcome string)
	// Persisted configures trusted documents and APQ; the zero value is mode off without a manifest
	// or APQ.
	Persisted Persisted
	// TracerProvider, if set, traces each operation and its root fields' resolvers (see tracer in
	// trace.go); nil (tracing off) installs nothing.
	TracerProvider trace.TracerProvider
}

// RefreshCookies is the port through which resolvers reach the refresh-token cookie of the request
// being served. The HTTP layer implements it from the request and response it put in the context;
// every method is a no-op (RefreshToken returns "") where the context holds none.
type RefreshCookies interface {
	// RefreshToken is the refresh token the request's cookie carries, or "" when there is none or
	// the request is not of the kind allowed to use it.
	RefreshToken(ctx context.Context) string
	// SetRefreshToken stores token in the cookie until expires.
	SetRefreshToken(ctx context.Context, token string, expires time.Time)
	// ClearRefreshToken tells the browser to drop the cookie.
	ClearRefreshToken(ctx context.Context)
}

// New returns the gqlgen server of the schema: resolvers over svc, the @auth and @public
// directives, the error presenter and panic recovery, trusted documents and APQ, the operation
// limits with their query cache, (when Options.OnOperation is set) the operation observer, and
// (when Options.TracerProvider is set) the tracer of operations and root resolvers. It has no transports: the HTTP layer
// adds them, so that the errors a transport finds itself also reach the presenter.
func New(svc *auth.Service, opts Options) *handler.Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
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
	cfg := Config{Resolvers: &Resolver{Auth: svc, Cookies: opts.Cookies}}
	cfg.Directives.Auth = authDirective(svc)
	cfg.Directives.Public = publicDirective

	srv := handler.New(NewExecutableSchema(cfg))
	cache := newQueryCache(queryCacheEntries, queryCacheBytes)
	srv.SetQueryCache(cache)
	srv.SetParserTokenLimit(opts.MaxTokens)
	// Field suggestions ("Did you mean …?") spell out the schema, like introspection.
	srv.SetDisableSuggestion(!opts.Development)
	if opts.Development {
		srv.Use(extension.Introspection{})
	}
	// Trusted documents and APQ come first: they may fill in the query that the guard then parses, and
	// in require mode they refuse an untrusted document before anything parses it.
	srv.Use(persistedDocuments{opts.Persisted})
	// The guard runs before gqlgen parses and validates: it alone bounds depth and complexity (gqlgen's
	// own complexity walker would expand every fragment spread, so it is not used).
	srv.Use(operationGuard{cache: cache, limits: Limits{
		MaxTokens: opts.MaxTokens, MaxDepth: opts.MaxDepth, MaxComplexity: opts.MaxComplexity,
		MaxIntrospection: DefaultMaxIntrospection, Introspection: opts.Development,
	}})
	if opts.OnOperation != nil {
		srv.Use(operationObserver{report: opts.OnOperation})
	}
	if opts.TracerProvider != nil {
		srv.Use(newTracer(opts.TracerProvider))
	}
	srv.SetErrorPresenter(presentError(opts.Logger))
	srv.SetRecoverFunc(recoverPanic(opts.Logger))
	return srv
}

// SDL is the schema as compiled into this binary (the text of schema.graphqls): the contract that
// schema-first clients generate code from.
func SDL() string {
	var b strings.Builder
	for _, src := range sources {
		b.WriteString(src.Input)
	}
	return b.String()
}
