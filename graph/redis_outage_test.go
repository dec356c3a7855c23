package graph_test

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"gqlauth/internal/apptest"
	"gqlauth/internal/tcpproxy"
	"gqlauth/internal/testdb"
	"gqlauth/internal/testlog"
)

// Redis goes away under two replicas that use it for rate-limit counters and the revocation fan-out,
// then comes back (the connection is cut by a proxy in front of the real Redis). While it is down no
// client sees an error caused by it: logins work, failed logins are still limited (in memory), and a
// revocation still reaches the other replica (by database polling); each part logs the switch once
// and reports it in gqlauth_dependency_degraded. Once Redis is back both parts use it again.
//
// Two ways of going away: "down" refuses connections and resets the open ones (Redis stopped or
// crashed); "hung" keeps connections open and lets nothing through (Redis stuck, or packets dropped),
// which only timeouts and the fan-out's PING can notice.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		down, up func(*tcpproxy.Proxy) error
	}{
		{"down", func(p *tcpproxy.Proxy) error { p.Cut(); return nil }, (*tcpproxy.Proxy).Restore},
		{"hung", func(p *tcpproxy.Proxy) error { p.Freeze(); return nil }, func(p *tcpproxy.Proxy) error { p.Thaw(); return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each has its own proxy, database schema and Redis key space
			checkRedisOutage(t, tc.down, tc.up)
		})
	}
}

func checkRedisOutage(t *testing.T, down, up func(*tcpproxy.Proxy) error) {
	redisURL, proxy := testdb.Proxied(t, testdb.Redis(t))
	dsn := testdb.Postgres(t)
	dir := t.TempDir()
	vars := map[string]string{"REDIS_URL": redisURL, "LOGIN_RATE_LIMIT": "3/1m", "LOGIN_IP_RATE_LIMIT": "off"}
	var logs testlog.Buffer
	a := apptest.New(t, dsn, apptest.Options{RealTime: true, DataDir: dir, Vars: vars, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	b := apptest.New(t, dsn, apptest.Options{RealTime: true, DataDir: dir, Vars: vars})
	email := "redis-outage-" + uniq() + "@example.com"
	a.Register(email, pw)
	waitFor(t, 5*time.Second, "b hears a's broadcasts", func() bool {
		p := a.Login(email, pw)
		apptest.WantOK(t, a.Post(logoutQ, map[string]any{"t": p.RefreshToken}))
		return b.App.Auth.BroadcastRevocations() > 0
	})

	_ = down(proxy)
	downAt := time.Now()
	// Logins keep working, and failed ones are still limited, now per replica in memory.
	apptest.WantOK(t, a.Post(loginQ, loginVars(email, pw)))
	if d := time.Since(downAt); d > 3*time.Second {
		t.Errorf("the first login without Redis took %s", d)
	}
	victim := "redis-victim-" + uniq() + "@example.com"
	for range 3 {
		apptest.WantCode(t, a.Post(loginQ, loginVars(victim, "wrong password!")), "INVALID_CREDENTIALS", "")
	}
	apptest.WantCode(t, a.Post(loginQ, loginVars(victim, "wrong password!")), "RATE_LIMITED", "")
	// A session revoked on a is refused by b through the database poll.
	p := b.Login(email, pw)
	apptest.WantOK(t, a.Post(logoutQ, map[string]any{"t": p.RefreshToken}))
	revokedAt := time.Now()
	waitFor(t, 3*time.Second, "b refuses the revoked session without Redis", func() bool {
		r := b.Me(p.AccessToken)
		return r.Ext("reason") == "SESSION_REVOKED"
	})
	byPolling := time.Since(revokedAt)
	waitFor(t, 8*time.Second, "both parts report the outage", func() bool {
		m := metrics(t, a)
		return strings.Contains(m, `gqlauth_dependency_degraded{component="ratelimit",dependency="redis"} 1`) &&
			strings.Contains(m, `gqlauth_dependency_degraded{component="revocation_fanout",dependency="redis"} 1`) &&
			// b publishes nothing meanwhile: only its subscription can tell it.
			strings.Contains(metrics(t, b), `gqlauth_dependency_degraded{component="revocation_fanout",dependency="redis"} 1`)
	})
	for _, line := range []string{"ratelimit: primary limiter failed", "revocation fan-out: Redis failed"} {
		if n := strings.Count(logs.String(), line); n != 1 {
			t.Errorf("%q logged %d times, want once", line, n)
		}
	}

	detected := time.Since(downAt)
	if err := up(proxy); err != nil {
		t.Fatal(err)
	}
	restoredAt := time.Now()
	// The limiter probes Redis again after its retry interval (5 s); the subscription within ~1 s.
	waitFor(t, 10*time.Second, "both parts use Redis again", func() bool {
		apptest.WantCode(t, a.Post(loginQ, loginVars("redis-probe-"+uniq()+"@example.com", "wrong password!")), "INVALID_CREDENTIALS", "")
		m := metrics(t, a)
		return strings.Contains(m, `gqlauth_dependency_degraded{component="ratelimit",dependency="redis"} 0`) &&
			strings.Contains(m, `gqlauth_dependency_degraded{component="revocation_fanout",dependency="redis"} 0`) &&
			strings.Contains(metrics(t, b), `gqlauth_dependency_degraded{component="revocation_fanout",dependency="redis"} 0`)
	})
	backOnRedis := time.Since(restoredAt)
	for _, line := range []string{"ratelimit: primary limiter recovered", "revocation fan-out: Redis works again"} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("no %q in the log", line)
		}
	}
	// Broadcasts flow again: b hears a's next revocation through Redis.
	// (Nothing is delivered while Redis is down, so any increase of b's count from here on is a
	// broadcast received after Redis came back; a revocation is sent until one arrives.)
	heard := b.App.Auth.BroadcastRevocations()
	waitFor(t, 5*time.Second, "b hears broadcasts again", func() bool {
		if b.App.Auth.BroadcastRevocations() > heard {
			return true
		}
		p := a.Login(email, pw)
		apptest.WantOK(t, a.Post(logoutQ, map[string]any{"t": p.RefreshToken}))
		return false
	})
	if !strings.Contains(metrics(t, a), `gqlauth_dependency_fallbacks_total{component="ratelimit",dependency="redis"} 1`) {
		t.Error("the switch to the fallback was not counted")
	}
	t.Logf("revocation reached the other replica by polling in %s; both parts reported the outage within %s; both back on Redis %s after it returned (limiter retry interval 5 s)",
		byPolling.Round(time.Millisecond), detected.Round(100*time.Millisecond), backOnRedis.Round(100*time.Millisecond))
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
	}
}

func metrics(t *testing.T, e *apptest.Env) string {
	t.Helper()
	res, err := http.Get(e.Server.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}
