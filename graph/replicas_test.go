package graph_test

import (
	"slices"
	"testing"
	"time"

	"gqlauth/internal/testdb"
)

// Two instances on one Postgres and one Redis, as replicas run: a session revoked on one is refused
// by the other as soon as the Redis broadcast arrives, without waiting for the database poll.
func TestReplicasShareRevocationsThroughRedis(t *testing.T) {
	url := testdb.Redis(t)
	dsn := testdb.Postgres(t)
	dir := t.TempDir() // one signing key for both, as replicas share one
	vars := map[string]string{"REDIS_URL": url}
	a := newEnv(t, dsn, envOpt{realTime: true, dataDir: dir, vars: vars})
	b := newEnv(t, dsn, envOpt{realTime: true, dataDir: dir, vars: vars})
	u := uniq()
	a.register("replica-"+u+"@example.com", pw)

	// Subscriptions start in the background: wait until b hears a's broadcasts.
	for deadline := time.Now().Add(5 * time.Second); b.app.Auth.BroadcastRevocations() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("instance b never received a revocation through Redis")
		}
		p := a.login("replica-"+u+"@example.com", pw)
		wantOK(t, a.post(logoutQ, map[string]any{"t": p.RefreshToken}))
		time.Sleep(20 * time.Millisecond)
	}

	const rounds = 10
	var lat []time.Duration
	for i := range rounds {
		p := b.login("replica-"+u+"@example.com", pw)
		wantOK(t, b.me(p.AccessToken))
		before := b.app.Auth.BroadcastRevocations()
		wantOK(t, a.post(logoutQ, map[string]any{"t": p.RefreshToken}))
		start := time.Now()
		for {
			r := b.me(p.AccessToken)
			if r.code() == "UNAUTHENTICATED" && r.ext("reason") == "SESSION_REVOKED" {
				break
			}
			wantOK(t, r)
			if time.Since(start) > 2*time.Second {
				t.Fatalf("round %d: instance b still accepts a session revoked on a after 2s", i)
			}
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(start))
		// The revocation arrived through Redis, not (only) through the database poll.
		deadline := time.Now().Add(2 * time.Second)
		for b.app.Auth.BroadcastRevocations() == before && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if b.app.Auth.BroadcastRevocations() == before {
			t.Fatalf("round %d: no revocation received through Redis", i)
		}
	}
	slices.Sort(lat)
	t.Logf("revocation seen by the other instance after: p50 %s, max %s over %d rounds (polling alone: up to ~1s)",
		lat[rounds/2].Round(100*time.Microsecond), lat[rounds-1].Round(100*time.Microsecond), rounds)
}
