package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/internal/testdb"
	"gqlauth/token"
)

// FuzzRefresh feeds arbitrary refresh-token input to the service over a real SQLite store.
// Invariant: it never panics, and it either fails with ErrRefreshTokenInvalid or, for a token it
// issued, returns a complete new pair.
//
//	go test -run='^$' -fuzz=FuzzRefresh -fuzztime=1m ./auth/
func FuzzRefresh(f *testing.F) {
	ctx := context.Background()
	svc, _ := newTestService(f, testdb.SQLite(f), auth.Options{RefreshReuseGrace: time.Hour})
	p, err := svc.Register(ctx, "fuzz@example.com", "fuzz password", auth.Client{})
	if err != nil {
		f.Fatal(err)
	}
	never, _, _ := token.NewRefreshToken()
	for _, seed := range []string{
		p.RefreshToken, "", "garbage", never, p.AccessToken, p.RefreshToken + "=", p.RefreshToken[:42],
		strings.ToUpper(p.RefreshToken), strings.Repeat("A", 43), strings.Repeat("/", 43), "\x00" + p.RefreshToken[1:],
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := svc.Refresh(ctx, raw, auth.Client{UserAgent: raw, IP: raw})
		if err != nil {
			if !errors.Is(err, auth.ErrRefreshTokenInvalid) {
				t.Fatalf("Refresh(%q) = %v, want ErrRefreshTokenInvalid", raw, err)
			}
			return
		}
		if got.AccessToken == "" || got.RefreshToken == "" || got.RefreshToken == raw || got.User == nil {
			t.Fatalf("Refresh(%q) returned an incomplete pair: %+v", raw, got)
		}
	})
}
