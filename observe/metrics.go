package observe

import (
	"context"
	"database/sql"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gqlauth/auth"
)

// Label values that stand for many.
const (
	RouteUnmatched     = "unmatched" // a request no ServeMux pattern matched (the path is not a label)
	OperationAnonymous = "anonymous" // a GraphQL operation without a name
	OperationOther     = "other"     // an invalid operation name, or one past MaxOperationNames
)

// MaxOperationNames bounds the distinct GraphQL operation names used as label values. Clients choose
// operation names; past this many, further new names are counted as "other".
const MaxOperationNames = 100

// Metrics holds the service's Prometheus collectors, all on one dedicated registry (not the global
// one). Its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	httpDuration *prometheus.HistogramVec
	operations   *prometheus.CounterVec
	authEvents   *prometheus.CounterVec
	revoked      prometheus.Counter
	reuse        prometheus.Counter
	degraded     *prometheus.GaugeVec
	fallbacks    *prometheus.CounterVec

	mu    sync.Mutex
	names map[string]bool // operation names admitted as label values
}

// NewMetrics creates the collectors and registers them, with the Go runtime and process collectors,
// on reg:
//
//   - gqlauth_http_request_duration_seconds{route, method, status}: histogram of request latency;
//     route is the ServeMux pattern ("POST /graphql"), or "unmatched".
//   - gqlauth_graphql_operations_total{operation, outcome}: GraphQL operations by name ("anonymous"
//     without one) and outcome: "ok", or the first error's extensions.code.
//   - gqlauth_auth_events_total{event, outcome}: authentication events (auth.Event: event is its
//     kind, outcome "ok", "failed" or "rate_limited").
//   - gqlauth_sessions_revoked_total: sessions revoked, by any event.
//   - gqlauth_refresh_token_reuse_total: refresh tokens presented after their reuse grace (each
//     revokes its session).
//   - gqlauth_dependency_degraded{dependency, component}: 1 while a component runs on its fallback
//     because the dependency fails (redis: ratelimit counts in memory, revocation_fanout relies on
//     database polling); series appear when Dependency is called.
//   - gqlauth_dependency_fallbacks_total{dependency, component}: switches to the fallback.
func NewMetrics(reg *prometheus.Registry) *Metrics {
	m := &Metrics{
		reg: reg,
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gqlauth_http_request_duration_seconds",
			Help:    "HTTP request latency, by route (the ServeMux pattern, or \"unmatched\"), method and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gqlauth_graphql_operations_total",
			Help: "GraphQL operations, by operation name (\"anonymous\" without one) and outcome (\"ok\" or the first error's extensions.code).",
		}, []string{"operation", "outcome"}),
		authEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gqlauth_auth_events_total",
			Help: "Authentication events, by event (register, login, refresh, …) and outcome (ok, failed, rate_limited).",
		}, []string{"event", "outcome"}),
		revoked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gqlauth_sessions_revoked_total",
			Help: "Sessions revoked (logout, logoutAll, revokeSession, changePassword, refresh-token reuse).",
		}),
		reuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gqlauth_refresh_token_reuse_total",
			Help: "Rotated refresh tokens presented again after the reuse grace (the session is revoked).",
		}),
		degraded: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gqlauth_dependency_degraded",
			Help: "1 while a component runs on its fallback because a dependency fails (redis: ratelimit counts in memory, revocation_fanout relies on database polling).",
		}, []string{"dependency", "component"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gqlauth_dependency_fallbacks_total",
			Help: "Times a component switched to its fallback because a dependency failed.",
		}, []string{"dependency", "component"}),
		names: map[string]bool{},
	}
	reg.MustRegister(m.httpDuration, m.operations, m.authEvents, m.revoked, m.reuse, m.degraded, m.fallbacks,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// RegisterDB adds the connection-pool statistics of db (go_sql_* metrics, labelled db_name=name).
// Registering the same name twice is a no-op.
func (m *Metrics) RegisterDB(db *sql.DB, name string) {
	_ = m.reg.Register(collectors.NewDBStatsCollector(db, name)) // only fails for a duplicate
}

// Dependency returns the state callback of one component that degrades when dependency fails (the
// OnChange of ratelimit.Fallback and fanout.Redis); it creates the component's series at 0.
func (m *Metrics) Dependency(dependency, component string) func(degraded bool) {
	g := m.degraded.WithLabelValues(dependency, component)
	g.Set(0)
	c := m.fallbacks.WithLabelValues(dependency, component)
	c.Add(0)
	return func(degraded bool) {
		if degraded {
			g.Set(1)
			c.Inc()
		} else {
			g.Set(0)
		}
	}
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// HTTP records the latency of every request by route, method and status. The route is read from
// r.Pattern after next has run, so next must reach the ServeMux with this same *http.Request.
func (m *Metrics) HTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := wrapWriter(w)
		next.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = RouteUnmatched
		}
		m.httpDuration.WithLabelValues(route, methodLabel(r.Method), strconv.Itoa(rec.status())).
			Observe(time.Since(start).Seconds())
	})
}

// methodLabel bounds the method label: clients can send any token as a method.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "OTHER"
}

// AuthEvent counts an authentication event. Its signature is auth.Options.OnEvent's.
func (m *Metrics) AuthEvent(_ context.Context, e auth.Event) {
	m.authEvents.WithLabelValues(string(e.Kind), e.Outcome).Inc()
	if e.Revoked > 0 {
		m.revoked.Add(float64(e.Revoked))
	}
	if e.Kind == auth.EventReuseDetected {
		m.reuse.Inc()
	}
}

// GraphQLOperation counts a GraphQL operation: name is the operation name ("" for anonymous),
// outcome "ok" or an error code. Names that are not GraphQL names, longer than 64 bytes, or new past
// MaxOperationNames distinct names are counted as "other".
func (m *Metrics) GraphQLOperation(name, outcome string) {
	m.operations.WithLabelValues(m.operationLabel(name), outcome).Inc()
}

func (m *Metrics) operationLabel(name string) string {
	if name == "" || name == OperationAnonymous {
		return OperationAnonymous
	}
	if !graphQLName(name) {
		return OperationOther
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.names[name] {
		if len(m.names) >= MaxOperationNames {
			return OperationOther
		}
		m.names[name] = true
	}
	return name
}

// graphQLName reports whether s is a GraphQL name (/[_A-Za-z][_0-9A-Za-z]*/) of at most 64 bytes.
func graphQLName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
