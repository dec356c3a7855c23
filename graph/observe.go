package graph

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// operationObserver is a gqlgen extension that reports, once per GraphQL request, the operation's
// name and outcome ("ok", or the first error's extensions.code) to Options.OnOperation. As a
// response interceptor it also sees the errors of parsing, validation and the operation limits
// (gqlgen's DispatchError runs the response interceptors). graphqlEndpoint reports the requests
// refused before gqlgen runs or answered by a transport directly (see opRecord).
type operationObserver struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
} = operationObserver{}

func (operationObserver) ExtensionName() string { return "OperationObserver" }

func (operationObserver) Validate(graphql.ExecutableSchema) error { return nil }

func (operationObserver) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if rec, ok := ctx.Value(opRecordKey{}).(*opRecord); ok && resp != nil && !rec.set {
		rec.set, rec.name, rec.outcome = true, operationName(ctx), outcomeOf(resp)
	}
	return resp
}

// opRecord is where the interceptor leaves the operation's name and outcome for graphqlEndpoint,
// which reports exactly one per request (and may override the outcome, for an over-long body).
type opRecord struct {
	set           bool
	name, outcome string
}

type opRecordKey struct{}

// operationName is the operation's name: the request's operationName, else the name in the
// document, else "anonymous".
func operationName(ctx context.Context) string {
	if !graphql.HasOperationContext(ctx) {
		return "anonymous"
	}
	op := graphql.GetOperationContext(ctx)
	switch {
	case op.OperationName != "":
		return op.OperationName
	case op.Operation != nil && op.Operation.Name != "":
		return op.Operation.Name
	}
	return "anonymous"
}

// outcomeOf is "ok", or the first error's extensions.code (set by the error presenter).
func outcomeOf(resp *graphql.Response) string {
	if len(resp.Errors) == 0 {
		return "ok"
	}
	if code, ok := resp.Errors[0].Extensions["code"].(string); ok && code != "" {
		return code
	}
	return "UNKNOWN"
}

// reportOperation tells onOperation (if set) about one GraphQL request. code is the first error
// code of a response written outside gqlgen's executor (see codedErrorWriter.finish), "" if none:
// it is what the client saw, so it wins over the interceptor's outcome.
func reportOperation(onOperation func(name, outcome string), rec *opRecord, code string) {
	if onOperation == nil {
		return
	}
	switch {
	case code != "":
		name := "anonymous"
		if rec.set {
			name = rec.name
		}
		onOperation(name, code)
	case rec.set:
		onOperation(rec.name, rec.outcome)
	}
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

// OperationNames are the names that Apollo-style clients give an operation of one root field: the
// field's name with its first letter upper-cased (Login, RefreshToken, Me, …), for every Query and
// Mutation field of the schema. The metrics count operations under these names (and those an operator
// adds); see observe.Metrics.KnowOperations.
func OperationNames() []string {
	schema := NewExecutableSchema(Config{}).Schema()
	var names []string
	for _, root := range []*ast.Definition{schema.Query, schema.Mutation, schema.Subscription} {
		if root == nil {
			continue
		}
		for _, f := range root.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			names = append(names, strings.ToUpper(f.Name[:1])+f.Name[1:])
		}
	}
	return names
}
