package graph

import (
	"context"
	"log/slog"

	"github.com/99designs/gqlgen/graphql"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Span attributes of the GraphQL spans (OpenTelemetry's semantic conventions for GraphQL, and ours).
const (
	attrOperationName = attribute.Key("graphql.operation.name")
	attrOperationType = attribute.Key("graphql.operation.type")
	attrFieldName     = attribute.Key("graphql.field.name")
	attrFieldParent   = attribute.Key("graphql.field.parent_type")
	attrErrorCode     = attribute.Key("gqlauth.graphql.error_code")
)

// tracer is a gqlgen extension (installed only when tracing is on) that makes each GraphQL response
// a span, named by the operation's type and name ("mutation login"), and each root field's
// resolution (its @auth check and the service call, which the password and database spans nest
// under) a child span named "Mutation.login". Deeper fields get no span: they only read the root
// resolver's result.
//
// The spans carry the operation's type and name, the field, and the extensions.code of an error;
// never the document (literal arguments may be passwords), the variables or a resolver's result.
type tracer struct {
	t trace.Tracer
}

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
	graphql.FieldInterceptor
} = tracer{}

func newTracer(tp trace.TracerProvider) tracer { return tracer{t: tp.Tracer("gqlauth/graph")} }

func (tracer) ExtensionName() string { return "Tracer" }

func (tracer) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptResponse wraps the execution of the operation (once per response: a subscription's
// events get one span each). Errors of parsing and validation, which gqlgen dispatches through the
// same interceptors, get a span named "GraphQL Operation".
func (t tracer) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	name, attrs := "GraphQL Operation", []attribute.KeyValue(nil)
	if graphql.HasOperationContext(ctx) {
		if op := graphql.GetOperationContext(ctx); op.Operation != nil {
			typ := string(op.Operation.Operation)
			attrs = append(attrs, attrOperationType.String(typ))
			name = typ
			if n := operationName(ctx); n != "anonymous" {
				attrs = append(attrs, attrOperationName.String(n))
				name += " " + n
			}
		}
	}
	ctx, span := t.t.Start(ctx, name, trace.WithAttributes(attrs...))
	defer span.End()
	resp := next(ctx)
	if resp != nil && len(resp.Errors) > 0 {
		code := outcomeOf(resp)
		span.SetAttributes(attrErrorCode.String(code))
		span.SetStatus(codes.Error, code)
	}
	return resp
}

// InterceptField wraps the root fields' resolvers in a span; other fields pass straight through.
func (t tracer) InterceptField(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || !fc.IsResolver || !isRoot(fc.Object) {
		return next(ctx)
	}
	ctx, span := t.t.Start(ctx, fc.Object+"."+fc.Field.Name, trace.WithAttributes(
		attrFieldParent.String(fc.Object), attrFieldName.String(fc.Field.Name),
	))
	defer span.End()
	res, err := next(ctx)
	if err != nil {
		code := errorCode(ctx, err)
		span.SetAttributes(attrErrorCode.String(code))
		span.SetStatus(codes.Error, code)
	}
	return res, err
}

func isRoot(object string) bool {
	return object == "Query" || object == "Mutation" || object == "Subscription"
}

// quietPresenter is the error presenter without its log lines (the real one logs the error once).
var quietPresenter = presentError(slog.New(slog.DiscardHandler))

// errorCode is the extensions.code the error presenter gives err: the public code, never the
// error's text.
func errorCode(ctx context.Context, err error) string {
	if c, ok := quietPresenter(ctx, err).Extensions["code"].(string); ok {
		return c
	}
	return "UNKNOWN"
}
