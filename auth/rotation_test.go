package auth_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/token"
)

// Refresh-token rotation, the reuse grace and reuse detection (ported from graph's api and
// concurrency tests).

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{RefreshReuseGrace: 10 * time.Second})
		p0 := d.register("alice@example.com")

		d.clock.Advance(time.Minute)
		p1 := d.refresh(p0.RefreshToken, auth.Client{UserAgent: "tab-1", IP: "192.0.2.9"})
		if p1.RefreshToken == p0.RefreshToken || p1.AccessToken == p0.AccessToken || p1.User.ID != p0.User.ID || p1.SessionID != p0.SessionID {
			t.Fatalf("refresh did not rotate within the session: %+v", p1)
		}
		d.wantAuth(d.svc, p1, nil)
		if got := p1.RefreshTokenExpiresAt.Sub(p0.RefreshTokenExpiresAt); got != time.Minute {
			t.Fatalf("the session's expiry must slide with each refresh: moved %s", got)
		}
		if s := d.sessions(p1)[0]; deref(s.UserAgent) != "tab-1" || deref(s.IP) != "192.0.2.9" || !s.LastUsedAt.Equal(d.clock.Now()) {
			t.Fatalf("the refresh's client was not recorded: %+v", s)
		}

		// Within the grace the old token still works (two tabs racing), in the same session.
		d.clock.Advance(5 * time.Second)
		p1b := d.refresh(p0.RefreshToken)
		if p1b.SessionID != p0.SessionID || len(d.sessions(p1b)) != 1 {
			t.Fatal("a retry within the grace must not open a new session")
		}
		d.wantAuth(d.svc, p1b, nil)

		// The retry retired p1: the session has one chain, p1b's.
		p2 := d.refresh(p1b.RefreshToken)

		// After the grace, presenting p0 again is reuse: the whole session is revoked.
		d.clock.Advance(10 * time.Second)
		d.wantRefreshInvalid(p0.RefreshToken)
		d.wantRevoked(p2)
		d.wantRevoked(p1b)
		d.wantRevoked(p1)

		// Other sessions of the user are untouched.
		d.wantAuth(d.svc, d.login("alice@example.com", pw), nil)
	})
}

// The grace is measured from the rotation: a retry at exactly the grace is already reuse.
func TestReuseGraceBoundary(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{RefreshReuseGrace: 10 * time.Second})
		p0 := d.register("alice@example.com")
		p1 := d.refresh(p0.RefreshToken)
		d.clock.Advance(10*time.Second - time.Microsecond)
		p1b := d.refresh(p0.RefreshToken) // just inside
		d.clock.Advance(time.Microsecond)
		d.wantRefreshInvalid(p0.RefreshToken) // at the grace: reuse
		d.wantRevoked(p1b)
		d.wantRevoked(p1)

		// With no grace, the first replay is reuse.
		d0 := newDomain(t, st, auth.Options{})
		q0 := d0.register("bob@example.com")
		q1 := d0.refresh(q0.RefreshToken)
		d0.wantRefreshInvalid(q0.RefreshToken)
		d0.wantRevoked(q1)
	})
}

func TestRefreshInvalid(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{RefreshTokenTTL: time.Hour, RefreshReuseGrace: 10 * time.Second})
		p := d.register("alice@example.com")
		never, _, err := token.NewRefreshToken()
		if err != nil {
			t.Fatal(err)
		}
		for name, raw := range map[string]string{
			"empty": "", "garbage": "garbage", "never issued": never, "access token": p.AccessToken,
			"oversized": strings.Repeat("A", 10000), "nul byte": p.RefreshToken[:10] + "\x00",
		} {
			if _, err := d.svc.Refresh(d.ctx, raw, auth.Client{}); !errors.Is(err, auth.ErrRefreshTokenInvalid) {
				t.Fatalf("%s: %v, want ErrRefreshTokenInvalid", name, err)
			}
		}
		// A session expires REFRESH_TOKEN_TTL after its last refresh.
		d.clock.Advance(50 * time.Minute)
		p = d.refresh(p.RefreshToken)
		d.clock.Advance(50 * time.Minute) // 100 minutes after login, 50 after the last refresh
		p = d.refresh(p.RefreshToken)
		d.clock.Advance(time.Hour) // exactly the TTL after the last refresh: expired
		d.wantRefreshInvalid(p.RefreshToken)
	})
}

// With no grace, N simultaneous refreshes of one token give exactly one new pair: never two (two
// chains), never none (the legitimate client locked out), and never an internal error.
func TestConcurrentRefreshExactlyOneWins(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{})
		const n = 16
		for round := range 10 {
			p := d.register("u" + string(rune('a'+round)) + "@example.com")
			pairs := make([]*auth.Pair, n)
			errs := make([]error, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					pairs[i], errs[i] = d.svc.Refresh(d.ctx, p.RefreshToken, auth.Client{})
				}()
			}
			close(start)
			wg.Wait()
			won := 0
			for i, err := range errs {
				switch {
				case err == nil:
					won++
					if pairs[i].SessionID != p.SessionID {
						t.Fatalf("round %d: the winner's pair is of another session", round)
					}
				case !errors.Is(err, auth.ErrRefreshTokenInvalid):
					t.Fatalf("round %d: refresh: %v", round, err)
				}
			}
			if won != 1 {
				t.Fatalf("round %d: %d of %d concurrent refreshes of one token succeeded, want exactly 1", round, won, n)
			}
		}
	})
}

// With a grace, racing refreshes of one token (two tabs) all succeed within one session, and the
// session keeps one chain: only the pair handed out last refreshes after the grace.
func TestConcurrentRefreshWithinGrace(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{RefreshReuseGrace: 10 * time.Second})
		p := d.register("alice@example.com")
		const n = 8
		pairs := make([]*auth.Pair, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); pairs[i], errs[i] = d.svc.Refresh(d.ctx, p.RefreshToken, auth.Client{}) }()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("refresh %d within the grace: %v", i, err)
			}
			d.wantAuth(d.svc, pairs[i], nil)
		}
		if got := len(d.sessions(p)); got != 1 {
			t.Fatalf("sessions = %d, want 1", got)
		}
		// One chain: of all the pairs handed out, exactly one refresh token is still exchangeable.
		if n := liveAmong(t, d, pairs); n != 1 {
			t.Fatalf("%d live refresh tokens in one session after racing refreshes, want 1", n)
		}
	})
}

// liveAmong counts the pairs whose refresh token is neither rotated nor revoked.
func liveAmong(t *testing.T, d *domain, pairs []*auth.Pair) int {
	t.Helper()
	n := 0
	for _, p := range pairs {
		h, _ := token.HashRefreshToken(p.RefreshToken)
		rt, err := d.st.RefreshTokenByHash(d.ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if rt.RotatedAt == nil && rt.RevokedAt == nil {
			n++
		}
	}
	return n
}
