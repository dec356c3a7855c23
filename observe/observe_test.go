package observe_test

import (
	"bytes"
	"context"
	"encoding/json"
	"gqlauth/internal/testlog"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"gqlauth/auth"
	"gqlauth/observe"
)

// serve runs one request through RequestID and returns the id the handler saw and the response.
func serve(t *testing.T, incoming string) (seen string, res *http.Response) {
	t.Helper()
	h := observe.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = observe.RequestIDFrom(r.Context())
	}))
	req := httptest.NewRequest(http.MethodGet, "/x", nil)
	if incoming != "" {
		req.Header.Set("X-Request-ID", incoming)
	}
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	return seen, rr.Result()
}

var generated = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestRequestIDHonoured(t *testing.T) {
	for _, id := range []string{"abc-123_X.y", "a", strings.Repeat("z", 128)} {
		seen, res := serve(t, id)
		if seen != id || res.Header.Get("X-Request-ID") != id {
			t.Fatalf("incoming %q: context %q, header %q", id, seen, res.Header.Get("X-Request-ID"))
		}
	}
}

func TestRequestIDInvalidReplaced(t *testing.T) {
	for _, id := range []string{strings.Repeat("z", 129), "has space", "semi;colon", "new\nline", "é", "a/b"} {
		seen, res := serve(t, id)
		if seen == id || !generated.MatchString(seen) || res.Header.Get("X-Request-ID") != seen {
			t.Fatalf("incoming %q: context %q, header %q", id, seen, res.Header.Get("X-Request-ID"))
		}
	}
}

func TestRequestIDGenerated(t *testing.T) {
	a, res := serve(t, "")
	b, _ := serve(t, "")
	if !generated.MatchString(a) || res.Header.Get("X-Request-ID") != a || a == b {
		t.Fatalf("generated ids %q, %q (header %q)", a, b, res.Header.Get("X-Request-ID"))
	}
	if observe.RequestIDFrom(context.Background()) != "" {
		t.Fatal("an id without a request")
	}
}

func TestLoggerAddsRequestID(t *testing.T) {
	var buf bytes.Buffer
	log := observe.NewLogger(&buf, "json", slog.LevelInfo)
	ctx := observe.WithRequestID(context.Background(), "req-1")
	log.InfoContext(ctx, "with", "k", "v")
	log.With("a", 1).WithGroup("g").InfoContext(ctx, "grouped")
	log.Info("without")
	log.DebugContext(ctx, "below the level")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, got:\n%s", buf.String())
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatalf("not JSON: %s", lines[0])
	}
	if first["request_id"] != "req-1" || first["msg"] != "with" || first["k"] != "v" || first["level"] != "INFO" {
		t.Fatalf("first line: %s", lines[0])
	}
	if !strings.Contains(lines[1], `"request_id":"req-1"`) {
		t.Fatalf("derived logger lost the request id: %s", lines[1])
	}
	if strings.Contains(lines[2], "request_id") {
		t.Fatalf("request id without a context: %s", lines[2])
	}

	buf.Reset()
	observe.NewLogger(&buf, "text", slog.LevelDebug).DebugContext(ctx, "hello")
	if out := buf.String(); !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "request_id=req-1") {
		t.Fatalf("text format: %s", out)
	}
	// Wrapping twice does not add the attribute twice.
	buf.Reset()
	h := observe.RequestIDHandler(observe.RequestIDHandler(slog.NewJSONHandler(&buf, nil)))
	slog.New(h).InfoContext(ctx, "once")
	if n := strings.Count(buf.String(), "request_id"); n != 1 {
		t.Fatalf("request_id %d times: %s", n, buf.String())
	}
}

func TestAccessLog(t *testing.T) {
	var buf testlog.Buffer
	log := observe.NewLogger(&buf, "json", slog.LevelInfo)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "hello")
	})
	srv := httptest.NewServer(observe.RequestID(observe.AccessLog(log, mux)))
	defer srv.Close()

	const secret = "Bearer eyJ.secret-token"
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/items/42?query=password123&token=abc", nil)
	req.Header.Set("Authorization", secret)
	req.Header.Set("X-Request-ID", "trace-7")
	req.Header.Set("User-Agent", "tester/1")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	res, err = http.Get(srv.URL + "/nowhere?x=secret-query")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one line per request, got:\n%s", buf.String())
	}
	var l map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &l); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"msg": "http request", "method": "GET", "route": "GET /items/{id}", "status": float64(418),
		"bytes": float64(5), "ip": "127.0.0.1", "user_agent": "tester/1", "request_id": "trace-7"}
	for k, v := range want {
		if l[k] != v {
			t.Fatalf("%s = %v, want %v: %s", k, l[k], v, lines[0])
		}
	}
	if _, ok := l["duration_ms"].(float64); !ok {
		t.Fatalf("no duration_ms: %s", lines[0])
	}
	if !strings.Contains(lines[1], `"route":"/nowhere"`) || !strings.Contains(lines[1], `"status":404`) {
		t.Fatalf("unmatched request: %s", lines[1])
	}
	out := buf.String()
	for _, s := range []string{"secret-token", "password123", "token=abc", "secret-query", "?"} {
		if strings.Contains(out, s) {
			t.Fatalf("access log contains %q:\n%s", s, out)
		}
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := observe.NewMetrics(reg)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /graphql", func(w http.ResponseWriter, r *http.Request) {})
	mux.Handle("GET /metrics", m.Handler())
	srv := httptest.NewServer(m.HTTP(mux))
	defer srv.Close()
	if res, err := http.Post(srv.URL+"/graphql", "application/json", nil); err == nil {
		res.Body.Close()
	}
	if res, err := http.Get(srv.URL + "/random/path"); err == nil {
		res.Body.Close()
	}
	m.AuthEvent(context.Background(), auth.Event{Kind: auth.EventLogout, Outcome: auth.OutcomeOK, Revoked: 2})
	m.AuthEvent(context.Background(), auth.Event{Kind: auth.EventReuseDetected, Outcome: auth.OutcomeFailed, Revoked: 1})
	m.AuthEvent(context.Background(), auth.Event{Kind: auth.EventLogin, Outcome: auth.OutcomeRateLimited})
	m.KnowOperations("Login", "Me", "bad name!")
	// Strangers' names come first and in numbers: they must not take the label slots.
	for i := range 500 {
		m.GraphQLOperation("Op"+strings.Repeat("x", i%60)+string(rune('a'+i/60)), "ok")
	}
	m.GraphQLOperation("Login", "ok")
	m.GraphQLOperation("", "INVALID_CREDENTIALS")
	m.GraphQLOperation("bad name!", "ok")
	m.GraphQLOperation("login", "ok") // names are exact

	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	out := string(body)
	for _, want := range []string{
		`gqlauth_http_request_duration_seconds_count{method="POST",route="POST /graphql",status="200"} 1`,
		`gqlauth_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"} 1`,
		`gqlauth_auth_events_total{event="logout",outcome="ok"} 1`,
		`gqlauth_auth_events_total{event="login",outcome="rate_limited"} 1`,
		`gqlauth_sessions_revoked_total 3`,
		`gqlauth_refresh_token_reuse_total 1`,
		`gqlauth_graphql_operations_total{operation="Login",outcome="ok"} 1`,
		`gqlauth_graphql_operations_total{operation="anonymous",outcome="INVALID_CREDENTIALS"} 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("metrics lack %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "gqlauth_graphql_operations_total{"); n != 3 {
		t.Fatalf("%d operation series, want 3 (Login, anonymous, other): the name label is open to clients", n)
	}
	if !strings.Contains(out, `gqlauth_graphql_operations_total{operation="other",outcome="ok"} 502`) || strings.Contains(out, "bad name") {
		t.Fatalf("unknown or invalid names are not folded into other:\n%s", out)
	}
}

func TestMailMetrics(t *testing.T) {
	m := observe.NewMetrics(prometheus.NewRegistry())
	m.MailResult(auth.KindVerifyEmail, "queued")
	m.MailResult(auth.KindVerifyEmail, "sent")
	m.MailResult(auth.KindResetRequest, "dropped")
	m.MailResult(auth.KindPasswordReset, "retry")
	m.MailResult(auth.KindPasswordReset, "retry")
	m.MailResult("made_up", "exploded") // labels stay bounded
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	out := string(body)
	for _, want := range []string{
		`gqlauth_mail_total{kind="verify_email",outcome="queued"} 1`,
		`gqlauth_mail_total{kind="verify_email",outcome="sent"} 1`,
		`gqlauth_mail_total{kind="password_reset_request",outcome="dropped"} 1`,
		`gqlauth_mail_total{kind="password_reset",outcome="retry"} 2`,
		`gqlauth_mail_total{kind="other",outcome="other"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("metrics lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "made_up") || strings.Contains(out, "exploded") {
		t.Fatalf("unknown kind or outcome used as a label:\n%s", out)
	}
}

// A request that never ends used to leave no trace (the access log writes when a request ends): Watch
// reports it while it runs, once when it is slow and once when its client has gone.
func TestWatchReportsRequestsThatRunOn(t *testing.T) {
	var logs testlog.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	release := make(chan struct{})
	var kinds []string
	var mu sync.Mutex
	h := observe.Watch(log, 100*time.Millisecond, func(kind string) { mu.Lock(); kinds = append(kinds, kind); mu.Unlock() },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/fast" {
				return
			}
			<-release // ignores its context, like a CPU loop would
		}))
	srv := httptest.NewServer(h)
	defer srv.Close()

	res, err := http.Get(srv.URL + "/fast")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/stuck", nil)
	go func() {
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	waitFor(t, &logs, `msg="request still running" method=GET path=/stuck`)
	cancel() // the client gives up; the handler does not notice
	waitFor(t, &logs, `msg="request still running after its client went away" method=GET path=/stuck`)
	close(release)

	mu.Lock()
	defer mu.Unlock()
	if strings.Join(kinds, ",") != "slow,abandoned" {
		t.Fatalf("overruns %v, want slow then abandoned", kinds)
	}
	if strings.Contains(logs.String(), "path=/fast") {
		t.Fatalf("a fast request was reported:\n%s", logs.String())
	}
}

func waitFor(t *testing.T, logs *testlog.Buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", want, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Records logged with a context holding a valid span get its trace and span ids; others do not.
func TestLogCarriesTraceIDs(t *testing.T) {
	var buf testlog.Buffer
	log := observe.NewLogger(&buf, "json", slog.LevelInfo)
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	log.InfoContext(ctx, "with")
	log.InfoContext(context.Background(), "without")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var with, without map[string]any
	if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &with) != nil || json.Unmarshal([]byte(lines[1]), &without) != nil {
		t.Fatalf("log: %s", buf.String())
	}
	if with["trace_id"] != tid.String() || with["span_id"] != sid.String() {
		t.Errorf("with a span: %v", with)
	}
	if _, ok := without["trace_id"]; ok {
		t.Errorf("without a span: %v", without)
	}
}

// Both OTLP transports start without a collector (neither connects before exporting), and
// Shutdown with nothing queued returns at once.
func TestTracingStartsWithoutCollector(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	for _, protocol := range []string{"http/protobuf", "grpc"} {
		tr, err := observe.NewTracing(observe.TracingOptions{ServiceName: "gqlauth-test", Protocol: protocol, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Start(context.Background()); err != nil {
			t.Fatalf("%s: %v", protocol, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := tr.Shutdown(ctx); err != nil {
			t.Errorf("%s: shutdown: %v", protocol, err)
		}
		cancel()
	}
}
