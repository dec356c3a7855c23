package auth_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"gqlauth/auth"
	"gqlauth/internal/testdb"
)

// Every authentication event reaches Options.OnEvent (metrics), with no secret in it.
func TestEventsReachObserver(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []auth.Event
	svc, _ := newTestService(t, testdb.SQLite(t), auth.Options{OnEvent: func(_ context.Context, e auth.Event) {
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	}})
	ctx := context.Background()
	c := auth.Client{IP: "192.0.2.1"}
	p, err := svc.Register(ctx, "alice@example.com", "alice password", c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Register(ctx, "alice@example.com", "alice password", c); !errors.Is(err, auth.ErrEmailTaken) {
		t.Fatal(err)
	}
	if _, err := svc.Login(ctx, "alice@example.com", "wrong password", c); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatal(err)
	}
	q, err := svc.Refresh(ctx, p.RefreshToken, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Logout(ctx, q.RefreshToken); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kind    auth.EventKind
		outcome string
		revoked int
	}{
		{auth.EventRegister, auth.OutcomeOK, 0}, {auth.EventRegister, auth.OutcomeFailed, 0},
		{auth.EventLogin, auth.OutcomeFailed, 0}, {auth.EventRefresh, auth.OutcomeOK, 0}, {auth.EventLogout, auth.OutcomeOK, 1},
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("events = %+v", got)
	}
	for i, w := range want {
		if got[i].Kind != w.kind || got[i].Outcome != w.outcome || got[i].Revoked != w.revoked {
			t.Errorf("event %d = %+v, want %v %s revoked=%d", i, got[i], w.kind, w.outcome, w.revoked)
		}
	}
}
