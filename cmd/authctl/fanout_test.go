package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gqlauth/auth"
	"gqlauth/fanout"
	"gqlauth/internal/testdb"
	"gqlauth/password"
	"gqlauth/store"
	"gqlauth/token"
)

// With REDIS_URL, authctl's revocations reach a running instance through the Redis fan-out, not at
// its next database poll: the instance here polls once an hour (REVOCATION_POLL_INTERVAL cannot be
// set above 1s, so the instance is built with the option directly), yet refuses the access tokens
// of revoked sessions and of a deleted user right after the command returns.
func TestRevocationsReachRunningInstancesThroughRedis(t *testing.T) {
	redisURL := testdb.Redis(t)
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		env := map[string]string{"DATA_DIR": t.TempDir(), "DATABASE_URL": dsn, "REDIS_URL": redisURL, "LOG_LEVEL": "warn"}
		ctl(env, "correct horse battery\n", "user", "create", "-email", "alice@example.com").want(t, 0, "", "")

		// The running instance: its own pool, a revocation cache that stays fresh for an hour, and the
		// server's fan-out subscription.
		db, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		opts, err := redis.ParseURL(redisURL)
		if err != nil {
			t.Fatal(err)
		}
		client := redis.NewClient(opts)
		t.Cleanup(func() { _ = client.Close() })
		issuer, err := token.NewHS256Issuer(bytes.Repeat([]byte("k"), 32), token.Options{Issuer: "gqlauth", Audience: "gqlauth", TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := auth.NewService(db, issuer, auth.Options{
			RefreshTokenTTL: time.Hour, Password: password.Default, RevocationPollInterval: time.Hour,
			Broadcaster: fanout.NewRedis(client, fanout.Channel, slog.New(slog.DiscardHandler)), Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		t.Cleanup(cancel)
		svc.Start(runCtx)
		// Subscribing is asynchronous: publish a probe until the instance has heard one.
		for svc.BroadcastRevocations() == 0 {
			if err := client.Publish(ctx, fanout.Channel, "probe-"+t.Name()).Err(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}

		login := func() *auth.Pair {
			t.Helper()
			p, err := svc.Login(ctx, "alice@example.com", "correct horse battery", auth.Client{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.Authenticate(ctx, p.AccessToken); err != nil {
				t.Fatalf("before the command: %v", err)
			}
			return p
		}
		// refused waits for the instance to refuse p's access token, far less long than its poll.
		refused := func(p *auth.Pair, after string) {
			t.Helper()
			start := time.Now()
			for {
				_, err := svc.Authenticate(ctx, p.AccessToken)
				if errors.Is(err, auth.ErrSessionRevoked) {
					t.Logf("%s: refused %s after the command returned", after, time.Since(start).Round(time.Microsecond))
					return
				}
				if time.Since(start) > 5*time.Second {
					t.Fatalf("%s: the running instance still accepts the access token: %v", after, err)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}

		a, b := login(), login()
		received := svc.BroadcastRevocations()
		ctl(env, "", "user", "revoke-sessions", "-email", "alice@example.com").want(t, 0, "revoked 2 sessions of alice@example.com", "")
		refused(a, "revoke-sessions")
		refused(b, "revoke-sessions")
		// At least: other test processes may publish on the same channel meanwhile.
		if got := svc.BroadcastRevocations() - received; got < 2 {
			t.Fatalf("the instance received %d revoked ids, want 2", got)
		}

		c := login()
		ctl(env, "", "user", "delete", "-email", "alice@example.com").want(t, 0, "revoked its 1 sessions", "")
		refused(c, "delete")
	})
}
