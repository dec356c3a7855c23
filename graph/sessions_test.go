package graph_test

import (
	"strings"
	"testing"
	"time"

	"gqlauth/internal/testdb"
	"gqlauth/token"
)

const logoutQ = `mutation($t: String) { logout(refreshToken: $t) }`

func TestLogout(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, envOpt{})
		p := e.register("alice@example.com", pw)
		keep := e.login("alice@example.com", pw)

		r := e.post(logoutQ, map[string]any{"t": p.RefreshToken})
		wantOK(t, r)
		if string(r.Data["logout"]) != "true" {
			t.Fatalf("logout = %s", r.Raw)
		}
		wantCode(t, e.me(p.AccessToken), "UNAUTHENTICATED", "SESSION_REVOKED")
		wantCode(t, e.refresh(p.RefreshToken), "INVALID_REFRESH_TOKEN", "")
		wantOK(t, e.me(keep.AccessToken)) // only that session ends

		// Idempotent: the same token again is still true.
		r = e.post(logoutQ, map[string]any{"t": p.RefreshToken})
		wantOK(t, r)
		if string(r.Data["logout"]) != "true" {
			t.Fatalf("second logout = %s", r.Raw)
		}
		// A token that was never issued is an error.
		never, _, _ := token.NewRefreshToken()
		wantCode(t, e.post(logoutQ, map[string]any{"t": never}), "INVALID_REFRESH_TOKEN", "")
		wantCode(t, e.post(logoutQ, map[string]any{"t": "garbage"}), "INVALID_REFRESH_TOKEN", "")
		// No refresh token and no access token: nothing to log out.
		wantCode(t, e.post(logoutQ, nil), "INVALID_REFRESH_TOKEN", "")
		// A token of an expired session: true.
		old := e.login("alice@example.com", pw)
		e.clock.Advance(721 * time.Hour)
		r = e.post(logoutQ, map[string]any{"t": old.RefreshToken})
		wantOK(t, r)
		if string(r.Data["logout"]) != "true" {
			t.Fatalf("logout of expired session = %s", r.Raw)
		}
	})
}

func TestLogoutCurrentSession(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, envOpt{})
		p := e.register("alice@example.com", pw)
		keep := e.login("alice@example.com", pw)
		r := e.post(`mutation { logout }`, nil, bearer(p.AccessToken)...)
		wantOK(t, r)
		if string(r.Data["logout"]) != "true" {
			t.Fatalf("logout = %s", r.Raw)
		}
		wantCode(t, e.me(p.AccessToken), "UNAUTHENTICATED", "SESSION_REVOKED")
		wantCode(t, e.refresh(p.RefreshToken), "INVALID_REFRESH_TOKEN", "")
		wantOK(t, e.me(keep.AccessToken))
		// Again with the now-revoked access token: still true.
		r = e.post(`mutation { logout }`, nil, bearer(p.AccessToken)...)
		wantOK(t, r)
		// A garbage access token is not a session to log out.
		wantCode(t, e.post(`mutation { logout }`, nil, bearer("garbage")...), "UNAUTHENTICATED", "TOKEN_INVALID")
	})
}

func TestLogoutAll(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, envOpt{})
		a := e.register("alice@example.com", pw)
		b := e.login("alice@example.com", pw)
		c := e.login("alice@example.com", pw)
		bob := e.register("bob@example.com", pw)
		e.post(logoutQ, map[string]any{"t": c.RefreshToken}) // already revoked: not counted

		r := e.post(`mutation { logoutAll }`, nil, bearer(a.AccessToken)...)
		wantOK(t, r)
		if string(r.Data["logoutAll"]) != "2" {
			t.Fatalf("logoutAll = %s, want 2", r.Raw)
		}
		for _, p := range []pair{a, b, c} {
			wantCode(t, e.me(p.AccessToken), "UNAUTHENTICATED", "SESSION_REVOKED")
			wantCode(t, e.refresh(p.RefreshToken), "INVALID_REFRESH_TOKEN", "")
		}
		wantOK(t, e.me(bob.AccessToken))
		wantCode(t, e.post(`mutation { logoutAll }`, nil), "UNAUTHENTICATED", "TOKEN_MISSING")
	})
}

func TestSessionsAndRevokeSession(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, envOpt{})
		a := e.register("alice@example.com", pw)
		e.clock.Advance(time.Second)
		b := e.login("alice@example.com", pw, "User-Agent", "phone/1.0")
		e.clock.Advance(time.Second)
		gone := e.login("alice@example.com", pw)
		e.post(logoutQ, map[string]any{"t": gone.RefreshToken})
		bob := e.register("bob@example.com", pw)

		q := `{ sessions { id createdAt lastUsedAt expiresAt userAgent ip current } }`
		r := e.post(q, nil, bearer(a.AccessToken)...)
		wantOK(t, r)
		var list []struct {
			ID, CreatedAt, LastUsedAt, ExpiresAt string
			UserAgent, IP                        *string
			Current                              bool
		}
		r.decode(t, "sessions", &list)
		if len(list) != 2 {
			t.Fatalf("want the 2 live sessions, got %s", r.Raw)
		}
		// Newest first: b, then a (the current one).
		if list[0].Current || !list[1].Current {
			t.Fatalf("current flags wrong: %s", r.Raw)
		}
		if list[0].UserAgent == nil || *list[0].UserAgent != "phone/1.0" || list[0].IP == nil || *list[0].IP != "127.0.0.1" {
			t.Fatalf("user agent / ip not recorded: %s", r.Raw)
		}
		bID, aID := list[0].ID, list[1].ID

		var bobList []struct{ ID string }
		rb := e.post(`{ sessions { id } }`, nil, bearer(bob.AccessToken)...)
		rb.decode(t, "sessions", &bobList)

		rev := `mutation($id: ID!) { revokeSession(id: $id) }`
		for _, tc := range []struct {
			name, id, want string
		}{
			{"someone else's session", bobList[0].ID, "false"},
			{"unknown id", "no-such-session", "false"},
			{"own other session", bID, "true"},
			{"own session again (idempotent)", bID, "true"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.post(rev, map[string]any{"id": tc.id}, bearer(a.AccessToken)...)
				wantOK(t, r)
				if string(r.Data["revokeSession"]) != tc.want {
					t.Fatalf("revokeSession = %s, want %s", r.Raw, tc.want)
				}
			})
		}
		wantOK(t, e.me(bob.AccessToken)) // bob's session was not touched
		wantCode(t, e.me(b.AccessToken), "UNAUTHENTICATED", "SESSION_REVOKED")
		wantCode(t, e.refresh(b.RefreshToken), "INVALID_REFRESH_TOKEN", "")
		if n := sessionsOf(t, e, a.AccessToken); n != 1 {
			t.Fatalf("sessions after revoke = %d, want 1", n)
		}
		// Revoking the current session works too.
		r = e.post(rev, map[string]any{"id": aID}, bearer(a.AccessToken)...)
		wantOK(t, r)
		wantCode(t, e.me(a.AccessToken), "UNAUTHENTICATED", "SESSION_REVOKED")

		// Expired sessions are not listed.
		c := e.login("alice@example.com", pw)
		e.clock.Advance(719 * time.Hour)
		d := e.login("alice@example.com", pw)
		e.clock.Advance(2 * time.Hour)
		d = e.mustPair(e.refresh(d.RefreshToken), "refreshToken") // d's session is live; c's has expired
		if n := sessionsOf(t, e, d.AccessToken); n != 1 {
			t.Fatalf("sessions with one expired = %d, want 1", n)
		}
		_ = c
	})
}

func TestChangePassword(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, envOpt{})
		cur := e.register("alice@example.com", pw)
		other := e.login("alice@example.com", pw)
		bob := e.register("bob@example.com", pw)
		q := `mutation($i: ChangePasswordInput!) { changePassword(input: $i) { ` + payloadFields + ` } }`
		in := func(c, n string) map[string]any {
			return map[string]any{"i": map[string]any{"currentPassword": c, "newPassword": n}}
		}
		wantCode(t, e.post(q, in(pw, "new password 1")), "UNAUTHENTICATED", "TOKEN_MISSING")
		wantCode(t, e.post(q, in("wrong password", "new password 1"), bearer(cur.AccessToken)...), "INVALID_CREDENTIALS", "")
		r := e.post(q, in(pw, "short"), bearer(cur.AccessToken)...)
		wantCode(t, r, "BAD_USER_INPUT", "")
		if r.ext("field") != "newPassword" {
			t.Fatalf("field = %q", r.ext("field"))
		}
		wantOK(t, e.me(other.AccessToken)) // failures changed nothing

		r = e.post(q, in(pw, "new password 1"), bearer(cur.AccessToken)...)
		fresh := e.mustPair(r, "changePassword")
		// Every other session is revoked; this one stays usable and gets a fresh pair.
		wantCode(t, e.me(other.AccessToken), "UNAUTHENTICATED", "SESSION_REVOKED")
		wantCode(t, e.refresh(other.RefreshToken), "INVALID_REFRESH_TOKEN", "")
		wantOK(t, e.me(cur.AccessToken))
		wantOK(t, e.me(fresh.AccessToken))
		wantOK(t, e.me(bob.AccessToken))
		if sessionsOf(t, e, fresh.AccessToken) != 1 {
			t.Fatal("want only the current session left")
		}
		next := e.mustPair(e.refresh(fresh.RefreshToken), "refreshToken")
		wantOK(t, e.me(next.AccessToken))

		login := `mutation($i: LoginInput!) { login(input: $i) { accessToken } }`
		wantCode(t, e.post(login, map[string]any{"i": map[string]any{"email": "alice@example.com", "password": pw}}), "INVALID_CREDENTIALS", "")
		e.login("alice@example.com", "new password 1")
	})
}

// Headers may carry bytes that are not UTF-8; Postgres refuses those in text columns, so they must
// not turn a login into an internal error.
func TestUnusualUserAgent(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, envOpt{})
		e.register("alice@example.com", pw)
		long := strings.Repeat("é", 600)
		for _, ua := range []string{"agent \xff\xfe/1.0", long} {
			p := e.login("alice@example.com", pw, "User-Agent", ua)
			wantOK(t, e.refresh(p.RefreshToken, "User-Agent", ua))
		}
	})
}
