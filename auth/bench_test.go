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
