package graph_test

import (
	"slices"
	"testing"
	"time"

	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
)

// Two instances on one Postgres and one Redis, as replicas run: a session revoked on one is refused
// by the other as soon as the Redis broadcast arrives, without waiting for the database poll.
func TestReplicasShareRevocationsThroughRedis(t *testing.T) {
	t.Parallel()
	url := testdb.Redis(t)
	dsn := testdb.Postgres(t)
	dir := t.TempDir() // one signing key for both, as replicas share one
	vars := map[string]string{"REDIS_URL": url}
	a := apptest.New(t, dsn, apptest.Options{RealTime: true, DataDir: dir, Vars: vars})
	b := apptest.New(t, dsn, apptest.Options{RealTime: true, DataDir: dir, Vars: vars})
	u := uniq()
	a.Register("replica-"+u+"@example.com", pw)

	// Subscriptions start in the background: wait until b hears a's broadcasts.
	for deadline := time.Now().Add(5 * time.Second); b.App.Auth.BroadcastRevocations() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("instance b never received a revocation through Redis")
		}
		p := a.Login("replica-"+u+"@example.com", pw)
		apptest.WantOK(t, a.Post(logoutQ, map[string]any{"t": p.RefreshToken}))
		time.Sleep(20 * time.Millisecond)
	}

	const rounds = 10
	var lat []time.Duration
	for i := range rounds {
		p := b.Login("replica-"+u+"@example.com", pw)
		apptest.WantOK(t, b.Me(p.AccessToken))
		before := b.App.Auth.BroadcastRevocations()
		apptest.WantOK(t, a.Post(logoutQ, map[string]any{"t": p.RefreshToken}))
		start := time.Now()
		for {
			r := b.Me(p.AccessToken)
			if r.Code() == "UNAUTHENTICATED" && r.Ext("reason") == "SESSION_REVOKED" {
				break
			}
			apptest.WantOK(t, r)
			if time.Since(start) > 2*time.Second {
				t.Fatalf("round %d: instance b still accepts a session revoked on a after 2s", i)
			}
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(start))
		// The revocation arrived through Redis, not (only) through the database poll.
		deadline := time.Now().Add(2 * time.Second)
		for b.App.Auth.BroadcastRevocations() == before && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if b.App.Auth.BroadcastRevocations() == before {
			t.Fatalf("round %d: no revocation received through Redis", i)
		}
	}
	slices.Sort(lat)
	t.Logf("revocation seen by the other instance after: p50 %s, max %s over %d rounds (polling alone: up to ~1s)",
		lat[rounds/2].Round(100*time.Microsecond), lat[rounds-1].Round(100*time.Microsecond), rounds)
}
