package graph_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
	"gqlauth/internal/testlog"
	"gqlauth/observe"
	"gqlauth/token"
)

// Tracing through the real server (apptest: app.New behind a loopback listener) into an in-memory
// exporter: the span tree of a login and of a refresh, an incoming traceparent, the trace ids in the
// log lines, and no secret in any span.

// traced is a server with tracing on, its exporter and its JSON log.
type traced struct {
	*apptest.Env
	spans *tracetest.InMemoryExporter
	logs  *testlog.Buffer
}

func newTraced(t *testing.T, dsn string, vars map[string]string) traced {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	logs := &testlog.Buffer{}
	e := apptest.New(t, dsn, apptest.Options{Vars: vars, TracerProvider: tp, Logger: observe.NewLogger(logs, "json", slog.LevelInfo)})
	return traced{Env: e, spans: exp, logs: logs}
}

// trace waits for the server span of the trace that has a span named name (the server span ends
// after the response is sent) and returns every span of that trace.
func (tr traced) trace(t *testing.T, name string) tracetest.SpanStubs {
	t.Helper()
	var out tracetest.SpanStubs
	eventually(t, 5*time.Second, "the spans of "+name, func() bool {
		all := tr.spans.GetSpans()
		i := slices.IndexFunc(all, func(s tracetest.SpanStub) bool { return s.Name == name })
		if i < 0 {
			return false
		}
		id := all[i].SpanContext.TraceID()
		out = nil
		for _, s := range all {
			if s.SpanContext.TraceID() == id {
				out = append(out, s)
			}
		}
		return slices.ContainsFunc(out, func(s tracetest.SpanStub) bool { return s.SpanKind == trace.SpanKindServer })
	})
	return out
}

func one(t *testing.T, spans tracetest.SpanStubs, what string, match func(tracetest.SpanStub) bool) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range spans {
		if match(s) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s span, got %d in:\n%s", what, len(found), dump(spans))
	}
	return found[0]
}

func named(name string) func(tracetest.SpanStub) bool {
	return func(s tracetest.SpanStub) bool { return s.Name == name }
}

func attr(s tracetest.SpanStub, key string) (string, bool) {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.String(), true
		}
	}
	return "", false
}

func dump(spans tracetest.SpanStubs) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "  %s %s parent=%s\n", s.SpanContext.SpanID(), s.Name, s.Parent.SpanID())
	}
	return b.String()
}

// wantChild fails unless child's parent is parent.
func wantChild(t *testing.T, spans tracetest.SpanStubs, parent, child tracetest.SpanStub) {
	t.Helper()
	if child.Parent.SpanID() != parent.SpanContext.SpanID() || child.Parent.TraceID() != parent.SpanContext.TraceID() {
		t.Errorf("%q is not a child of %q:\n%s", child.Name, parent.Name, dump(spans))
	}
}

// descendants are the spans under root (root excluded).
func descendants(spans tracetest.SpanStubs, root tracetest.SpanStub) tracetest.SpanStubs {
	under := map[trace.SpanID]bool{root.SpanContext.SpanID(): true}
	var out tracetest.SpanStubs
	for changed := true; changed; {
		changed = false
		for _, s := range spans {
			if !under[s.SpanContext.SpanID()] && under[s.Parent.SpanID()] {
				under[s.SpanContext.SpanID()] = true
				out = append(out, s)
				changed = true
			}
		}
	}
	return out
}

func isDB(s tracetest.SpanStub) bool {
	v, ok := attr(s, "db.system.name")
	return ok && (v == "sqlite" || v == "postgresql")
}

func isRedis(s tracetest.SpanStub) bool {
	v, ok := attr(s, "db.system")
	return ok && v == "redis"
}

// checkGraphQLTree checks HTTP server span → operation span → root resolver span and returns the
// resolver span; the server span is the trace's root.
func checkGraphQLTree(t *testing.T, spans tracetest.SpanStubs, op, opType, opName, resolver string) (server, resolverSpan tracetest.SpanStub) {
	t.Helper()
	server = one(t, spans, "HTTP server", func(s tracetest.SpanStub) bool { return s.SpanKind == trace.SpanKindServer })
	if server.Name != "POST /graphql" {
		t.Errorf("server span named %q, want POST /graphql", server.Name)
	}
	if route, _ := attr(server, "http.route"); route != "/graphql" {
		t.Errorf("server span http.route = %q", route)
	}
	if status, _ := attr(server, "http.response.status_code"); status != "200" {
		t.Errorf("server span status = %q", status)
	}
	opSpan := one(t, spans, "operation", named(op))
	wantChild(t, spans, server, opSpan)
	if v, _ := attr(opSpan, "graphql.operation.type"); v != opType {
		t.Errorf("graphql.operation.type = %q, want %q", v, opType)
	}
	if v, _ := attr(opSpan, "graphql.operation.name"); v != opName {
		t.Errorf("graphql.operation.name = %q, want %q", v, opName)
	}
	resolverSpan = one(t, spans, "resolver", named(resolver))
	wantChild(t, spans, opSpan, resolverSpan)
	return server, resolverSpan
}

const (
	tracedLoginQ   = `mutation Login($i: LoginInput!) { login(input: $i) { ` + apptest.PayloadFields + ` } }`
	tracedRefreshQ = `mutation Refresh($t: String) { refreshToken(refreshToken: $t) { ` + apptest.PayloadFields + ` } }`
)

// A login is one trace: the HTTP server span, the operation, the login resolver and, under it, the
// wait for a hashing slot and the hash, the database statements and (with Redis) the rate-limit
// commands. A refresh is HTTP → operation → refreshToken → its database statements. No span
// anywhere carries the password, a token or a hash, and the request's log line carries the trace.
func TestTraceLoginAndRefresh(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		tr := newTraced(t, dsn, map[string]string{"REDIS_URL": testdb.Redis(t)})
		email := fmt.Sprintf("trace-%d@example.com", time.Now().UnixNano())
		const pw = "correct horse battery staple"
		reg := tr.Register(email, pw)

		r := tr.Post(tracedLoginQ, map[string]any{"i": map[string]any{"email": email, "password": pw}})
		login := tr.MustPair(r, "login")
		spans := tr.trace(t, "mutation Login")
		t.Logf("login trace:\n%s", dump(spans))
		server, resolver := checkGraphQLTree(t, spans, "mutation Login", "mutation", "Login", "Mutation.login")
		if server.Parent.IsValid() {
			t.Errorf("the server span has a parent without a traceparent: %v", server.Parent)
		}
		wait := one(t, spans, "hash slot wait", named("password.slot_wait"))
		verify := one(t, spans, "hash", named("password.verify"))
		wantChild(t, spans, resolver, wait)
		wantChild(t, spans, resolver, verify)
		if wait.EndTime.After(verify.StartTime) {
			t.Errorf("the slot wait ends (%s) after the hash starts (%s)", wait.EndTime, verify.StartTime)
		}
		under := descendants(spans, resolver)
		db := slices.DeleteFunc(slices.Clone(under), func(s tracetest.SpanStub) bool { return !isDB(s) })
		if len(db) == 0 {
			t.Fatalf("no database span under the resolver:\n%s", dump(spans))
		}
		if !slices.ContainsFunc(db, func(s tracetest.SpanStub) bool { return s.Name == "select users" }) {
			t.Errorf("no 'select users' span among the database spans:\n%s", dump(db))
		}
		for _, s := range db {
			if q, _ := attr(s, "db.query.text"); q == "" || strings.Contains(q, email) {
				t.Errorf("database span %q: db.query.text = %q (want the SQL with placeholders)", s.Name, q)
			}
		}
		if !slices.ContainsFunc(under, isRedis) {
			t.Errorf("no Redis span under the resolver:\n%s", dump(spans))
		}
		// Every span of the trace hangs off the server span.
		if n := len(descendants(spans, server)); n != len(spans)-1 {
			t.Errorf("%d of %d spans are not under the server span:\n%s", len(spans)-1-n, len(spans)-1, dump(spans))
		}
		wantLogged(t, tr.logs.String(), server)

		r = tr.Post(tracedRefreshQ, map[string]any{"t": login.RefreshToken})
		refreshed := tr.MustPair(r, "refreshToken")
		spans = tr.trace(t, "mutation Refresh")
		_, resolver = checkGraphQLTree(t, spans, "mutation Refresh", "mutation", "Refresh", "Mutation.refreshToken")
		under = descendants(spans, resolver)
		if !slices.ContainsFunc(under, func(s tracetest.SpanStub) bool { return isDB(s) && strings.Contains(s.Name, "refresh_tokens") }) {
			t.Errorf("no refresh_tokens statement under refreshToken:\n%s", dump(spans))
		}
		if slices.ContainsFunc(spans, func(s tracetest.SpanStub) bool { return strings.HasPrefix(s.Name, "password.") }) {
			t.Errorf("a refresh hashed a password:\n%s", dump(spans))
		}

		// The secrets of this account, in every encoding they could leak in.
		u, err := tr.App.Store.UserByEmail(context.Background(), email)
		if err != nil {
			t.Fatal(err)
		}
		secrets := map[string]string{"password": pw, "password hash": u.PasswordHash}
		for i, p := range []apptest.Pair{reg, login, refreshed} {
			secrets[fmt.Sprintf("access token %d", i)] = p.AccessToken
			secrets[fmt.Sprintf("refresh token %d", i)] = p.RefreshToken
			h, ok := token.HashRefreshToken(p.RefreshToken)
			if !ok {
				t.Fatalf("refresh token %d does not parse", i)
			}
			secrets[fmt.Sprintf("refresh token hash %d (hex)", i)] = hex.EncodeToString(h)
			secrets[fmt.Sprintf("refresh token hash %d (base64)", i)] = base64.StdEncoding.EncodeToString(h)
			secrets[fmt.Sprintf("refresh token hash %d (base64url)", i)] = base64.RawURLEncoding.EncodeToString(h)
			secrets[fmt.Sprintf("refresh token hash %d (raw)", i)] = string(h)
		}
		// The password hash's parts: salt and key.
		if parts := strings.Split(u.PasswordHash, "$"); len(parts) == 6 {
			secrets["password salt"], secrets["password key"] = parts[4], parts[5]
		}
		secrets["e-mail"] = email
		// Sending a wrong password and a garbage token must not record them either.
		bad := tr.Post(tracedLoginQ, map[string]any{"i": map[string]any{"email": email, "password": "wrong password 123"}})
		apptest.WantCode(t, bad, "INVALID_CREDENTIALS", "")
		secrets["wrong password"] = "wrong password 123"
		tr.Refresh("garbage-refresh-token-value-0123456789")
		secrets["garbage refresh token"] = "garbage-refresh-token-value-0123456789"
		tr.Me("garbage.access.token-value")
		secrets["garbage access token"] = "garbage.access.token-value"
		tr.trace(t, "query") // the Me request's trace is complete
		wantNoSecrets(t, tr.spans.GetSpans(), secrets)
	})
}

// wantLogged checks that the access-log line of server's request carries its trace and span ids.
func wantLogged(t *testing.T, logs string, server tracetest.SpanStub) {
	t.Helper()
	want := server.SpanContext.TraceID().String()
	for line := range strings.Lines(logs) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "http request" || rec["trace_id"] != want {
			continue
		}
		if rec["span_id"] != server.SpanContext.SpanID().String() {
			t.Errorf("access log span_id = %v, want the server span's %s", rec["span_id"], server.SpanContext.SpanID())
		}
		if rec["request_id"] == nil {
			t.Errorf("access log line without request_id: %s", line)
		}
		return
	}
	t.Errorf("no access-log line with trace_id %s in:\n%s", want, logs)
}

// wantNoSecrets scans every name, attribute, event, link and status of every span (and the
// resources) for each secret.
func wantNoSecrets(t *testing.T, spans tracetest.SpanStubs, secrets map[string]string) {
	t.Helper()
	if len(spans) == 0 {
		t.Fatal("no spans to scan")
	}
	for _, s := range spans {
		texts := []string{s.Name, s.Status.Description}
		for _, a := range s.Attributes {
			texts = append(texts, string(a.Key), a.Value.String())
		}
		for _, ev := range s.Events {
			texts = append(texts, ev.Name)
			for _, a := range ev.Attributes {
				texts = append(texts, string(a.Key), a.Value.String())
			}
		}
		for _, l := range s.Links {
			for _, a := range l.Attributes {
				texts = append(texts, a.Value.String())
			}
		}
		if s.Resource != nil {
			for _, a := range s.Resource.Attributes() {
				texts = append(texts, a.Value.String())
			}
		}
		for what, secret := range secrets {
			if secret == "" {
				t.Fatalf("secret %s is empty", what)
			}
			for _, text := range texts {
				if strings.Contains(text, secret) {
					t.Errorf("span %q carries the %s: %q", s.Name, what, text)
				}
			}
		}
	}
}

// An incoming W3C traceparent is honoured: the server span continues the caller's trace, as a
// child of the caller's span, and the log line carries the caller's trace id.
func TestTraceparentHonoured(t *testing.T) {
	tr := newTraced(t, testdb.SQLite(t), nil)
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	// Without a token: the resolver's span records the error's code (and only that).
	r := tr.Post(`query Probe { me { id } }`, nil, "traceparent", "00-"+traceID+"-"+parentID+"-01")
	apptest.WantCode(t, r, "UNAUTHENTICATED", "")
	spans := tr.trace(t, "query Probe")
	server, resolver := checkGraphQLTree(t, spans, "query Probe", "query", "Probe", "Query.me")
	if code, _ := attr(resolver, "gqlauth.graphql.error_code"); code != "UNAUTHENTICATED" || resolver.Status.Description != "UNAUTHENTICATED" {
		t.Errorf("resolver span: error code %q, status %q", code, resolver.Status.Description)
	}
	if got := server.SpanContext.TraceID().String(); got != traceID {
		t.Fatalf("trace id %s, want the caller's %s", got, traceID)
	}
	if got := server.Parent.SpanID().String(); got != parentID || !server.Parent.IsRemote() {
		t.Fatalf("server span's parent %s (remote %v), want the caller's span %s", got, server.Parent.IsRemote(), parentID)
	}
	wantLogged(t, tr.logs.String(), server)
}

// With tracing on, graphql-ws still works (the HTTP span middleware lets the upgrade through), and
// each subscription is a span of its own.
func TestTraceWebSocket(t *testing.T) {
	tr := newTraced(t, testdb.SQLite(t), nil)
	email := fmt.Sprintf("trace-ws-%d@example.com", time.Now().UnixNano())
	p := tr.Register(email, "a fine password")
	c := subscribeEvents(t, tr.Env, p.AccessToken)
	tr.Login(email, "a fine password")
	if ev := nextEvent(t, c); ev.Type != "SESSION_CREATED" || ev.Current {
		t.Fatalf("event %+v", ev)
	}
	eventually(t, 5*time.Second, "a subscription span", func() bool {
		return slices.ContainsFunc(tr.spans.GetSpans(), func(s tracetest.SpanStub) bool {
			v, _ := attr(s, "graphql.operation.type")
			return v == "subscription"
		})
	})
}

// With tracing off (no OTEL_* set) nothing is instrumented: no tracer provider, no GORM callbacks,
// no span context in the request (an incoming traceparent leaves no trace_id in the log), and the
// process-wide provider is still OpenTelemetry's default.
func TestTracingOff(t *testing.T) {
	logs := &testlog.Buffer{}
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Logger: observe.NewLogger(logs, "json", slog.LevelInfo)})
	if e.App.TracerProvider != nil {
		t.Fatalf("tracing off, yet a tracer provider: %T", e.App.TracerProvider)
	}
	if e.App.Store.Traced() {
		t.Fatal("tracing off, yet the database is instrumented")
	}
	apptest.WantOK(t, e.Post(`{ __typename }`, nil, "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
	eventually(t, 5*time.Second, "the access log line", func() bool { return strings.Contains(logs.String(), `"http request"`) })
	if out := logs.String(); strings.Contains(out, "trace_id") || strings.Contains(out, "4bf92f3577b34da6a3ce929d0e0e4736") {
		t.Fatalf("tracing off, yet the log carries a trace id:\n%s", out)
	}
	if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); ok {
		t.Fatal("the process-wide tracer provider was replaced")
	}
}
