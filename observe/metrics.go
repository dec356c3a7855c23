package observe

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
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
	OperationOther     = "other"     // an operation name the server was not told about
)

// Metrics holds the service's Prometheus collectors, all on one dedicated registry (not the global
// one). Its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	httpDuration *prometheus.HistogramVec
	inFlight     prometheus.Gauge
	overruns     *prometheus.CounterVec
	operations   *prometheus.CounterVec
	authEvents   *prometheus.CounterVec
	revoked      prometheus.Counter
	reuse        prometheus.Counter
	degraded     *prometheus.GaugeVec
	fallbacks    *prometheus.CounterVec
	mail         *prometheus.CounterVec
	wsOpen       prometheus.Gauge
	wsCloses     *prometheus.CounterVec
	wsRevocation prometheus.Histogram

	names atomic.Pointer[map[string]bool] // operation names used as label values (KnowOperations)
}

// NewMetrics creates the collectors and registers them, with the Go runtime and process collectors,
// on reg:
//
//   - gqlauth_http_request_duration_seconds{route, method, status}: histogram of request latency;
//     route is the ServeMux pattern ("POST /graphql"), or "unmatched".
//   - gqlauth_http_requests_in_flight: requests being served now.
//   - gqlauth_http_request_overruns_total{kind}: requests still running after the slow threshold
//     (kind "slow") or a while after their client went away ("abandoned"); see Watch.
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
//   - gqlauth_mail_total{kind, outcome}: outbox mails by kind (auth.Kind*) and outcome: "queued"
//     (counted by whoever queues it), "sent", "retry" (an attempt failed; one more will be made),
//     "failed" (given up) or "dropped" (a reset requested for an unknown address: nothing to send).
//     There is no gauge of pending mail: it would take a count query per scrape; the rate of
//     "queued" minus the others tells the same story.
//   - gqlauth_ws_connections: graphql-ws sockets open now (upgraded, initialised or not).
//   - gqlauth_ws_closes_total{reason}: sockets closed, by why: an AuthErrorReason (TOKEN_MISSING,
//     TOKEN_INVALID, TOKEN_EXPIRED, SESSION_REVOKED), "client" (the client closed or went away),
//     "limit" (too many connections for the account, a message over the size limit), "init_timeout",
//     "protocol" (a message the protocol does not allow), "unavailable" (the token could not be
//     checked) or "shutdown".
//   - gqlauth_ws_revocation_close_seconds: from the moment this instance learns that a socket's session
//     is revoked (a local revocation, a Redis broadcast or the database poll) to the socket's close.
func NewMetrics(reg *prometheus.Registry) *Metrics {
	m := &Metrics{
		reg: reg,
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gqlauth_http_request_duration_seconds",
			Help:    "HTTP request latency, by route (the ServeMux pattern, or \"unmatched\"), method and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gqlauth_http_requests_in_flight",
			Help: "HTTP requests being served now.",
		}),
		overruns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gqlauth_http_request_overruns_total",
			Help: "Requests still running after the slow threshold (kind=\"slow\") or a while after their client went away (kind=\"abandoned\").",
		}, []string{"kind"}),
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
		mail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gqlauth_mail_total",
			Help: "Outbox mails, by kind and outcome (queued, sent, retry, failed, dropped).",
		}, []string{"kind", "outcome"}),
		wsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gqlauth_ws_connections",
			Help: "graphql-ws sockets open now.",
		}),
		wsCloses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gqlauth_ws_closes_total",
			Help: "graphql-ws sockets closed, by reason (an AuthErrorReason, client, limit, init_timeout, protocol, unavailable, shutdown).",
		}, []string{"reason"}),
		wsRevocation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gqlauth_ws_revocation_close_seconds",
			Help:    "From the moment this instance learns a socket's session is revoked to the socket's close.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	m.overruns.WithLabelValues(OverrunSlow)
	m.overruns.WithLabelValues(OverrunAbandoned)
	reg.MustRegister(m.httpDuration, m.inFlight, m.overruns, m.operations, m.authEvents, m.revoked, m.reuse, m.degraded, m.fallbacks, m.mail,
		m.wsOpen, m.wsCloses, m.wsRevocation,
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
		m.inFlight.Inc()
		defer m.inFlight.Dec()
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

// LimiterOverflows exports overflows (ratelimit.Memory.Overflows) as
// gqlauth_ratelimit_overflows_total: attempts refused because the in-memory limiter was full of
// other keys (a flood of distinct addresses or accounts).
func (m *Metrics) LimiterOverflows(overflows func() int64) {
	_ = m.reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "gqlauth_ratelimit_overflows_total",
		Help: "Attempts refused because the in-memory rate limiter already held its maximum of keys.",
	}, func() float64 { return float64(overflows()) }))
}

// MailQueued publishes gqlauth_mail_queued: the mail waiting in the outbox (pending, whatever its
// next attempt), read from pending at each scrape. A value that only grows means SMTP is failing.
func (m *Metrics) MailQueued(pending func() (int64, error)) {
	_ = m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gqlauth_mail_queued",
		Help: "Mail waiting in the outbox to be sent (-1 when the database could not be asked).",
	}, func() float64 {
		n, err := pending()
		if err != nil {
			return -1
		}
		return float64(n)
	}))
}

// mailKinds and mailOutcomes bound the labels of gqlauth_mail_total; anything else counts as "other".
var (
	mailKinds = map[string]bool{auth.KindResetRequest: true, auth.KindPasswordReset: true, auth.KindVerifyEmail: true,
		auth.KindChangeEmail: true, auth.KindPasswordChanged: true, auth.KindEmailChanged: true}
	mailOutcomes = map[string]bool{"queued": true, "sent": true, "retry": true, "failed": true, "dropped": true}
)

// MailResult counts one outcome of an outbox mail: kind is an auth.Kind* constant, outcome one of
// queued, sent, retry, failed, dropped (other values count as "other"). Its signature is
// mail.SenderOptions.OnResult's.
func (m *Metrics) MailResult(kind, outcome string) {
	if !mailKinds[kind] {
		kind = "other"
	}
	if !mailOutcomes[outcome] {
		outcome = "other"
	}
	m.mail.WithLabelValues(kind, outcome).Inc()
}

// WSOpened counts a graphql-ws socket as open; WSClosed must follow when it closes.
func (m *Metrics) WSOpened() { m.wsOpen.Inc() }

// WSClosed counts a socket's close by reason (see NewMetrics) and removes it from the open ones.
func (m *Metrics) WSClosed(reason string) {
	m.wsOpen.Dec()
	m.wsCloses.WithLabelValues(reason).Inc()
}

// WSRevocationClosed records how long a socket stayed open after its session's revocation was known.
func (m *Metrics) WSRevocationClosed(d time.Duration) { m.wsRevocation.Observe(d.Seconds()) }

// Overrun counts a request reported by Watch; kind is OverrunSlow or OverrunAbandoned.
func (m *Metrics) Overrun(kind string) { m.overruns.WithLabelValues(kind).Inc() }

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

// KnowOperations sets the operation names that GraphQLOperation uses as label values; every other
// name is counted as "other". Clients choose operation names, so admitting whatever arrives first
// would let anyone take the label slots (or, unbounded, the memory); the server names the operations
// it wants to see instead. Names that are not GraphQL names of at most 64 bytes are ignored.
func (m *Metrics) KnowOperations(names ...string) {
	known := make(map[string]bool, len(names))
	for _, n := range names {
		if graphQLName(n) {
			known[n] = true
		}
	}
	m.names.Store(&known)
}

// GraphQLOperation counts a GraphQL operation: name is the operation name ("" for anonymous),
// outcome "ok" or an error code. A name not given to KnowOperations is counted as "other".
func (m *Metrics) GraphQLOperation(name, outcome string) {
	m.operations.WithLabelValues(m.operationLabel(name), outcome).Inc()
}

func (m *Metrics) operationLabel(name string) string {
	if name == "" || name == OperationAnonymous {
		return OperationAnonymous
	}
	if known := m.names.Load(); known != nil && (*known)[name] {
		return name
	}
	return OperationOther
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

// UntrustedOperations registers gqlauth_graphql_untrusted_operations_total (operations run in
// TRUSTED_DOCUMENTS=allow although their document is not in the manifest) and returns the function
// that counts one (graph.Persisted.OnUntrusted). Call it once.
func (m *Metrics) UntrustedOperations() func() {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gqlauth_graphql_untrusted_operations_total",
		Help: "GraphQL operations run although their document is not in the trusted-documents manifest (TRUSTED_DOCUMENTS=allow).",
	})
	if err := m.reg.Register(c); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			c = are.ExistingCollector.(prometheus.Counter)
		}
	}
	return c.Inc
}
