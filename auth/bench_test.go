package auth_test

import (
	"context"
	"os"
	"testing"

	"gqlauth/auth"
	"gqlauth/internal/testdb"
)

// BenchmarkAuthenticate measures what @auth costs per request: verifying the access token plus the
// revocation check, from the in-memory cache (the normal path) and from the database (the fallback
// used only while the cache is stale).
//
//	go test -run='^$' -bench=Authenticate -benchmem ./auth/
func BenchmarkAuthenticate(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchAuthenticate(b, testdb.SQLite(b)) })
	if os.Getenv(testdb.EnvURL) != "" {
		b.Run("postgres", func(b *testing.B) { benchAuthenticate(b, testdb.Postgres(b)) })
	}
}

func benchAuthenticate(b *testing.B, dsn string) {
	ctx := context.Background()
	svc, _ := newTestService(b, dsn, auth.Options{})
	// Each sub-benchmark gets its own service (so its own revocation cache) over the same store.
	newSvc := func() *auth.Service {
		s, _ := newTestService(b, dsn, auth.Options{})
		return s
	}
	p, err := svc.Register(ctx, "bench@example.com", "bench password", auth.Client{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("cache", func(b *testing.B) {
		svc := newSvc()
		runCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		svc.Start(runCtx)
		for b.Loop() {
			if _, err := svc.Authenticate(ctx, p.AccessToken); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("database", func(b *testing.B) {
		svc := newSvc() // never started: every check goes to the database
		for b.Loop() {
			if _, err := svc.Authenticate(ctx, p.AccessToken); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRefresh is one rotation (read the token, conditional update, insert, in one transaction),
// chained as a client does, on each database.
//
//	TEST_DATABASE_URL=… go test -run='^$' -bench=Refresh -benchmem ./auth/
func BenchmarkRefresh(b *testing.B) {
	dbs := map[string]func(testing.TB) string{"sqlite": testdb.SQLite}
	if testdb.Available() {
		dbs["postgres"] = testdb.Postgres
	}
	for name, dsn := range dbs {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			svc, _ := newTestService(b, dsn(b), auth.Options{RefreshReuseGrace: 0})
			p, err := svc.Register(ctx, "bench@example.com", "bench password", auth.Client{})
			if err != nil {
				b.Fatal(err)
			}
			rt := p.RefreshToken
			b.ReportAllocs()
			for b.Loop() {
				next, err := svc.Refresh(ctx, rt, auth.Client{IP: "127.0.0.1"})
				if err != nil {
					b.Fatal(err)
				}
				rt = next.RefreshToken
			}
		})
	}
}
