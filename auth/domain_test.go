package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/auth/memstore"
	"gqlauth/internal/testdb"
	"gqlauth/models"
	"gqlauth/password"
	"gqlauth/store"
	"gqlauth/token"
)

// The domain rules, driven through auth.Service on every store (the in-memory fake, SQLite and
// Postgres) with a fake clock: time moves by Advance, never by sleeping. Each test gets stores of its
// own, so all run in parallel.

const pw = "correct horse battery"

// accessTTL is the access-token lifetime of the test issuers (the server's default).
const accessTTL = 15 * time.Minute

// leeway is the access tokens' clock-skew allowance in these tests (JWT_LEEWAY's default).
const leeway = 5 * time.Second

// forEachStore runs fn as a parallel subtest per store, each with a fresh, empty store.
func forEachStore(t *testing.T, fn func(t *testing.T, st auth.Store)) {
	t.Helper()
	for _, s := range []struct {
		name string
		open func(t *testing.T) auth.Store
	}{
		{"memstore", func(*testing.T) auth.Store { return memstore.New() }},
		{"sqlite", func(t *testing.T) auth.Store { return openStore(t, testdb.SQLite(t)) }},
		{"postgres", func(t *testing.T) auth.Store { return openStore(t, testdb.Postgres(t)) }},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			fn(t, s.open(t))
		})
	}
}

// openStore opens store.DB on dsn, closed when the test ends.
func openStore(t *testing.T, dsn string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// domain is one Service over the store under test, with its fake clock and issuer.
type domain struct {
	t      *testing.T
	svc    *auth.Service
	st     auth.Store
	clock  *testClock
	tokens *token.Issuer
	ctx    context.Context
}

// newDomain returns a Service over st with the server's defaults where opts leaves them unset (a
// 720-hour refresh TTL), cheap hashing, a discarded log, and a fake clock shared with its issuer.
// RefreshReuseGrace is used as given: 0 is no grace.
func newDomain(t *testing.T, st auth.Store, opts auth.Options) *domain {
	t.Helper()
	clock := newTestClock()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := token.NewEdDSAIssuer(key, token.Options{Issuer: "i", Audience: "a", TTL: accessTTL, Leeway: leeway, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	d := &domain{t: t, st: st, clock: clock, tokens: tokens, ctx: t.Context()}
	d.svc = d.replica(opts)
	return d
}

// replica returns another Service over the same store, issuer and clock: another instance.
func (d *domain) replica(opts auth.Options) *auth.Service {
	d.t.Helper()
	if opts.RefreshTokenTTL == 0 {
		opts.RefreshTokenTTL = 720 * time.Hour
	}
	if opts.Password == (password.Params{}) {
		opts.Password = cheapParams
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Now = d.clock.Now
	svc, err := auth.NewService(d.st, d.tokens, opts)
	if err != nil {
		d.t.Fatal(err)
	}
	return svc
}

func (d *domain) register(email string, c ...auth.Client) *auth.Pair {
	d.t.Helper()
	p, err := d.svc.Register(d.ctx, email, pw, client(c))
	if err != nil {
		d.t.Fatalf("register %s: %v", email, err)
	}
	return p
}

func (d *domain) login(email, password string, c ...auth.Client) *auth.Pair {
	d.t.Helper()
	p, err := d.svc.Login(d.ctx, email, password, client(c))
	if err != nil {
		d.t.Fatalf("login %s: %v", email, err)
	}
	return p
}

func (d *domain) refresh(raw string, c ...auth.Client) *auth.Pair {
	d.t.Helper()
	p, err := d.svc.Refresh(d.ctx, raw, client(c))
	if err != nil {
		d.t.Fatalf("refresh: %v", err)
	}
	return p
}

func client(c []auth.Client) auth.Client {
	if len(c) > 0 {
		return c[0]
	}
	return auth.Client{}
}

// principal authenticates p's access token, which must be accepted.
func (d *domain) principal(p *auth.Pair) *auth.Principal {
	d.t.Helper()
	pr, err := d.svc.Authenticate(d.ctx, p.AccessToken)
	if err != nil {
		d.t.Fatalf("authenticate: %v", err)
	}
	return pr
}

// wantAuth fails unless authenticating p's access token on svc returns want (nil: accepted).
func (d *domain) wantAuth(svc *auth.Service, p *auth.Pair, want error) {
	d.t.Helper()
	if _, err := svc.Authenticate(d.ctx, p.AccessToken); !errors.Is(err, want) || (want == nil && err != nil) {
		d.t.Fatalf("authenticate: %v, want %v", err, want)
	}
}

// wantRevoked fails unless p's access token is refused as revoked and its refresh token is invalid.
func (d *domain) wantRevoked(p *auth.Pair) {
	d.t.Helper()
	d.wantAuth(d.svc, p, auth.ErrSessionRevoked)
	d.wantRefreshInvalid(p.RefreshToken)
}

func (d *domain) wantRefreshInvalid(raw string) {
	d.t.Helper()
	if p, err := d.svc.Refresh(d.ctx, raw, auth.Client{}); !errors.Is(err, auth.ErrRefreshTokenInvalid) {
		d.t.Fatalf("refresh: %+v, %v; want ErrRefreshTokenInvalid", p, err)
	}
}

// sessions lists the live sessions of p's user, newest first.
func (d *domain) sessions(p *auth.Pair) []models.Session {
	d.t.Helper()
	list, err := d.svc.Sessions(d.ctx, d.principal(p))
	if err != nil {
		d.t.Fatal(err)
	}
	return list
}

func wantValidation(t *testing.T, err error, field string) {
	t.Helper()
	var v *auth.ValidationError
	if !errors.As(err, &v) || v.Field != field {
		t.Fatalf("err = %v, want a *ValidationError for %q", err, field)
	}
}
