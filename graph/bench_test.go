package graph_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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

// BenchmarkRequestPasswordReset compares requestPasswordReset for a registered and an unknown address:
// the request does the same work for both (one outbox row; the user lookup happens in the mail
// sender, off the request path), so their times per request should be within noise of each other.
// The ratio known/unknown is what SECURITY.md reports.
//
//	TEST_DATABASE_URL=… go test -run='^$' -bench=RequestPasswordReset -count=5 ./graph/
func BenchmarkRequestPasswordReset(b *testing.B) {
	for _, db := range benchDBs(b) {
		a := benchApp(b, db.dsn(b), map[string]string{"RESET_EMAIL_RATE_LIMIT": "off", "RESET_IP_RATE_LIMIT": "off"})
		serve(b, a.Handler, `{"query":"mutation { register(input: {email: \"known@example.com\", password: \"bench password\"}) { accessToken } }"}`)
		for _, who := range []string{"known", "unknown"} {
			body := `{"query":"mutation { requestPasswordReset(email: \"` + who + `@example.com\") }"}`
			b.Run(db.name+"/"+who, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					serve(b, a.Handler, body)
				}
			})
		}
	}
}
