package auth_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/models"
	"gqlauth/password"
	"gqlauth/ratelimit"
	"gqlauth/token"
)

// Logout, sessions, changePassword, the session cap and revocations across instances (ported from
// graph's sessions, abuse, system and replicas tests).

func TestLogout(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{})
		p := d.register("alice@example.com")
		keep := d.login("alice@example.com", pw)
		if err := d.svc.Logout(d.ctx, p.RefreshToken); err != nil {
			t.Fatal(err)
		}
		d.wantRevoked(p)
		d.wantAuth(d.svc, keep, nil) // only that session ends
		// Idempotent: the same token again succeeds.
		if err := d.svc.Logout(d.ctx, p.RefreshToken); err != nil {
			t.Fatalf("second logout: %v", err)
		}
		// A token that was never issued (or is not a token) is an error.
		never, _, _ := token.NewRefreshToken()
		for name, raw := range map[string]string{"never issued": never, "garbage": "garbage", "empty": "", "access token": keep.AccessToken} {
			if err := d.svc.Logout(d.ctx, raw); !errors.Is(err, auth.ErrRefreshTokenInvalid) {
				t.Fatalf("logout with %s: %v, want ErrRefreshTokenInvalid", name, err)
			}
		}
		// A rotated token still names its session.
		rotated := d.login("alice@example.com", pw)
		d.refresh(rotated.RefreshToken)
		if err := d.svc.Logout(d.ctx, rotated.RefreshToken); err != nil {
			t.Fatalf("logout with a rotated token: %v", err)
		}
		d.wantAuth(d.svc, rotated, auth.ErrSessionRevoked)
		// A token of an expired session: success.
		old := d.login("alice@example.com", pw)
		d.clock.Advance(721 * time.Hour)
		if err := d.svc.Logout(d.ctx, old.RefreshToken); err != nil {
			t.Fatalf("logout of an expired session: %v", err)
		}
	})
}

func TestLogoutCurrentSession(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{})
		p := d.register("alice@example.com")
		keep := d.login("alice@example.com", pw)
		pr := d.principal(p)
		if err := d.svc.LogoutSession(d.ctx, pr); err != nil {
			t.Fatal(err)
		}
		d.wantRevoked(p)
		d.wantAuth(d.svc, keep, nil)
		if err := d.svc.LogoutSession(d.ctx, pr); err != nil { // again: still fine
			t.Fatal(err)
		}
		// A principal names its own user's session only.
		if err := d.svc.LogoutSession(d.ctx, &auth.Principal{UserID: p.User.ID, SessionID: keep.SessionID}); err != nil {
			t.Fatal(err)
		}
		d.wantAuth(d.svc, keep, auth.ErrSessionRevoked)
		other := d.register("bob@example.com")
		if err := d.svc.LogoutSession(d.ctx, &auth.Principal{UserID: p.User.ID, SessionID: other.SessionID}); err != nil {
			t.Fatal(err)
		}
		d.wantAuth(d.svc, other, nil)
	})
}

func TestLogoutAll(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{})
		a := d.register("alice@example.com")
		b := d.login("alice@example.com", pw)
		c := d.login("alice@example.com", pw)
		bob := d.register("bob@example.com")
		if err := d.svc.Logout(d.ctx, c.RefreshToken); err != nil { // already revoked: not counted
			t.Fatal(err)
		}
		n, err := d.svc.LogoutAll(d.ctx, d.principal(a))
		if err != nil || n != 2 {
			t.Fatalf("logoutAll = %d, %v; want 2", n, err)
		}
		for _, p := range []*auth.Pair{a, b, c} {
			d.wantRevoked(p)
		}
		d.wantAuth(d.svc, bob, nil)
		if n, err := d.svc.LogoutAll(d.ctx, &auth.Principal{UserID: a.User.ID, SessionID: a.SessionID}); err != nil || n != 0 {
			t.Fatalf("logoutAll again = %d, %v; want 0", n, err)
		}
	})
}

func TestSessionsAndRevokeSession(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{})
		a := d.register("alice@example.com", auth.Client{IP: "192.0.2.1"})
		d.clock.Advance(time.Second)
		b := d.login("alice@example.com", pw, auth.Client{UserAgent: "phone/1.0", IP: "127.0.0.1"})
		d.clock.Advance(time.Second)
		gone := d.login("alice@example.com", pw)
		if err := d.svc.Logout(d.ctx, gone.RefreshToken); err != nil {
			t.Fatal(err)
		}
		bob := d.register("bob@example.com")

		list := d.sessions(a)
		if len(list) != 2 || list[0].ID != b.SessionID || list[1].ID != a.SessionID {
			t.Fatalf("sessions = %+v; want b then a, without the logged-out one", list)
		}
		if deref(list[0].UserAgent) != "phone/1.0" || deref(list[0].IP) != "127.0.0.1" || list[1].UserAgent != nil || deref(list[1].IP) != "192.0.2.1" {
			t.Fatalf("user agent / ip not recorded: %+v", list)
		}
		pa := d.principal(a)
		for _, tc := range []struct {
			name, id string
			want     bool
		}{
			{"someone else's session", bob.SessionID, false},
			{"unknown id", "no-such-session", false},
			{"own other session", b.SessionID, true},
			{"own session again (idempotent)", b.SessionID, true},
			{"own logged-out session", gone.SessionID, true},
		} {
			if got, err := d.svc.RevokeSession(d.ctx, pa, tc.id); err != nil || got != tc.want {
				t.Fatalf("%s: RevokeSession = %v, %v; want %v", tc.name, got, err, tc.want)
			}
		}
		d.wantAuth(d.svc, bob, nil) // bob's session was not touched
		d.wantRevoked(b)
		if n := len(d.sessions(a)); n != 1 {
			t.Fatalf("sessions after revoke = %d, want 1", n)
		}
		// Revoking the current session works too.
		if ok, err := d.svc.RevokeSession(d.ctx, pa, a.SessionID); err != nil || !ok {
			t.Fatalf("revoke the current session: %v, %v", ok, err)
		}
		d.wantAuth(d.svc, a, auth.ErrSessionRevoked)

		// Expired sessions are not listed.
		d.login("alice@example.com", pw)
		d.clock.Advance(719 * time.Hour)
		e := d.login("alice@example.com", pw)
		d.clock.Advance(2 * time.Hour)
		e = d.refresh(e.RefreshToken) // e's session is live; the other one has expired
		if n := len(d.sessions(e)); n != 1 {
			t.Fatalf("sessions with one expired = %d, want 1", n)
		}
	})
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{RefreshReuseGrace: 10 * time.Second})
		cur := d.register("alice@example.com")
		other := d.login("alice@example.com", pw)
		bob := d.register("bob@example.com")
		pc := d.principal(cur)
		if _, err := d.svc.ChangePassword(d.ctx, pc, "wrong password", "new password 1", auth.Client{}); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("wrong current password: %v", err)
		}
		_, err := d.svc.ChangePassword(d.ctx, pc, pw, "short", auth.Client{})
		wantValidation(t, err, "newPassword")
		d.wantAuth(d.svc, other, nil) // failures changed nothing

		fresh, err := d.svc.ChangePassword(d.ctx, pc, pw, "new password 1", auth.Client{})
		if err != nil {
			t.Fatal(err)
		}
		if fresh.SessionID != cur.SessionID {
			t.Fatal("changePassword must keep the current session")
		}
		// Every other session is revoked; this one stays usable and gets a fresh pair.
		d.wantRevoked(other)
		d.wantAuth(d.svc, cur, nil)
		d.wantAuth(d.svc, fresh, nil)
		d.wantAuth(d.svc, bob, nil)
		if n := len(d.sessions(fresh)); n != 1 {
			t.Fatalf("%d sessions, want only the current one", n)
		}
		// The current session's earlier refresh token is revoked, not merely rotated: no grace.
		d.wantRefreshInvalid(cur.RefreshToken)
		d.wantAuth(d.svc, fresh, nil) // and presenting it was not reuse
		d.wantAuth(d.svc, d.refresh(fresh.RefreshToken), nil)

		if _, err := d.svc.Login(d.ctx, "alice@example.com", pw, auth.Client{}); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("the old password: %v", err)
		}
		d.login("alice@example.com", "new password 1")
		// The old current password no longer changes it.
		if _, err := d.svc.ChangePassword(d.ctx, pc, pw, "new password 2", auth.Client{}); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("change with the old password: %v", err)
		}
		// A revoked session cannot change the password.
		if err := d.svc.LogoutSession(d.ctx, pc); err != nil {
			t.Fatal(err)
		}
		if _, err := d.svc.ChangePassword(d.ctx, pc, "new password 1", "new password 3", auth.Client{}); !errors.Is(err, auth.ErrSessionRevoked) {
			t.Fatalf("change from a revoked session: %v, want ErrSessionRevoked", err)
		}
		d.login("alice@example.com", "new password 1") // and it changed nothing
	})
}

// Two changes racing with the same current password: exactly one wins, the other is told the
// credentials were wrong, and the winner's session is the only one left.
func TestConcurrentPasswordChanges(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{})
		for round := range 5 {
			email := "u" + string(rune('a'+round)) + "@example.com"
			a := d.register(email)
			b := d.login(email, pw)
			pairs := []*auth.Pair{a, b}
			principals := []*auth.Principal{d.principal(a), d.principal(b)}
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i, p := range principals {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = d.svc.ChangePassword(d.ctx, p, pw, "new password "+string(rune('a'+i)), auth.Client{})
				}()
			}
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil:
					if winner >= 0 {
						t.Fatalf("round %d: both changes won", round)
					}
					winner = i
				case !errors.Is(err, auth.ErrInvalidCredentials) && !errors.Is(err, auth.ErrSessionRevoked):
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if winner < 0 {
				t.Fatalf("round %d: neither change won (%v)", round, errs)
			}
			d.wantRevoked(pairs[1-winner])
			d.login(email, "new password "+string(rune('a'+winner)))
		}
	})
}

// Past MaxSessionsPerUser a login ends the oldest session.
func TestSessionsPerUserAreCapped(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		var events []auth.Event
		var mu sync.Mutex
		d := newDomain(t, st, auth.Options{MaxSessionsPerUser: 3, OnEvent: func(_ context.Context, e auth.Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}})
		pairs := []*auth.Pair{d.register("erin@example.com")}
		for range 4 {
			d.clock.Advance(time.Second)
			pairs = append(pairs, d.login("erin@example.com", pw))
		}
		newest := pairs[len(pairs)-1]
		if n := len(d.sessions(newest)); n != 3 {
			t.Fatalf("%d live sessions, want 3", n)
		}
		for i, p := range pairs {
			if i < 2 {
				d.wantRevoked(p)
			} else {
				d.wantAuth(d.svc, p, nil)
			}
		}
		mu.Lock()
		seen := slices.Clone(events)
		mu.Unlock()
		evicted := 0
		for _, e := range seen {
			if e.Kind == auth.EventLogin {
				evicted += e.Revoked
			}
		}
		if evicted != 2 {
			t.Fatalf("login events report %d evicted sessions, want 2", evicted)
		}
		// Another user is not affected by erin's cap.
		d.wantAuth(d.svc, d.register("frank@example.com"), nil)
	})
}

// A login racing a password change cannot keep a session opened with the old password (ported
// from races_test's TestPasswordChangeRacesLogins, on every store).
func TestPasswordChangeRacesLoginsOnEveryStore(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		// Hashing of a few milliseconds widens the window between a login's check and its insert.
		d := newDomain(t, st, auth.Options{Password: password.Params{Memory: 4 << 10, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
		for round := range 6 {
			email := "erin" + string(rune('a'+round)) + "@example.com"
			first := d.register(email)
			var wg sync.WaitGroup
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := d.svc.Login(d.ctx, email, pw, auth.Client{}); err != nil && !errors.Is(err, auth.ErrInvalidCredentials) {
						t.Errorf("login: %v", err)
					}
				}()
			}
			kept, err := d.svc.ChangePassword(d.ctx, d.principal(first), pw, "the new password", auth.Client{})
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if list := d.sessions(kept); len(list) != 1 || list[0].ID != first.SessionID {
				t.Fatalf("round %d: %d live sessions after the change; want only the one that changed the password", round, len(list))
			}
		}
	})
}

// Failed logins are limited per account and address, per address across accounts, and a success
// clears the account's count (ported from graph's TestLoginRateLimit, on the memory limiter).
func TestLoginRateLimits(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{})
		d.svc = d.replica(auth.Options{
			Limiter:   ratelimit.NewMemory(d.clock.Now),
			LoginRate: ratelimit.Rate{Limit: 3, Window: 15 * time.Minute}, LoginIPRate: ratelimit.Rate{Limit: 8, Window: 15 * time.Minute},
		})
		from := func(n int) auth.Client { return auth.Client{IP: "192.0.2." + string(rune('0'+n))} }
		login := func(email, password string, c auth.Client, want error) {
			t.Helper()
			if _, err := d.svc.Login(d.ctx, email, password, c); !errors.Is(err, want) || (want == nil && err != nil) {
				t.Fatalf("login %s from %s: %v, want %v", email, c.IP, err, want)
			}
		}
		d.register("alice@example.com")
		for range 3 {
			login("alice@example.com", "wrong password", from(1), auth.ErrInvalidCredentials)
		}
		_, err := d.svc.Login(d.ctx, "alice@example.com", pw, from(1))
		var rl *auth.RateLimitedError
		if !errors.As(err, &rl) || rl.RetryAfter < time.Second || rl.RetryAfter > 15*time.Minute {
			t.Fatalf("fourth attempt: %v, want RATE_LIMITED with a retry-after of 1 s to 15 min", err)
		}
		login("alice@example.com", pw, from(2), nil) // the key is account and address

		// Unknown e-mails are counted and limited exactly like known ones.
		for range 3 {
			login("ghost@example.com", "wrong password", from(3), auth.ErrInvalidCredentials)
		}
		login("ghost@example.com", "wrong password", from(3), auth.ErrRateLimited)

		// A success clears the account's failures.
		d.register("bob@example.com")
		for range 2 {
			for range 2 {
				login("bob@example.com", "wrong password", from(4), auth.ErrInvalidCredentials)
			}
			login("bob@example.com", pw, from(4), nil)
		}

		// Per address across accounts: 8 failures on 8 accounts, then every account is refused there.
		for i := range 8 {
			login("spray"+string(rune('a'+i))+"@example.com", "wrong password", from(5), auth.ErrInvalidCredentials)
		}
		login("bob@example.com", pw, from(5), auth.ErrRateLimited)
		login("bob@example.com", pw, from(6), nil)

		// The window ends.
		d.clock.Advance(15*time.Minute + time.Second)
		login("alice@example.com", pw, from(1), nil)
		login("bob@example.com", pw, from(5), nil)
	})
}

// Revocations reach another instance that shares the store: through the broadcaster at once, and
// through the store when its revocation cache cannot be trusted (the poller stalled). Until either,
// the other instance may accept a revoked session's access token for at most the poll interval and
// a second, which is the documented window.
func TestRevocationsAcrossInstances(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{})
		fan := newFakeBroadcaster()
		// The poll interval is a minute: of real time for the poller, which does not tick during the
		// test (if it did, it would only learn sooner what the store says), and of the fake clock for
		// the cache's freshness. So what b learns comes from its start-up sync, the broadcast, or the
		// store.
		a := d.replica(auth.Options{Broadcaster: fan, RevocationPollInterval: time.Minute})
		b := d.replica(auth.Options{Broadcaster: fan, RevocationPollInterval: time.Minute})
		d.svc = a
		p := d.register("alice@example.com")
		q := d.login("alice@example.com", pw)
		earlier := d.login("alice@example.com", pw)
		if err := a.Logout(d.ctx, earlier.RefreshToken); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(d.ctx)
		t.Cleanup(cancel)
		b.Start(ctx) // the start-up sync reads revocations already made
		d.wantAuth(b, earlier, auth.ErrSessionRevoked)
		d.wantAuth(b, p, nil)
		select {
		case <-fan.subscribed:
		case <-time.After(10 * time.Second):
			t.Fatal("b never subscribed to the broadcaster")
		}

		// Broadcast: b refuses the session as soon as a's logout returns.
		if err := a.Logout(d.ctx, p.RefreshToken); err != nil {
			t.Fatal(err)
		}
		d.wantAuth(a, p, auth.ErrSessionRevoked)
		d.wantAuth(b, p, auth.ErrSessionRevoked)
		if n := b.BroadcastRevocations(); n != 1 {
			t.Fatalf("b received %d revocations through the broadcaster, want 1", n)
		}
		d.wantAuth(b, q, nil) // other sessions unaffected

		// Without the broadcast (a third instance revokes without one), b's fresh cache may accept q
		// for the poll window; once the cache is older than the interval plus a second, b no longer
		// trusts it and asks the store, which refuses q.
		c := d.replica(auth.Options{})
		n, err := c.LogoutAll(d.ctx, d.principal(q))
		if err != nil || n != 1 {
			t.Fatalf("logoutAll on c = %d, %v", n, err)
		}
		d.clock.Advance(time.Minute + time.Second + time.Millisecond)
		d.wantAuth(b, q, auth.ErrSessionRevoked)
	})
}

// Me reads through a short cache, but never serves an account that is gone.
func TestMe(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{})
		p := d.register("alice@example.com")
		pr := d.principal(p)
		for range 2 {
			u, err := d.svc.Me(d.ctx, pr)
			if err != nil || u.ID != p.User.ID || u.Email != "alice@example.com" || u.Role != models.RoleUser {
				t.Fatalf("me = %+v, %v", u, err)
			}
		}
		if _, err := d.svc.Me(d.ctx, &auth.Principal{UserID: "00000000-0000-4000-8000-000000000000"}); !errors.Is(err, auth.ErrSessionRevoked) {
			t.Fatalf("me of an account that does not exist: %v, want ErrSessionRevoked", err)
		}
	})
}
