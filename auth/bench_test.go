package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/internal/testdb"
	"gqlauth/password"
	"gqlauth/store"
	"gqlauth/token"
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
	db, err := store.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	tokens, err := token.NewEdDSAIssuer(key, token.Options{Issuer: "i", Audience: "a", TTL: 15 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	cheap := password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	newSvc := func() *auth.Service {
		svc, err := auth.NewService(db, tokens, auth.Options{RefreshTokenTTL: time.Hour, Password: cheap})
		if err != nil {
			b.Fatal(err)
		}
		return svc
	}
	p, err := newSvc().Register(ctx, "bench@example.com", "bench password", auth.Client{})
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
