package store

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
	"gorm.io/plugin/opentelemetry/tracing"
)

// Trace makes every statement of db a span of tp (GORM's OpenTelemetry plugin), child of the span
// in the statement's context: the operation and table in its name, the SQL with its placeholders
// in db.query.text. The query's values are never recorded (they include password and token hashes,
// e-mail addresses and sealed TOTP secrets), nor are the plugin's pool metrics (Prometheus already
// has them). Calling it again on the same DB does nothing. Without a call (tracing off) no callback
// is registered and statements cost what they did.
func (db *DB) Trace(tp trace.TracerProvider) error {
	err := db.gorm.Use(tracing.NewPlugin(
		tracing.WithTracerProvider(tp),
		tracing.WithoutQueryVariables(),
		tracing.WithoutMetrics(),
	))
	if err != nil && !errors.Is(err, gorm.ErrRegistered) {
		return fmt.Errorf("store: tracing: %w", err)
	}
	return nil
}

// Traced reports whether Trace has instrumented db.
func (db *DB) Traced() bool {
	_, ok := db.gorm.Plugins["otelgorm"]
	return ok
}
