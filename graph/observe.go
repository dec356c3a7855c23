package graph

import (
	"context"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// operationObserver is a gqlgen extension that reports each GraphQL response's operation name and
// outcome ("ok", or the first error's extensions.code) to Options.OnOperation. As a response
// interceptor it sees every response of the executor, and gqlgen's DispatchError runs the response
// interceptors too: so it also sees the errors of parsing, validation and the operation limits, and
// those that the HTTP layer's transports find themselves (an unreadable or oversized body, a batch, a
// mutation over GET), which they send through DispatchError. One HTTP request gets one response, so
// it is reported once.
type operationObserver struct {
	report func(name, outcome string)
}

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
} = operationObserver{}

func (operationObserver) ExtensionName() string { return "OperationObserver" }

func (operationObserver) Validate(graphql.ExecutableSchema) error { return nil }

func (o operationObserver) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp != nil {
		o.report(operationName(ctx), outcomeOf(resp))
	}
	return resp
}

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
