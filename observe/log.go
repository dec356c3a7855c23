package observe

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// NewLogger returns a logger writing to w in format "json" or "text" (anything else is text) at
// level and above. Every record logged with a context (InfoContext, LogAttrs…) that carries a
// request id gets a request_id attribute, and one that carries a span (tracing on) trace_id and span_id.
func NewLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if strings.EqualFold(format, "json") {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(RequestIDHandler(h))
}

// RequestIDHandler wraps h so that records logged with a context carrying a request id get a
// request_id attribute, and records logged with a context carrying a valid span context (only when
// tracing is on: nothing else puts one there) get trace_id and span_id, so that a request's log
// lines lead to its trace. Wrapping a handler that already does this returns it unchanged.
func RequestIDHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(requestIDHandler); ok {
		return h
	}
	return requestIDHandler{h}
}

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, rec slog.Record) error {
	id := RequestIDFrom(ctx)
	sc := trace.SpanContextFromContext(ctx)
	if id != "" || sc.IsValid() {
		rec = rec.Clone()
	}
	if id != "" {
		rec.AddAttrs(slog.String("request_id", id))
	}
	if sc.IsValid() {
		rec.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, rec)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// AccessLog logs one line ("http request", level Info) per request after it is served: method,
// route (the ServeMux pattern that matched, or the path when none did), status, duration_ms, bytes
// (of the response body), ip (the socket peer), user_agent, and request_id (from the context, see
// RequestID). It never logs the query string, a header other than User-Agent, or a body: they carry
// tokens and passwords.
//
// The route is read from r.Pattern after next has run, so next must be (or reach) the ServeMux with
// this same *http.Request (middleware between them must not replace the request).
func AccessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := wrapWriter(w)
		next.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = r.URL.Path
		}
		log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
			slog.String("method", r.Method),
			slog.String("route", route),
			slog.Int("status", rec.status()),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.Int64("bytes", rec.bytes),
			slog.String("ip", peerIP(r.RemoteAddr)),
			slog.String("user_agent", r.UserAgent()),
		)
	})
}

func peerIP(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}

// statusWriter records the status and the body size of a response.
type statusWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func wrapWriter(w http.ResponseWriter) *statusWriter { return &statusWriter{ResponseWriter: w} }

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 { // 1xx are informational: the real status follows
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush keeps streaming responses working through the wrapper.
func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// status is the status sent, 200 when the handler wrote nothing.
func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
