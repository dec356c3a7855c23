package graph_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
)

// Regression tests for the rate-limit holes of issue 11 (items 6 and 7): an IPv6 host owns a whole
// /64; an account was only limited per address; successful logins and sessions were unlimited.

const changePasswordQ = `mutation($i: ChangePasswordInput!) { changePassword(input: $i) { accessToken } }`

func xff(addr string) []string { return []string{"X-Forwarded-For", addr} }

// 40 wrong guesses from 40 addresses of one /64 were all checked. Now the /64 is one client, and a
// /48 gets eight clients' worth.
func TestIPv6ClientsAreCountedByPrefix(t *testing.T) {
	t.Parallel()
	limiterBackends(t, func(t *testing.T, backend map[string]string) {
		e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: merge(backend, map[string]string{
			"LOGIN_IP_RATE_LIMIT": "5/15m", "LOGIN_RATE_LIMIT": "3/15m", "REGISTER_RATE_LIMIT": "3/1h", "TRUSTED_PROXIES": "127.0.0.1",
		})})
		u, site := uniq(), uniqSite()

		t.Run("one /64", func(t *testing.T) {
			for i := range 8 {
				r := e.Post(loginQ, loginVars(fmt.Sprintf("ghost%d-%s@example.com", i, u), "wrong password"), xff(fmt.Sprintf("%s:1::%x", site, i+1))...)
				want := "INVALID_CREDENTIALS"
				if i >= 5 {
					want = "RATE_LIMITED"
				}
				apptest.WantCode(t, r, want, "")
			}
		})
		t.Run("one /48", func(t *testing.T) {
			// 8 × 5 = 40 failures from 40 different /64s of the /48 (one already failed 5 times above).
			refused := 0
			for i := range 45 {
				r := e.Post(loginQ, loginVars(fmt.Sprintf("net%d-%s@example.com", i, u), "wrong password"), xff(fmt.Sprintf("%s:%x::1", site, 0x100+i))...)
				if r.Code() == "RATE_LIMITED" {
					refused++
				}
			}
			if refused != 10 { // 5 (above) + 35 allowed here, then 10 refused
				t.Fatalf("%d of 45 refused from one /48; want 10", refused)
			}
		})
		t.Run("registrations", func(t *testing.T) {
			reg := `mutation($i: RegisterInput!) { register(input: $i) { accessToken } }`
			other := uniqSite()
			for i := range 4 {
				r := e.Post(reg, map[string]any{"i": map[string]any{"email": fmt.Sprintf("reg%d-%s@example.com", i, u), "password": pw}},
					xff(fmt.Sprintf("%s:7::%x", other, i+1))...)
				if i < 3 {
					apptest.WantOK(t, r)
				} else {
					apptest.WantCode(t, r, "RATE_LIMITED", "")
				}
			}
		})
		t.Run("changePassword guesses", func(t *testing.T) {
			other := uniqSite()
			alice := "alice-" + u + "@example.com"
			p := e.Register(alice, pw, xff(other+":8::1")...)
			for i := range 4 {
				r := e.Post(changePasswordQ, map[string]any{"i": map[string]any{"currentPassword": "guess " + fmt.Sprint(i), "newPassword": "a new password"}},
					append(apptest.Bearer(p.AccessToken), xff(fmt.Sprintf("%s:9::%x", other, i+1))...)...)
				if i < 3 {
					apptest.WantCode(t, r, "INVALID_CREDENTIALS", "")
				} else {
					apptest.WantCode(t, r, "RATE_LIMITED", "")
				}
			}
		})
	})
}

// Failures for one account from many addresses stayed under every per-address limit. Past
// LOGIN_ACCOUNT_RATE_LIMIT, each further failure makes the account wait, growing from 1 s; wrong
// currentPassword guesses count too; a success clears the count.
func TestAccountBackOffAcrossAddresses(t *testing.T) {
	t.Parallel()
	limiterBackends(t, func(t *testing.T, backend map[string]string) {
		e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: merge(backend, map[string]string{
			"LOGIN_ACCOUNT_RATE_LIMIT": "3/1h", "TRUSTED_PROXIES": "127.0.0.1",
		})})
		_, redis := backend["REDIS_URL"]
		wait := func(d time.Duration) { // the memory limiter runs on the fake clock, Redis on real time
			if redis {
				time.Sleep(d)
			} else {
				e.Clock.Advance(d)
			}
		}
		u, site := uniq(), uniqSite()
		addr := 0
		from := func() []string { addr++; return xff(fmt.Sprintf("%s:%x::1", site, addr)) }
		carol := "carol-" + u + "@example.com"
		p := e.Register(carol, pw, xff(site+":ffff::1")...)

		for range 2 {
			apptest.WantCode(t, e.Post(loginQ, loginVars(carol, "wrong password"), from()...), "INVALID_CREDENTIALS", "")
		}
		// The third failure is a wrong currentPassword: the same budget.
		apptest.WantCode(t, e.Post(changePasswordQ, map[string]any{"i": map[string]any{"currentPassword": "wrong", "newPassword": "a new password"}},
			append(apptest.Bearer(p.AccessToken), from()...)...), "INVALID_CREDENTIALS", "")
		apptest.WantCode(t, e.Post(loginQ, loginVars(carol, "wrong password"), from()...), "INVALID_CREDENTIALS", "") // 4th: over, wait 1 s
		r := e.Post(loginQ, loginVars(carol, pw), from()...)
		apptest.WantCode(t, r, "RATE_LIMITED", "") // even the right password, from a fresh address
		if ra, _ := r.Errors[0].Extensions["retryAfter"].(float64); ra != 1 {
			t.Fatalf("retryAfter = %v, want 1", r.Errors[0].Extensions["retryAfter"])
		}
		wait(1100 * time.Millisecond)
		apptest.WantCode(t, e.Post(loginQ, loginVars(carol, "wrong password"), from()...), "INVALID_CREDENTIALS", "") // 5th: wait 2 s
		r = e.Post(loginQ, loginVars(carol, pw), from()...)
		if ra, _ := r.Errors[0].Extensions["retryAfter"].(float64); r.Code() != "RATE_LIMITED" || ra != 2 {
			t.Fatalf("after the fifth failure: %s; want RATE_LIMITED with retryAfter 2", r.Raw)
		}
		wait(2100 * time.Millisecond)
		e.Login(carol, pw, from()...) // the owner gets in between waits, and that clears the count
		for range 3 {
			apptest.WantCode(t, e.Post(loginQ, loginVars(carol, "wrong password"), from()...), "INVALID_CREDENTIALS", "")
		}
		e.Login(carol, pw, from()...)
	})
}

// One address made 1,893 successful logins in 25 s (an argon2id hash and a session row each).
// Successes are now limited per address too (failures do not use up that budget).
func TestSuccessfulLoginsAreLimited(t *testing.T) {
	t.Parallel()
	limiterBackends(t, func(t *testing.T, backend map[string]string) {
		e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: merge(backend, map[string]string{
			"LOGIN_SUCCESS_RATE_LIMIT": "4/15m", "TRUSTED_PROXIES": "127.0.0.1",
		})})
		u, site := uniq(), uniqSite()
		dave := "dave-" + u + "@example.com"
		e.Register(dave, pw, xff(site+":ffff::1")...)
		here := xff(site + ":1::1")
		for i := range 4 {
			e.Login(dave, pw, here...)
			if i == 1 {
				apptest.WantCode(t, e.Post(loginQ, loginVars(dave, "wrong password"), here...), "INVALID_CREDENTIALS", "")
			}
		}
		apptest.WantCode(t, e.Post(loginQ, loginVars(dave, pw), here...), "RATE_LIMITED", "")
		e.Login(dave, pw, xff(site+":2::1")...) // another client
	})
}

// Live sessions per user were uncapped. Past MAX_SESSIONS_PER_USER a login ends the oldest.
func TestSessionsPerUserAreCapped(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{Vars: map[string]string{"MAX_SESSIONS_PER_USER": "3"}})
		pairs := []apptest.Pair{e.Register("erin@example.com", pw)}
		for range 4 {
			e.Clock.Advance(time.Second)
			pairs = append(pairs, e.Login("erin@example.com", pw))
		}
		newest := pairs[len(pairs)-1]
		if n := sessionsOf(t, e, newest.AccessToken); n != 3 {
			t.Fatalf("%d live sessions, want 3", n)
		}
		for i, p := range pairs {
			if i < 2 {
				apptest.WantCode(t, e.Me(p.AccessToken), "UNAUTHENTICATED", "SESSION_REVOKED")
				apptest.WantCode(t, e.Refresh(p.RefreshToken), "INVALID_REFRESH_TOKEN", "")
			} else {
				apptest.WantOK(t, e.Me(p.AccessToken))
			}
		}
		if strings.Contains(e.Post(`{ sessions { id } }`, nil, apptest.Bearer(pairs[0].AccessToken)...).Raw, `"id"`) {
			t.Fatal("an evicted session can still list sessions")
		}
	})
}
