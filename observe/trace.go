package observe

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// TracingOptions configure NewTracing.
type TracingOptions struct {
	ServiceName string // the resource's service.name
	// Protocol is the OTLP transport: "grpc", or anything else for HTTP (http/protobuf).
	Protocol string
	Logger   *slog.Logger // where export failures go; nil means slog.Default()
}

// Tracing is the service's OpenTelemetry tracer provider and its OTLP exporter. NewTracing builds the
// provider and starts nothing; Start attaches the exporter (a batching span processor, which runs a
// goroutine); Shutdown flushes the spans still queued and stops it. The provider is never installed
// as the process-wide (otel.SetTracerProvider) one: it is handed to each instrumented part.
type Tracing struct {
	Provider *sdktrace.TracerProvider
	protocol string
	log      *slog.Logger
}

// NewTracing returns a tracer provider whose resource names the service (service.name, and
// service.version from the binary's build information), plus what OTEL_RESOURCE_ATTRIBUTES adds.
// The SDK reads its own standard variables here and in Start (OTEL_TRACES_SAMPLER and its argument,
// OTEL_SPAN_*_LIMIT, OTEL_BSP_*): config, which reads every other variable, only decides whether
// tracing is on. It fails only on a malformed OTEL_RESOURCE_ATTRIBUTES.
func NewTracing(opts TracingOptions) (*Tracing, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	res, err := resource.New(context.Background(),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName(opts.ServiceName), semconv.ServiceVersion(Version())),
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES (and OTEL_SERVICE_NAME, the same value config read)
	)
	if err != nil {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	return &Tracing{
		Provider: sdktrace.NewTracerProvider(sdktrace.WithResource(res)),
		protocol: opts.Protocol,
		log:      opts.Logger,
	}, nil
}

// Start creates the OTLP exporter and attaches it to the provider behind a batching span processor:
// spans ended before Start are dropped. The exporter reads its own standard variables
// (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE, _INSECURE):
// config only validated the endpoint. Neither exporter connects here, so a collector that is down
// costs failed exports (logged), never the start.
func (t *Tracing) Start(ctx context.Context) error {
	var (
		exp sdktrace.SpanExporter
		err error
	)
	if t.protocol == "grpc" {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return fmt.Errorf("OTLP trace exporter: %w", err)
	}
	// Export failures reach OpenTelemetry's error handler, which is process-wide: send them to our log
	// instead of the standard library's logger. Its messages name the endpoint, never a header value.
	log := t.log
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing: OpenTelemetry error", "err", err) }))
	t.Provider.RegisterSpanProcessor(sdktrace.NewBatchSpanProcessor(exp))
	return nil
}

// Shutdown exports the spans still queued and stops the exporter, within ctx's deadline.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.Provider.Shutdown(ctx) }

// Propagator is the propagation the service honours and sends on: W3C Trace Context (traceparent,
// tracestate) and W3C Baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Version is the binary's version from its build information: the module version when built from a
// tagged module, else the VCS revision (12 characters, "+dirty" when modified), else "devel".
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return "devel"
	}
	return rev + dirty
}
