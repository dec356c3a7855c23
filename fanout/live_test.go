package fanout_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gqlauth/auth"
	"gqlauth/auth/memstore"
	"gqlauth/fanout"
	"gqlauth/internal/testdb"
	"gqlauth/password"
	"gqlauth/token"
)

// Two instances on one store, each with its own Redis fan-out and polls that never run during the
// test: a login, a password change and revocations made on a reach b's watches through Redis alone,
// each once, and the watched session's revocation closes Revoked after its event.
func TestLiveEventsThroughRedis(t *testing.T) {
	opts, err := redis.ParseURL(testdb.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := token.NewEdDSAIssuer(key, token.Options{Issuer: "i", Audience: "a", TTL: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New()
	channel := "fanout-test:" + t.Name()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	newInstance := func() *auth.Service {
		client := redis.NewClient(opts)
		t.Cleanup(func() { _ = client.Close() })
		svc, err := auth.NewService(st, tokens, auth.Options{
			Password: password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
			Logger:   slog.New(slog.DiscardHandler), RevocationPollInterval: time.Hour, RefreshTokenTTL: time.Hour,
			Broadcaster: fanout.NewRedis(client, channel, slog.New(slog.DiscardHandler)),
		})
		if err != nil {
			t.Fatal(err)
		}
		svc.Start(ctx)
		return svc
	}
	a, b := newInstance(), newInstance()
	probe := redis.NewClient(opts)
	defer probe.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n, err := probe.PubSubNumSub(ctx, channel, fanout.EventsChannel(channel)).Result()
		if err == nil && n[channel] == 2 && n[fanout.EventsChannel(channel)] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("instances not subscribed: %v %v", n, err)
		}
	}

	const pw = "correct horse battery"
	p, err := a.Register(ctx, "alice@example.com", pw, auth.Client{})
	if err != nil {
		t.Fatal(err)
	}
	q, err := a.Login(ctx, "alice@example.com", pw, auth.Client{})
	if err != nil {
		t.Fatal(err)
	}
	principal := func(pair *auth.Pair) *auth.Principal {
		pr, err := a.Authenticate(ctx, pair.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		return pr
	}
	wp, wq := b.WatchSession(principal(p)), b.WatchSession(principal(q))
	defer wp.Stop()
	defer wq.Stop()
	next := func(w *auth.Watch) auth.SessionEvent {
		t.Helper()
		select {
		case e := <-w.Events():
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
		}
		return auth.SessionEvent{}
	}
	want := func(w *auth.Watch, typ auth.SessionEventType, session string) {
		t.Helper()
		if e := next(w); e.Type != typ || e.SessionID != session {
			t.Fatalf("event %s %s, want %s %s", e.Type, e.SessionID, typ, session)
		}
	}

	r, err := a.Login(ctx, "alice@example.com", pw, auth.Client{})
	if err != nil {
		t.Fatal(err)
	}
	want(wp, auth.SessionCreated, r.SessionID)
	want(wq, auth.SessionCreated, r.SessionID)
	if ok, err := a.RevokeSession(ctx, principal(p), r.SessionID); err != nil || !ok {
		t.Fatal(ok, err)
	}
	// Redis delivers in order: a second copy of the login would come before this.
	want(wp, auth.SessionRevoked, r.SessionID)
	want(wq, auth.SessionRevoked, r.SessionID)
	if _, err := a.ChangePassword(ctx, principal(p), pw, "a brand new password", auth.Client{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wq.Revoked():
	case <-time.After(10 * time.Second):
		t.Fatal("q's watch not revoked through Redis")
	}
	want(wq, auth.SessionRevoked, q.SessionID) // queued before Revoked closed
	want(wp, auth.SessionRevoked, q.SessionID)
	want(wp, auth.PasswordChanged, p.SessionID)
	if e := next(wq); e.Type != auth.PasswordChanged {
		t.Fatalf("q's watch: %s, want PASSWORD_CHANGED", e.Type)
	}
	if n := b.BroadcastRevocations(); n != 2 {
		t.Fatalf("b received %d revoked ids through Redis, want 2", n)
	}
}
