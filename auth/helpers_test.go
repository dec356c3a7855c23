package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"sync"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/password"
	"gqlauth/store"
	"gqlauth/token"
)

// cheapParams keep hashing fast where the cost is not what is measured.
var cheapParams = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// testTokens is one EdDSA issuer (15-minute tokens) shared by every test service, so services over
// the same store accept each other's tokens, like replicas.
var testTokens = sync.OnceValue(func() *token.Issuer {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	tokens, err := token.NewEdDSAIssuer(key, token.Options{Issuer: "i", Audience: "a", TTL: 15 * time.Minute})
	if err != nil {
		panic(err)
	}
	return tokens
})

// newTestService opens a fresh store on dsn (closed when the test ends) and returns a Service over
// it with the shared test issuer. Unset options default to a one-hour refresh TTL,
// cheap hashing and a discarded log.
func newTestService(tb testing.TB, dsn string, opts auth.Options) (*auth.Service, *store.DB) {
	tb.Helper()
	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	if opts.RefreshTokenTTL == 0 {
		opts.RefreshTokenTTL = time.Hour
	}
	if opts.Password == (password.Params{}) {
		opts.Password = cheapParams
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	svc, err := auth.NewService(db, testTokens(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	return svc, db
}
