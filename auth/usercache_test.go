package auth_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/internal/testdb"
	"gqlauth/models"
)

// `me` reads through a cache that lives at most a few seconds and never holds the password hash.
func TestMeCache(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	svc, db := newTestService(t, testdb.SQLite(t), auth.Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	p, err := svc.Register(ctx, "alice@example.com", "alice password", auth.Client{})
	if err != nil {
		t.Fatal(err)
	}
	me := &auth.Principal{UserID: p.User.ID, SessionID: p.SessionID, Role: models.RoleUser}
	u, err := svc.Me(ctx, me)
	if err != nil || u.Email != "alice@example.com" {
		t.Fatalf("Me = %+v, %v", u, err)
	}
	if err := db.SetRole(ctx, p.User.ID, models.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	u, _ = svc.Me(ctx, me)
	if u.Role != models.RoleUser || u.PasswordHash != "" {
		t.Fatalf("cached Me = role %s, hash %q; want the cached USER and no hash", u.Role, u.PasswordHash)
	}
	now = now.Add(6 * time.Second)
	if u, _ = svc.Me(ctx, me); u.Role != models.RoleAdmin {
		t.Fatalf("Me after the cache TTL = role %s, want ADMIN", u.Role)
	}
}

// Building a service starts no goroutine (tests build hundreds): golang-lru's expirable.LRU would
// start a cleanup goroutine per cache that can never be stopped; the user cache is a plain LRU.
func TestServicesStartNoGoroutine(t *testing.T) {
	dsn := testdb.SQLite(t)
	for range 16 {
		svc, _ := newTestService(t, dsn, auth.Options{})
		if _, err := svc.Me(context.Background(), &auth.Principal{UserID: "00000000-0000-0000-0000-000000000000"}); !errors.Is(err, auth.ErrSessionRevoked) {
			t.Fatalf("Me of nobody: %v", err)
		}
	}
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "golang-lru") {
		t.Fatalf("a cache goroutine is running:\n%s", stacks)
	}
}
