package graph

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/99designs/gqlgen/graphql/playground"
	"github.com/vektah/gqlparser/v2/ast"

	"gqlauth/auth"
	"gqlauth/graph/model"
)

// Paths served by NewHandler.
const (
	PathGraphQL = "/graphql"
	PathHealth  = "/healthz"
	PathJWKS    = "/.well-known/jwks.json"
)

// DefaultMaxBodyBytes caps a GraphQL request body.
const DefaultMaxBodyBytes = 1 << 20

// Options configure NewHandler.
type Options struct {
	Logger *slog.Logger // nil means slog.Default()
	// Development serves the GraphQL IDE at / and allows introspection.
	Development bool
	// MaxBodyBytes caps request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// NewHandler returns the service's whole HTTP surface: POST and GET /graphql, the IDE at / (in
// development), /healthz and the JWKS. main and every GraphQL test use it, so tests exercise the real
// middleware, directive and error presenter.
func NewHandler(svc *auth.Service, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	cfg := Config{Resolvers: &Resolver{Auth: svc}}
	cfg.Directives.Auth = authDirective
	cfg.Directives.Public = publicDirective

	srv := handler.New(NewExecutableSchema(cfg))
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	if opts.Development {
		srv.Use(extension.Introspection{})
	}
	srv.SetErrorPresenter(presentError(opts.Logger))
	srv.SetRecoverFunc(recoverPanic(opts.Logger))

	mux := http.NewServeMux()
	mux.Handle("GET "+PathGraphQL, graphqlEndpoint(svc, srv, opts.MaxBodyBytes))
	mux.Handle("POST "+PathGraphQL, graphqlEndpoint(svc, srv, opts.MaxBodyBytes))
	mux.HandleFunc("GET "+PathHealth, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	jwks := svc.JWKS()
	mux.HandleFunc("GET "+PathJWKS, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(jwks)
	})
	if opts.Development {
		mux.Handle("GET /{$}", playground.Handler("gqlauth", PathGraphQL))
	}
	return mux
}

// graphqlEndpoint puts the request's credentials in the context (without checking them: public
// fields must work whatever the Authorization header holds) and caps the body size.
func graphqlEndpoint(svc *auth.Service, srv *handler.Server, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		// Responses carry tokens: never cache them (RFC 6749 §5.1).
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		ctx := svc.WithRequest(r.Context(), r.Header.Get("Authorization"), auth.Client{
			UserAgent: r.UserAgent(),
			IP:        clientIP(r),
		})
		cw := &codedErrorWriter{ResponseWriter: w}
		srv.ServeHTTP(cw, r.WithContext(ctx))
		cw.finish()
	})
}

// codedErrorWriter gives a code to the few errors that gqlgen's transports write themselves, before
// any resolver or presenter runs (a mutation over GET, undecodable variables, an unsupported
// Content-Type), so that every error a client sees carries extensions.code. Such responses always have
// an error status, so successful responses pass straight through, unbuffered.
type codedErrorWriter struct {
	http.ResponseWriter
	status int
	buf    *bytes.Buffer
}

func (w *codedErrorWriter) WriteHeader(status int) {
	if status >= 400 && w.buf == nil {
		w.status, w.buf = status, new(bytes.Buffer)
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *codedErrorWriter) Write(b []byte) (int, error) {
	if w.buf != nil {
		return w.buf.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *codedErrorWriter) finish() {
	if w.buf == nil {
		return
	}
	body := w.buf.Bytes()
	var resp struct {
		Errors []map[string]any `json:"errors"`
		Data   json.RawMessage  `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err == nil && len(resp.Errors) > 0 {
		changed := false
		for _, e := range resp.Errors {
			ext, _ := e["extensions"].(map[string]any)
			if ext == nil {
				ext = map[string]any{}
				e["extensions"] = ext
			}
			if ext["code"] == nil {
				ext["code"] = string(model.ErrorCodeBadRequest)
				changed = true
			}
		}
		if changed {
			if b, err := json.Marshal(resp); err == nil {
				body = b
				w.Header().Del("Content-Length")
			}
		}
	}
	w.ResponseWriter.WriteHeader(w.status)
	_, _ = w.ResponseWriter.Write(body)
}

// clientIP is the socket's peer address. Forwarded headers are not trusted: anyone can send them.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return strings.TrimSpace(r.RemoteAddr)
	}
	return host
}
