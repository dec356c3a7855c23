package graph_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
	"gqlauth/internal/testlog"
	"gqlauth/observe"
)

// wantMetrics fails unless GET /metrics has every line (or line prefix) in want.
func wantMetrics(t *testing.T, e *apptest.Env, want ...string) string {
	t.Helper()
	status, out := e.Get("/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", status)
	}
	for _, w := range want {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(w)).MatchString(out) {
			t.Fatalf("metrics lack %q:\n%s", w, grepLines(out, "gqlauth_"))
		}
	}
	return out
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{Vars: map[string]string{"REFRESH_REUSE_GRACE": "0s", "LOGIN_RATE_LIMIT": "2/1m"}})
		p := e.Register("alice@example.com", pw)
		apptest.WantCode(t, e.Post(`mutation Login($i: LoginInput!) { login(input: $i) { accessToken } }`,
			loginVars("alice@example.com", "wrong password")), "INVALID_CREDENTIALS", "")
		q := e.MustPair(e.Refresh(p.RefreshToken), "refreshToken")
		apptest.WantOK(t, e.Post(logoutQ, map[string]any{"t": q.RefreshToken}))

		wantMetrics(t, e,
			`gqlauth_auth_events_total{event="register",outcome="ok"} 1`,
			`gqlauth_auth_events_total{event="login",outcome="failed"} 1`,
			`gqlauth_auth_events_total{event="refresh",outcome="ok"} 1`,
			`gqlauth_auth_events_total{event="logout",outcome="ok"} 1`,
			`gqlauth_sessions_revoked_total 1`,
			`gqlauth_refresh_token_reuse_total 0`,
			`gqlauth_graphql_operations_total{operation="Login",outcome="INVALID_CREDENTIALS"} 1`,
			`gqlauth_graphql_operations_total{operation="anonymous",outcome="ok"} 3`,
			`gqlauth_http_request_duration_seconds_count{method="POST",route="POST /graphql",status="200"} 4`,
			`go_goroutines `,
			`go_sql_max_open_connections{db_name="gqlauth"} `,
			`go_sql_open_connections{db_name="gqlauth"} `,
			`process_resident_memory_bytes `,
		)

		// Reuse after the (zero) grace revokes the session.
		l := e.Login("alice@example.com", pw)
		e.MustPair(e.Refresh(l.RefreshToken), "refreshToken")
		apptest.WantCode(t, e.Refresh(l.RefreshToken), "INVALID_REFRESH_TOKEN", "")
		// Two failures, then the pair is rate limited.
		for range 2 {
			apptest.WantCode(t, e.Post(loginQ, loginVars("ghost@example.com", "wrong password")), "INVALID_CREDENTIALS", "")
		}
		apptest.WantCode(t, e.Post(loginQ, loginVars("ghost@example.com", "wrong password")), "RATE_LIMITED", "")
		// Errors before execution (parse, a batch) are counted too.
		apptest.WantCode(t, e.Post(`{ me `, nil), "GRAPHQL_PARSE_FAILED", "")
		req, _ := http.NewRequest(http.MethodPost, e.Server.URL+"/graphql", strings.NewReader(`[{"query":"{ __typename }"}]`))
		req.Header.Set("Content-Type", "application/json")
		apptest.WantCode(t, e.Send(req), "BAD_REQUEST", "")
		e.Get("/no/such/page")

		wantMetrics(t, e,
			`gqlauth_auth_events_total{event="login",outcome="ok"} 1`,
			`gqlauth_auth_events_total{event="login",outcome="failed"} 3`,
			`gqlauth_auth_events_total{event="login",outcome="rate_limited"} 1`,
			`gqlauth_auth_events_total{event="refresh_token_reuse",outcome="session_revoked"} 1`,
			`gqlauth_refresh_token_reuse_total 1`,
			`gqlauth_sessions_revoked_total 2`,
			`gqlauth_graphql_operations_total{operation="anonymous",outcome="INVALID_CREDENTIALS"} 2`,
			`gqlauth_graphql_operations_total{operation="anonymous",outcome="RATE_LIMITED"} 1`,
			`gqlauth_graphql_operations_total{operation="anonymous",outcome="INVALID_REFRESH_TOKEN"} 1`,
			`gqlauth_graphql_operations_total{operation="anonymous",outcome="GRAPHQL_PARSE_FAILED"} 1`,
			`gqlauth_graphql_operations_total{operation="anonymous",outcome="BAD_REQUEST"} 1`,
			`gqlauth_http_request_duration_seconds_count{method="GET",route="GET /metrics",status="200"} 1`,
			`gqlauth_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"} 1`,
		)
	})
}

// logLines returns the JSON records in buf once cond holds for them (the access log line is written
// after the response, so a client may see the response first).
func logLines(t *testing.T, buf *testlog.Buffer, cond func([]map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		raw := buf.String()
		var recs []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(raw), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("log line is not JSON: %s", l)
			}
			recs = append(recs, m)
		}
		if cond(recs) {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("log lines never matched:\n%s", raw)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAccessAndAuditLogsShareRequestID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		logger func(w *testlog.Buffer) *slog.Logger
	}{
		{"observe logger", func(w *testlog.Buffer) *slog.Logger { return observe.NewLogger(w, "json", slog.LevelInfo) }},
		// app.New adds request ids to any logger it is given.
		{"plain slog logger", func(w *testlog.Buffer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf testlog.Buffer
			e := apptest.New(t, testdb.SQLite(t), apptest.Options{Logger: tc.logger(&buf)})
			p := e.Register("alice@example.com", pw)
			res, r := e.Do(loginQ, loginVars("alice@example.com", "wrong password"),
				"X-Request-ID", "req-failed-login", "Authorization", "Bearer "+p.AccessToken)
			apptest.WantCode(t, r, "INVALID_CREDENTIALS", "")
			if res.Header.Get("X-Request-ID") != "req-failed-login" {
				t.Fatalf("X-Request-ID not echoed: %q", res.Header.Get("X-Request-ID"))
			}
			const requests = 2
			recs := logLines(t, &buf, func(recs []map[string]any) bool {
				n := 0
				for _, m := range recs {
					if m["msg"] == "http request" {
						n++
					}
				}
				return n == requests
			})
			var access, audit []map[string]any
			ids := map[any]bool{}
			for _, m := range recs {
				switch m["msg"] {
				case "http request":
					if id, _ := m["request_id"].(string); id == "" || ids[id] {
						t.Fatalf("access line without a unique request_id: %v", m)
					}
					ids[m["request_id"]] = true
					if m["request_id"] == "req-failed-login" {
						access = append(access, m)
					}
				case "auth event":
					if m["request_id"] == "req-failed-login" {
						audit = append(audit, m)
					}
				}
			}
			if len(access) != 1 || access[0]["route"] != "POST /graphql" || access[0]["status"] != float64(200) ||
				access[0]["method"] != "POST" || access[0]["ip"] != "127.0.0.1" {
				t.Fatalf("access lines of the request: %v", access)
			}
			if len(audit) != 1 || audit[0]["event"] != "login" || audit[0]["outcome"] != "failed" {
				t.Fatalf("audit lines of the request: %v", audit)
			}
			out := buf.String()
			for _, secret := range []string{pw, "wrong password", p.AccessToken, p.RefreshToken} {
				if strings.Contains(out, secret) {
					t.Fatalf("log contains a secret (%.10s…):\n%s", secret, out)
				}
			}
		})
	}
}

// The first 100 operation names any client sent used to own the label slots. Now only the schema's
// operation names (Login, Me, …) and METRICS_OPERATION_NAMES are labels; every other name is "other".
func TestOperationNameLabelsAreTheServers(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"METRICS_OPERATION_NAMES": "Dashboard"}})
	for i := range 150 {
		apptest.WantOK(t, e.Post(fmt.Sprintf(`query Stranger%d { __typename }`, i), nil))
	}
	apptest.WantCode(t, e.Post(`mutation Login($i: LoginInput!) { login(input: $i) { accessToken } }`,
		loginVars("nobody@example.com", "wrong password")), "INVALID_CREDENTIALS", "")
	apptest.WantOK(t, e.Post(`query Dashboard { __typename }`, nil))
	out := wantMetrics(t, e,
		`gqlauth_graphql_operations_total{operation="other",outcome="ok"} 150`,
		`gqlauth_graphql_operations_total{operation="Login",outcome="INVALID_CREDENTIALS"} 1`,
		`gqlauth_graphql_operations_total{operation="Dashboard",outcome="ok"} 1`,
	)
	if strings.Contains(out, "Stranger") {
		t.Fatal("a client's operation name became a label")
	}
}
