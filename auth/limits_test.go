package auth_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/internal/testdb"
	"gqlauth/ratelimit"
)

// keyRecorder is a limiter that remembers every key it was asked to count.
type keyRecorder struct {
	ratelimit.Limiter
	mu   sync.Mutex
	keys map[string]bool
}

func (r *keyRecorder) Hit(ctx context.Context, key string, rate ratelimit.Rate) (ratelimit.Result, error) {
	r.mu.Lock()
	r.keys[key] = true
	r.mu.Unlock()
	return r.Limiter.Hit(ctx, key, rate)
}

// The account key was created before the address was checked: one address grew the limiter by
// 130 MiB in 100 s while every answer was RATE_LIMITED. Once an address is over its budget, its
// requests now create no key at all.
func TestRefusedAddressesStoreNoAccountKeys(t *testing.T) {
	t.Parallel()
	rec := &keyRecorder{Limiter: ratelimit.NewMemory(nil), keys: map[string]bool{}}
	perAddress := ratelimit.Rate{Limit: 5, Window: time.Hour}
	svc, _ := newTestService(t, testdb.SQLite(t), auth.Options{
		Limiter: rec, LoginRate: ratelimit.Rate{Limit: 10, Window: time.Hour}, LoginIPRate: perAddress,
	})
	ctx, client := context.Background(), auth.Client{IP: "198.51.100.7"}
	for i := range 1000 {
		_, err := svc.Login(ctx, fmt.Sprintf("spray%d@example.com", i), "wrong password", client)
		want := auth.ErrInvalidCredentials
		if i >= 5 {
			want = auth.ErrRateLimited
		}
		if !errors.Is(err, want) {
			t.Fatalf("login %d: %v, want %v", i, err, want)
		}
	}
	if n := len(rec.keys); n > 20 {
		t.Fatalf("1000 logins from one refused address created %d limiter keys; want a handful (the address's and 5 accounts')", n)
	}
}
