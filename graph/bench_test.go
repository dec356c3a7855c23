package graph_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"gqlauth/app"
	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
)

// benchApp wires the real application (app.New) on dsn and runs it (Serve, so the revocation poller
// keeps the revocation cache fresh as in production), but the benchmarks call its Handler directly,
// without the network, so they measure the server's own work per request: middleware, CSRF/CORS,
// gqlgen, the @auth directive (token verification + revocation check) and the resolver's database read.
func benchApp(b testing.TB, dsn string, vars map[string]string) *app.App {
	b.Helper()
	all := map[string]string{"DATABASE_URL": dsn, "DATA_DIR": b.TempDir(), "LOGIN_RATE_LIMIT": "off", "LOGIN_IP_RATE_LIMIT": "off", "LOG_LEVEL": "error"}
	for k, v := range vars {
		all[k] = v
	}
	a, _ := apptest.Start(b, apptest.LoadConfig(b, all), app.Options{Password: &apptest.CheapPassword, Logger: apptest.DiscardLogger()})
	return a
}

func serve(b *testing.B, h http.Handler, body string, headers ...string) string {
	req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || strings.Contains(rec.Body.String(), `"errors"`) {
		b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	return rec.Body.String()
}

// BenchmarkMe is the protected-read path: `me` with a Bearer token, per algorithm and database.
//
//	TEST_DATABASE_URL=… go test -run='^$' -bench='Me|Trivial' -benchmem ./graph/
func BenchmarkMe(b *testing.B) {
	for _, db := range benchDBs(b) {
		for _, alg := range []struct{ name, secret string }{{"EdDSA", ""}, {"HS256", strings.Repeat("s", 32)}} {
			b.Run(db.name+"/"+alg.name, func(b *testing.B) {
				vars := map[string]string{}
				if alg.secret != "" {
					vars["JWT_SECRET"] = alg.secret
				}
				a := benchApp(b, db.dsn(b), vars)
				out := serve(b, a.Handler, `{"query":"mutation { register(input: {email: \"bench@example.com\", password: \"bench password\"}) { accessToken } }"}`)
				tok := out[strings.Index(out, `"accessToken":"`)+len(`"accessToken":"`):]
				tok = tok[:strings.IndexByte(tok, '"')]
				body := `{"query":"query Me { me { id email } }","operationName":"Me"}`
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						serve(b, a.Handler, body, "Authorization", "Bearer "+tok)
					}
				})
			})
		}
	}
}

// BenchmarkTrivial is a public query through the same stack: the floor of any request.
func BenchmarkTrivial(b *testing.B) {
	a := benchApp(b, testdb.SQLite(b), nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			serve(b, a.Handler, `{"query":"{ __typename }"}`)
		}
	})
}

type benchDB struct {
	name string
	dsn  func(testing.TB) string
}

func benchDBs(b *testing.B) []benchDB {
	dbs := []benchDB{{"sqlite", testdb.SQLite}}
	if testdb.Available() {
		dbs = append(dbs, benchDB{"postgres", testdb.Postgres})
	}
	return dbs
}

// BenchmarkRequestPasswordReset compares requestPasswordReset for a registered and an unknown address.
// The request does the same work for both (one outbox row; the user lookup and the token happen in the
// mail sender, off the request path). Requests for the two addresses alternate, so that the sender's
// background work for the known address weighs on both series alike, as it would on an attacker's
// interleaved probes; the benchmark reports each series' median and their ratio (known/unknown), which
// should be 1 within noise.
//
//	TEST_DATABASE_URL=… go test -run='^$' -bench=RequestPasswordReset -benchtime=2000x ./graph/
func BenchmarkRequestPasswordReset(b *testing.B) {
	for _, db := range benchDBs(b) {
		b.Run(db.name, func(b *testing.B) {
			a := benchApp(b, db.dsn(b), map[string]string{"RESET_EMAIL_RATE_LIMIT": "off", "RESET_IP_RATE_LIMIT": "off"})
			serve(b, a.Handler, `{"query":"mutation { register(input: {email: \"known@example.com\", password: \"bench password\"}) { accessToken } }"}`)
			bodies := [2]string{
				`{"query":"mutation { requestPasswordReset(email: \"known@example.com\") }"}`,
				`{"query":"mutation { requestPasswordReset(email: \"unknown@example.com\") }"}`,
			}
			var took [2][]time.Duration
			n := 0
			for b.Loop() {
				for k := range 2 {
					who := (n + k) % 2 // alternate which goes first
					start := time.Now()
					serve(b, a.Handler, bodies[who])
					took[who] = append(took[who], time.Since(start))
				}
				n++
			}
			known, unknown := median(took[0]), median(took[1])
			b.ReportMetric(float64(known.Microseconds()), "known-µs")
			b.ReportMetric(float64(unknown.Microseconds()), "unknown-µs")
			b.ReportMetric(float64(known)/float64(unknown), "known/unknown")
		})
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkMeTraced is BenchmarkMe's SQLite/HS256 case with tracing on: every request sampled and
// its spans (HTTP, operation, resolver, SQL) batched to an exporter that drops them. Compare it with
// BenchmarkMe/sqlite/HS256 in the same run for the cost of tracing on; with tracing off nothing of
// this is installed (TestTracingOff).
//
//	go test -run='^$' -bench='Me(Traced)?$|Me/sqlite/HS256' -benchmem ./graph/
func BenchmarkMeTraced(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	all := map[string]string{"DATABASE_URL": testdb.SQLite(b), "DATA_DIR": b.TempDir(), "LOGIN_RATE_LIMIT": "off",
		"LOGIN_IP_RATE_LIMIT": "off", "LOG_LEVEL": "error", "JWT_SECRET": strings.Repeat("s", 32)}
	a, _ := apptest.Start(b, apptest.LoadConfig(b, all), app.Options{Password: &apptest.CheapPassword, Logger: apptest.DiscardLogger(), TracerProvider: tp})
	out := serve(b, a.Handler, `{"query":"mutation { register(input: {email: \"bench@example.com\", password: \"bench password\"}) { accessToken } }"}`)
	tok := out[strings.Index(out, `"accessToken":"`)+len(`"accessToken":"`):]
	tok = tok[:strings.IndexByte(tok, '"')]
	body := `{"query":"query Me { me { id email } }","operationName":"Me"}`
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			serve(b, a.Handler, body, "Authorization", "Bearer "+tok)
		}
	})
}
