package graph_test

import (
	"strings"
	"testing"
	"time"

	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
	"gqlauth/token"
)

const logoutQ = `mutation($t: String) { logout(refreshToken: $t) }`

func TestLogout(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		p := e.Register("alice@example.com", pw)
		keep := e.Login("alice@example.com", pw)

		r := e.Post(logoutQ, map[string]any{"t": p.RefreshToken})
		apptest.WantOK(t, r)
		if string(r.Data["logout"]) != "true" {
			t.Fatalf("logout = %s", r.Raw)
		}
		apptest.WantCode(t, e.Me(p.AccessToken), "UNAUTHENTICATED", "SESSION_REVOKED")
		apptest.WantCode(t, e.Refresh(p.RefreshToken), "INVALID_REFRESH_TOKEN", "")
		apptest.WantOK(t, e.Me(keep.AccessToken)) // only that session ends

		// Idempotent: the same token again is still true.
		r = e.Post(logoutQ, map[string]any{"t": p.RefreshToken})
		apptest.WantOK(t, r)
		if string(r.Data["logout"]) != "true" {
			t.Fatalf("second logout = %s", r.Raw)
		}
		// A token that was never issued is an error.
		never, _, _ := token.NewRefreshToken()
		apptest.WantCode(t, e.Post(logoutQ, map[string]any{"t": never}), "INVALID_REFRESH_TOKEN", "")
		apptest.WantCode(t, e.Post(logoutQ, map[string]any{"t": "garbage"}), "INVALID_REFRESH_TOKEN", "")
		// No refresh token and no access token: nothing to log out.
		apptest.WantCode(t, e.Post(logoutQ, nil), "INVALID_REFRESH_TOKEN", "")
		// A token of an expired session: true.
		old := e.Login("alice@example.com", pw)
		e.Clock.Advance(721 * time.Hour)
		r = e.Post(logoutQ, map[string]any{"t": old.RefreshToken})
		apptest.WantOK(t, r)
		if string(r.Data["logout"]) != "true" {
			t.Fatalf("logout of expired session = %s", r.Raw)
		}
	})
}

func TestLogoutCurrentSession(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		p := e.Register("alice@example.com", pw)
		keep := e.Login("alice@example.com", pw)
		r := e.Post(`mutation { logout }`, nil, apptest.Bearer(p.AccessToken)...)
		apptest.WantOK(t, r)
		if string(r.Data["logout"]) != "true" {
			t.Fatalf("logout = %s", r.Raw)
		}
		apptest.WantCode(t, e.Me(p.AccessToken), "UNAUTHENTICATED", "SESSION_REVOKED")
		apptest.WantCode(t, e.Refresh(p.RefreshToken), "INVALID_REFRESH_TOKEN", "")
		apptest.WantOK(t, e.Me(keep.AccessToken))
		// Again with the now-revoked access token: still true.
		r = e.Post(`mutation { logout }`, nil, apptest.Bearer(p.AccessToken)...)
		apptest.WantOK(t, r)
		// A garbage access token is not a session to log out.
		apptest.WantCode(t, e.Post(`mutation { logout }`, nil, apptest.Bearer("garbage")...), "UNAUTHENTICATED", "TOKEN_INVALID")
	})
}

func TestLogoutAll(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		a := e.Register("alice@example.com", pw)
		b := e.Login("alice@example.com", pw)
		c := e.Login("alice@example.com", pw)
		bob := e.Register("bob@example.com", pw)
		e.Post(logoutQ, map[string]any{"t": c.RefreshToken}) // already revoked: not counted

		r := e.Post(`mutation { logoutAll }`, nil, apptest.Bearer(a.AccessToken)...)
		apptest.WantOK(t, r)
		if string(r.Data["logoutAll"]) != "2" {
			t.Fatalf("logoutAll = %s, want 2", r.Raw)
		}
		for _, p := range []apptest.Pair{a, b, c} {
			apptest.WantCode(t, e.Me(p.AccessToken), "UNAUTHENTICATED", "SESSION_REVOKED")
			apptest.WantCode(t, e.Refresh(p.RefreshToken), "INVALID_REFRESH_TOKEN", "")
		}
		apptest.WantOK(t, e.Me(bob.AccessToken))
		apptest.WantCode(t, e.Post(`mutation { logoutAll }`, nil), "UNAUTHENTICATED", "TOKEN_MISSING")
	})
}

func TestSessionsAndRevokeSession(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		a := e.Register("alice@example.com", pw)
		e.Clock.Advance(time.Second)
		b := e.Login("alice@example.com", pw, "User-Agent", "phone/1.0")
		e.Clock.Advance(time.Second)
		gone := e.Login("alice@example.com", pw)
		e.Post(logoutQ, map[string]any{"t": gone.RefreshToken})
		bob := e.Register("bob@example.com", pw)

		q := `{ sessions { id createdAt lastUsedAt expiresAt userAgent ip current } }`
		r := e.Post(q, nil, apptest.Bearer(a.AccessToken)...)
		apptest.WantOK(t, r)
		var list []struct {
			ID, CreatedAt, LastUsedAt, ExpiresAt string
			UserAgent, IP                        *string
			Current                              bool
		}
		r.Decode(t, "sessions", &list)
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
		rb := e.Post(`{ sessions { id } }`, nil, apptest.Bearer(bob.AccessToken)...)
		rb.Decode(t, "sessions", &bobList)

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
				r := e.Post(rev, map[string]any{"id": tc.id}, apptest.Bearer(a.AccessToken)...)
				apptest.WantOK(t, r)
				if string(r.Data["revokeSession"]) != tc.want {
					t.Fatalf("revokeSession = %s, want %s", r.Raw, tc.want)
				}
			})
		}
		apptest.WantOK(t, e.Me(bob.AccessToken)) // bob's session was not touched
		apptest.WantCode(t, e.Me(b.AccessToken), "UNAUTHENTICATED", "SESSION_REVOKED")
		apptest.WantCode(t, e.Refresh(b.RefreshToken), "INVALID_REFRESH_TOKEN", "")
		if n := sessionsOf(t, e, a.AccessToken); n != 1 {
			t.Fatalf("sessions after revoke = %d, want 1", n)
		}
		// Revoking the current session works too.
		r = e.Post(rev, map[string]any{"id": aID}, apptest.Bearer(a.AccessToken)...)
		apptest.WantOK(t, r)
		apptest.WantCode(t, e.Me(a.AccessToken), "UNAUTHENTICATED", "SESSION_REVOKED")

		// Expired sessions are not listed.
		c := e.Login("alice@example.com", pw)
		e.Clock.Advance(719 * time.Hour)
		d := e.Login("alice@example.com", pw)
		e.Clock.Advance(2 * time.Hour)
		d = e.MustPair(e.Refresh(d.RefreshToken), "refreshToken") // d's session is live; c's has expired
		if n := sessionsOf(t, e, d.AccessToken); n != 1 {
			t.Fatalf("sessions with one expired = %d, want 1", n)
		}
		_ = c
	})
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		cur := e.Register("alice@example.com", pw)
		other := e.Login("alice@example.com", pw)
		bob := e.Register("bob@example.com", pw)
		q := `mutation($i: ChangePasswordInput!) { changePassword(input: $i) { ` + apptest.PayloadFields + ` } }`
		in := func(c, n string) map[string]any {
			return map[string]any{"i": map[string]any{"currentPassword": c, "newPassword": n}}
		}
		apptest.WantCode(t, e.Post(q, in(pw, "new password 1")), "UNAUTHENTICATED", "TOKEN_MISSING")
		apptest.WantCode(t, e.Post(q, in("wrong password", "new password 1"), apptest.Bearer(cur.AccessToken)...), "INVALID_CREDENTIALS", "")
		r := e.Post(q, in(pw, "short"), apptest.Bearer(cur.AccessToken)...)
		apptest.WantCode(t, r, "BAD_USER_INPUT", "")
		if r.Ext("field") != "newPassword" {
			t.Fatalf("field = %q", r.Ext("field"))
		}
		apptest.WantOK(t, e.Me(other.AccessToken)) // failures changed nothing

		r = e.Post(q, in(pw, "new password 1"), apptest.Bearer(cur.AccessToken)...)
		fresh := e.MustPair(r, "changePassword")
		// Every other session is revoked; this one stays usable and gets a fresh pair.
		apptest.WantCode(t, e.Me(other.AccessToken), "UNAUTHENTICATED", "SESSION_REVOKED")
		apptest.WantCode(t, e.Refresh(other.RefreshToken), "INVALID_REFRESH_TOKEN", "")
		apptest.WantOK(t, e.Me(cur.AccessToken))
		apptest.WantOK(t, e.Me(fresh.AccessToken))
		apptest.WantOK(t, e.Me(bob.AccessToken))
		if sessionsOf(t, e, fresh.AccessToken) != 1 {
			t.Fatal("want only the current session left")
		}
		next := e.MustPair(e.Refresh(fresh.RefreshToken), "refreshToken")
		apptest.WantOK(t, e.Me(next.AccessToken))

		login := `mutation($i: LoginInput!) { login(input: $i) { accessToken } }`
		apptest.WantCode(t, e.Post(login, map[string]any{"i": map[string]any{"email": "alice@example.com", "password": pw}}), "INVALID_CREDENTIALS", "")
		e.Login("alice@example.com", "new password 1")
	})
}

// Headers may carry bytes that are not UTF-8; Postgres refuses those in text columns, so they must
// not turn a login into an internal error.
func TestUnusualUserAgent(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		e.Register("alice@example.com", pw)
		long := strings.Repeat("é", 600)
		for _, ua := range []string{"agent \xff\xfe/1.0", long} {
			p := e.Login("alice@example.com", pw, "User-Agent", ua)
			apptest.WantOK(t, e.Refresh(p.RefreshToken, "User-Agent", ua))
		}
	})
}
