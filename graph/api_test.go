package graph_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
	"gqlauth/token"
)

const pw = "correct horse battery"

const regQ = `mutation($i: RegisterInput!) { register(input: $i) { accessToken refreshToken refreshTokenExpiresAt } }`

func TestRegisterLoginMe(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		reg := e.Register("  Alice@Example.COM ", pw)
		if reg.TokenType != "Bearer" || reg.ExpiresIn != 900 || reg.RefreshToken == "" || reg.AccessToken == "" {
			t.Fatalf("register payload: %+v", reg)
		}
		if reg.User.Email != "alice@example.com" || reg.User.Role != "USER" || reg.User.ID == "" {
			t.Fatalf("register user: %+v", reg.User)
		}
		for _, ts := range []string{reg.AccessTokenExpiresAt, reg.RefreshTokenExpiresAt, reg.User.CreatedAt} {
			if _, err := time.Parse(time.RFC3339, ts); err != nil {
				t.Fatalf("time %q is not RFC 3339: %v", ts, err)
			}
		}
		at, _ := time.Parse(time.RFC3339, reg.AccessTokenExpiresAt)
		if d := at.Sub(e.Clock.Now()); d < 899*time.Second || d > 901*time.Second {
			t.Fatalf("access token expires in %s, want 15m", d)
		}
		rt, _ := time.Parse(time.RFC3339, reg.RefreshTokenExpiresAt)
		if d := rt.Sub(e.Clock.Now()); d < 719*time.Hour || d > 721*time.Hour {
			t.Fatalf("refresh token expires in %s, want 720h", d)
		}

		r := e.Me(reg.AccessToken)
		apptest.WantOK(t, r)
		var me apptest.User
		r.Decode(t, "me", &me)
		if me != reg.User {
			t.Fatalf("me = %+v, want %+v", me, reg.User)
		}

		// E-mail is case-insensitive at login; every login is a new session.
		li := e.Login("ALICE@example.com", pw)
		if li.User.ID != reg.User.ID || li.RefreshToken == reg.RefreshToken {
			t.Fatalf("login payload: %+v", li)
		}
		apptest.WantOK(t, e.Me(li.AccessToken))
		var sessions []map[string]any
		s := e.Post(`{ sessions { id } }`, nil, apptest.Bearer(li.AccessToken)...)
		s.Decode(t, "sessions", &sessions)
		if len(sessions) != 2 {
			t.Fatalf("want 2 sessions after register+login, got %s", s.Raw)
		}
	})
}

func TestRegisterValidation(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		e.Register("taken@example.com", pw)
		reg := `mutation($i: RegisterInput!) { register(input: $i) { accessToken } }`
		for _, tc := range []struct {
			name, email, pw, code, field string
		}{
			{"empty email", "", pw, "BAD_USER_INPUT", "email"},
			{"no at", "alice.example.com", pw, "BAD_USER_INPUT", "email"},
			{"display name", "Alice <alice@example.com>", pw, "BAD_USER_INPUT", "email"},
			{"no domain dot", "alice@localhost", pw, "BAD_USER_INPUT", "email"},
			{"too long email", strings.Repeat("a", 250) + "@example.com", pw, "BAD_USER_INPUT", "email"},
			{"short password", "bob@example.com", "1234567", "BAD_USER_INPUT", "password"},
			{"long password", "bob@example.com", strings.Repeat("p", 257), "BAD_USER_INPUT", "password"},
			{"taken", "taken@example.com", pw, "EMAIL_TAKEN", ""},
			{"taken other case", "  TAKEN@Example.com", pw, "EMAIL_TAKEN", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.Post(reg, map[string]any{"i": map[string]any{"email": tc.email, "password": tc.pw}})
				apptest.WantCode(t, r, tc.code, "")
				if got := r.Ext("field"); got != tc.field {
					t.Fatalf("extensions.field = %q, want %q", got, tc.field)
				}
			})
		}
		// The bounds themselves are allowed: 8 and 256 characters (multi-byte characters count once).
		e.Register("eight@example.com", "12345678")
		e.Register("long@example.com", strings.Repeat("é", 256))
	})
}

func TestLoginInvalidCredentials(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		e.Register("alice@example.com", pw)
		login := `mutation($i: LoginInput!) { login(input: $i) { accessToken } }`
		wrong := e.Post(login, map[string]any{"i": map[string]any{"email": "alice@example.com", "password": "wrong password"}})
		unknown := e.Post(login, map[string]any{"i": map[string]any{"email": "nobody@example.com", "password": pw}})
		apptest.WantCode(t, wrong, "INVALID_CREDENTIALS", "")
		apptest.WantCode(t, unknown, "INVALID_CREDENTIALS", "")
		if wrong.Errors[0].Message != unknown.Errors[0].Message {
			t.Fatalf("messages differ, which reveals whether the account exists: %q vs %q", wrong.Errors[0].Message, unknown.Errors[0].Message)
		}
		if string(wrong.Data["login"]) != "" && string(wrong.Data["login"]) != "null" {
			t.Fatalf("data on failure: %s", wrong.Raw)
		}
		r := e.Post(login, map[string]any{"i": map[string]any{"email": "not-an-email", "password": pw}})
		apptest.WantCode(t, r, "BAD_USER_INPUT", "")
	})
}

func TestAuthDirective(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{Vars: map[string]string{"ACCESS_TOKEN_TTL": "1m"}})
		alice := e.Register("alice@example.com", pw)
		other := apptest.New(t, testdb.SQLite(t), apptest.Options{}) // a different signing key
		foreign := other.Register("mallory@example.com", pw)

		for _, tc := range []struct {
			name    string
			headers []string
			reason  string
		}{
			{"no header", nil, "TOKEN_MISSING"},
			{"empty bearer", []string{"Authorization", "Bearer "}, "TOKEN_MISSING"},
			{"garbage", apptest.Bearer("garbage"), "TOKEN_INVALID"},
			{"basic scheme", []string{"Authorization", "Basic YWxpY2U6cHc="}, "TOKEN_INVALID"},
			{"refresh token as bearer", apptest.Bearer(alice.RefreshToken), "TOKEN_INVALID"},
			{"other server's token", apptest.Bearer(foreign.AccessToken), "TOKEN_INVALID"},
			{"tampered", apptest.Bearer(alice.AccessToken[:len(alice.AccessToken)-4] + "AAAA"), "TOKEN_INVALID"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for _, q := range []string{`{ me { id } }`, `{ sessions { id } }`, `mutation { logoutAll }`} {
					apptest.WantCode(t, e.Post(q, nil, tc.headers...), "UNAUTHENTICATED", tc.reason)
				}
			})
		}
		// The scheme is case-insensitive (RFC 7235).
		apptest.WantOK(t, e.Post(`{ me { id } }`, nil, "Authorization", "bearer "+alice.AccessToken))

		t.Run("expired", func(t *testing.T) {
			e.Clock.Advance(61*time.Second + 5*time.Second) // past TTL and leeway
			apptest.WantCode(t, e.Me(alice.AccessToken), "UNAUTHENTICATED", "TOKEN_EXPIRED")
		})
	})
}

func TestAdminField(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		alice := e.Register("alice@example.com", pw)
		bob := e.Register("bob@example.com", pw)
		q := `query($id: ID!) { user(id: $id) { id email } }`
		apptest.WantCode(t, e.Post(q, map[string]any{"id": bob.User.ID}, apptest.Bearer(alice.AccessToken)...), "FORBIDDEN", "")
		apptest.WantCode(t, e.Post(q, map[string]any{"id": bob.User.ID}), "UNAUTHENTICATED", "TOKEN_MISSING")

		if err := e.App.Store.Gorm().Exec("UPDATE users SET role = 'ADMIN' WHERE id = ?", alice.User.ID).Error; err != nil {
			t.Fatal(err)
		}
		admin := e.Login("alice@example.com", pw) // the role travels in the access token
		if admin.User.Role != "ADMIN" {
			t.Fatalf("role = %s", admin.User.Role)
		}
		r := e.Post(q, map[string]any{"id": bob.User.ID}, apptest.Bearer(admin.AccessToken)...)
		apptest.WantOK(t, r)
		var got apptest.User
		r.Decode(t, "user", &got)
		if got.Email != "bob@example.com" {
			t.Fatalf("user = %s", r.Raw)
		}
		r = e.Post(q, map[string]any{"id": "no-such-user"}, apptest.Bearer(admin.AccessToken)...)
		apptest.WantOK(t, r)
		if string(r.Data["user"]) != "null" {
			t.Fatalf("unknown user: %s", r.Raw)
		}
	})
}

// Public fields must work whatever the Authorization header holds.
func TestPublicFieldsIgnoreAuthorizationHeader(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		expired := e.Register("alice@example.com", pw)
		e.Clock.Advance(16 * time.Minute)
		for name, h := range map[string][]string{
			"garbage": apptest.Bearer("garbage"), "basic": {"Authorization", "Basic x"}, "expired": apptest.Bearer(expired.AccessToken),
		} {
			t.Run(name, func(t *testing.T) {
				p := e.Login("alice@example.com", pw, h...)
				r := e.Refresh(p.RefreshToken, h...)
				apptest.WantOK(t, r)
				var next apptest.Pair
				r.Decode(t, "refreshToken", &next)
				r = e.Post(`mutation($i: RegisterInput!) { register(input: $i) { accessToken } }`,
					map[string]any{"i": map[string]any{"email": name + "@example.com", "password": pw}}, h...)
				apptest.WantOK(t, r)
				r = e.Post(`mutation($t: String) { logout(refreshToken: $t) }`, map[string]any{"t": next.RefreshToken}, h...)
				apptest.WantOK(t, r)
			})
		}
	})
}

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{}) // REFRESH_REUSE_GRACE defaults to 10s
		p0 := e.Register("alice@example.com", pw)

		e.Clock.Advance(time.Minute)
		r := e.Refresh(p0.RefreshToken, "User-Agent", "tab-1")
		p1 := e.MustPair(r, "refreshToken")
		if p1.RefreshToken == p0.RefreshToken || p1.AccessToken == p0.AccessToken || p1.User.ID != p0.User.ID {
			t.Fatalf("refresh did not rotate: %+v", p1)
		}
		apptest.WantOK(t, e.Me(p1.AccessToken))
		exp0, _ := time.Parse(time.RFC3339, p0.RefreshTokenExpiresAt)
		exp1, _ := time.Parse(time.RFC3339, p1.RefreshTokenExpiresAt)
		if exp1.Sub(exp0) != time.Minute {
			t.Fatalf("session expiry must slide with each refresh: %s then %s", exp0, exp1)
		}

		// Within the grace the old token still works (two tabs racing), in the same session.
		e.Clock.Advance(5 * time.Second)
		p1b := e.MustPair(e.Refresh(p0.RefreshToken), "refreshToken")
		if sessionsOf(t, e, p1b.AccessToken) != 1 {
			t.Fatal("a retry within the grace must not open a new session")
		}
		apptest.WantOK(t, e.Me(p1b.AccessToken))

		// p1 is the live token: chain on it.
		p2 := e.MustPair(e.Refresh(p1.RefreshToken), "refreshToken")

		// After the grace, presenting p0 again is reuse: the whole session is revoked.
		e.Clock.Advance(10 * time.Second)
		apptest.WantCode(t, e.Refresh(p0.RefreshToken), "INVALID_REFRESH_TOKEN", "")
		apptest.WantCode(t, e.Refresh(p2.RefreshToken), "INVALID_REFRESH_TOKEN", "")
		apptest.WantCode(t, e.Refresh(p1b.RefreshToken), "INVALID_REFRESH_TOKEN", "")
		apptest.WantCode(t, e.Me(p2.AccessToken), "UNAUTHENTICATED", "SESSION_REVOKED")
		apptest.WantCode(t, e.Me(p1b.AccessToken), "UNAUTHENTICATED", "SESSION_REVOKED")

		// Other sessions of the user are untouched.
		other := e.Login("alice@example.com", pw)
		apptest.WantOK(t, e.Me(other.AccessToken))
	})
}

func sessionsOf(t *testing.T, e *apptest.Env, access string) int {
	t.Helper()
	r := e.Post(`{ sessions { id } }`, nil, apptest.Bearer(access)...)
	apptest.WantOK(t, r)
	var list []map[string]any
	r.Decode(t, "sessions", &list)
	return len(list)
}

func TestRefreshInvalid(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{Vars: map[string]string{"REFRESH_TOKEN_TTL": "1h"}})
		p := e.Register("alice@example.com", pw)
		never, _, _ := token.NewRefreshToken()
		// Each value is sent as the variable itself: "no argument" is JSON null, not a string (it was
		// once fmt.Sprint(nil), the string "<nil>", which tested a garbage token a second time).
		q := `mutation($t: String) { refreshToken(refreshToken: $t) { accessToken } }`
		for name, v := range map[string]any{
			"no argument": nil, "empty": "", "garbage": "garbage", "never issued": never,
			"access token": p.AccessToken, "oversized": strings.Repeat("A", 10000), // within MAX_BODY_BYTES
		} {
			t.Run(name, func(t *testing.T) {
				apptest.WantCode(t, e.Post(q, map[string]any{"t": v}), "INVALID_REFRESH_TOKEN", "")
			})
		}
		// The variable left out entirely, and the argument left out of the query.
		apptest.WantCode(t, e.Post(q, nil), "INVALID_REFRESH_TOKEN", "")
		apptest.WantCode(t, e.Post(`mutation { refreshToken { accessToken } }`, nil), "INVALID_REFRESH_TOKEN", "")

		// A session expires REFRESH_TOKEN_TTL after its last refresh.
		e.Clock.Advance(50 * time.Minute)
		p = e.MustPair(e.Refresh(p.RefreshToken), "refreshToken")
		e.Clock.Advance(50 * time.Minute) // 100 minutes after login, 50 after the last refresh
		p = e.MustPair(e.Refresh(p.RefreshToken), "refreshToken")
		e.Clock.Advance(61 * time.Minute)
		apptest.WantCode(t, e.Refresh(p.RefreshToken), "INVALID_REFRESH_TOKEN", "")
	})
}

// With grace 0, N simultaneous refreshes of one token give exactly one success (never two chains,
// and never none: the client must not be locked out) and never an internal error.
func TestConcurrentRefreshRace(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{Vars: map[string]string{"REFRESH_REUSE_GRACE": "0s"}})
		const n = 16
		for round := range 3 {
			p := e.Register(fmt.Sprintf("u%d@example.com", round), pw)
			results := apptest.Concurrently(n, func(int) apptest.Response { return e.Refresh(p.RefreshToken) })
			ok := 0
			for _, r := range results {
				switch r.Code() {
				case "":
					ok++
				case "INVALID_REFRESH_TOKEN":
				default:
					t.Fatalf("round %d: unexpected response %s", round, r.Raw)
				}
			}
			if ok != 1 {
				t.Fatalf("round %d: %d of %d concurrent refreshes of one token succeeded; want exactly 1", round, ok, n)
			}
		}
	})
}

// With the default grace, racing refreshes of one token (two tabs) all succeed within one session.
func TestConcurrentRefreshWithinGrace(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		p := e.Register("alice@example.com", pw)
		const n = 8
		var wg sync.WaitGroup
		results := make([]apptest.Response, n)
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); results[i] = e.Refresh(p.RefreshToken) }()
		}
		wg.Wait()
		for _, r := range results {
			apptest.WantOK(t, r)
			var next apptest.Pair
			r.Decode(t, "refreshToken", &next)
			apptest.WantOK(t, e.Me(next.AccessToken))
		}
		if got := sessionsOf(t, e, p.AccessToken); got != 1 {
			t.Fatalf("sessions = %d, want 1", got)
		}
	})
}
