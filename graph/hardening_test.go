package graph_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"

	"gqlauth/auth"
	"gqlauth/graph"
	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
	"gqlauth/internal/testlog"
	"gqlauth/models"
	"gqlauth/token"
)

const loginQ = `mutation($i: LoginInput!) { login(input: $i) { accessToken } }`

func loginVars(email, pw string) map[string]any {
	return map[string]any{"i": map[string]any{"email": email, "password": pw}}
}

// limiterBackends runs fn with the in-memory limiter and, when TEST_REDIS_URL is set (always on CI),
// with the Redis one. Redis counters outlive a test, so tests use e-mails and addresses unique to
// the run (uniq).
func limiterBackends(t *testing.T, fn func(t *testing.T, vars map[string]string)) {
	t.Run("memory", func(t *testing.T) { fn(t, map[string]string{}) })
	t.Run("redis", func(t *testing.T) {
		fn(t, map[string]string{"REDIS_URL": testdb.Redis(t)})
	})
}

// uniq makes e-mails and forwarded addresses unique per run, so Redis counters of earlier runs
// (which share one Redis) never interfere.
func uniq() string { return fmt.Sprintf("%x", time.Now().UnixNano()) }

// uniqSite is an IPv6 /48 unique to the run ("2001:xxxx:yyyy"): IPv6 clients are counted by /64 and
// /48, so addresses that differ only in their last groups share counters across runs.
func uniqSite() string {
	u := fmt.Sprintf("%016x", time.Now().UnixNano())
	return "2001:" + u[len(u)-8:len(u)-4] + ":" + u[len(u)-4:]
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	limiterBackends(t, func(t *testing.T, backend map[string]string) {
		e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: merge(backend, map[string]string{
			"LOGIN_RATE_LIMIT": "3/15m", "LOGIN_IP_RATE_LIMIT": "8/15m", "TRUSTED_PROXIES": "127.0.0.1",
		})})
		u, site := uniq(), uniqSite()
		// Each scenario comes from its own (forwarded) address, unique to this run.
		from := func(n int) []string {
			return []string{"X-Forwarded-For", fmt.Sprintf("%s:%d::1", site, n)}
		}
		alice := "alice-" + u + "@example.com"
		e.Register(alice, pw)

		// Three failures for alice from one address, then even the right password is refused.
		for range 3 {
			apptest.WantCode(t, e.Post(loginQ, loginVars(alice, "wrong password"), from(1)...), "INVALID_CREDENTIALS", "")
		}
		r := e.Post(loginQ, loginVars(alice, pw), from(1)...)
		apptest.WantCode(t, r, "RATE_LIMITED", "")
		if ra, _ := r.Errors[0].Extensions["retryAfter"].(float64); ra < 1 || ra > 900 {
			t.Fatalf("retryAfter = %v, want 1..900 seconds", r.Errors[0].Extensions["retryAfter"])
		}
		// The same account from another address is not blocked (the key is account+IP).
		e.Login(alice, pw, from(2)...)

		// Unknown e-mails are counted and limited exactly like known ones.
		ghost := "ghost-" + u + "@example.com"
		for range 3 {
			apptest.WantCode(t, e.Post(loginQ, loginVars(ghost, "wrong password"), from(3)...), "INVALID_CREDENTIALS", "")
		}
		apptest.WantCode(t, e.Post(loginQ, loginVars(ghost, "wrong password"), from(3)...), "RATE_LIMITED", "")

		// A success clears the account's failures.
		bob := "bob-" + u + "@example.com"
		e.Register(bob, pw)
		for range 2 {
			apptest.WantCode(t, e.Post(loginQ, loginVars(bob, "wrong password"), from(4)...), "INVALID_CREDENTIALS", "")
		}
		e.Login(bob, pw, from(4)...)
		for range 2 {
			apptest.WantCode(t, e.Post(loginQ, loginVars(bob, "wrong password"), from(4)...), "INVALID_CREDENTIALS", "")
		}
		e.Login(bob, pw, from(4)...)

		// Per IP across accounts: 8 failures on 8 different accounts, then every account is refused.
		for i := range 8 {
			apptest.WantCode(t, e.Post(loginQ, loginVars(fmt.Sprintf("spray%d-%s@example.com", i, u), "wrong password"), from(5)...), "INVALID_CREDENTIALS", "")
		}
		apptest.WantCode(t, e.Post(loginQ, loginVars(bob, pw), from(5)...), "RATE_LIMITED", "")
		e.Login(bob, pw, from(6)...) // another address is fine
	})
}

func TestLoginRateLimitWindowEnds(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"LOGIN_RATE_LIMIT": "2/1m"}})
	e.Register("alice@example.com", pw)
	for range 2 {
		apptest.WantCode(t, e.Post(loginQ, loginVars("alice@example.com", "wrong password")), "INVALID_CREDENTIALS", "")
	}
	apptest.WantCode(t, e.Post(loginQ, loginVars("alice@example.com", pw)), "RATE_LIMITED", "")
	e.Clock.Advance(61 * time.Second)
	e.Login("alice@example.com", pw)
}

// Aliases, fragments and batches cannot pack several credential checks into one request.
func TestOneCredentialFieldPerRequest(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"LOGIN_RATE_LIMIT": "3/15m"}})
	e.Register("alice@example.com", pw)
	var aliases strings.Builder
	aliases.WriteString("mutation {")
	for i := range 50 {
		fmt.Fprintf(&aliases, ` a%d: login(input: {email: "alice@example.com", password: "guess %d"}) { accessToken }`, i, i)
	}
	aliases.WriteString(" }")
	for name, q := range map[string]string{
		"50 aliases": aliases.String(),
		"login and register": `mutation { login(input: {email: "a@example.com", password: "x"}) { accessToken }
			register(input: {email: "b@example.com", password: "password1"}) { accessToken } }`,
		"through fragments": `mutation { ...A ...B } fragment A on Mutation { login(input: {email: "alice@example.com", password: "g1"}) { accessToken } }
			fragment B on Mutation { x: login(input: {email: "alice@example.com", password: "g2"}) { accessToken } }`,
		"refresh twice":       `mutation { a: refreshToken(refreshToken: "x") { accessToken } b: refreshToken(refreshToken: "y") { accessToken } }`,
		"reset and verify":    `mutation { resetPassword(input: {token: "x", newPassword: "password1"}) { accessToken } verifyEmail(token: "y") { id } }`,
		"change e-mail twice": `mutation { a: changeEmail(input: {newEmail: "a@example.com", currentPassword: "g1"}) b: changeEmail(input: {newEmail: "b@example.com", currentPassword: "g2"}) }`,
		"MFA codes":           `mutation { a: verifyMfa(challenge: "c", code: "000000") { accessToken } b: verifyMfa(challenge: "c", code: "000001") { accessToken } }`,
		"reauthenticate":      `mutation { a: reauthenticate(password: "g1") { accessToken } b: reauthenticate(password: "g2") { accessToken } }`,
		"TOTP management":     `mutation { disableTotp(code: "000000") regenerateRecoveryCodes(code: "000001") }`,
		"passkey ceremonies":  `mutation { a: beginPasskeyLogin { challengeId } b: beginPasskeyLogin { challengeId } }`,
		"passkey and login":   `mutation { finishPasskeyLogin(challengeId: "x", credential: {}) { accessToken } login(input: {email: "a@example.com", password: "x"}) { accessToken } }`,
	} {
		t.Run(name, func(t *testing.T) {
			r := e.Post(q, nil)
			apptest.WantCode(t, r, "BAD_REQUEST", "")
			if !strings.Contains(r.Errors[0].Message, "only one of login") {
				t.Fatalf("unclear message: %q", r.Errors[0].Message)
			}
		})
	}
	// Refused operations counted no attempt: all three failures are still available.
	for range 3 {
		apptest.WantCode(t, e.Post(loginQ, loginVars("alice@example.com", "wrong password")), "INVALID_CREDENTIALS", "")
	}
	// A JSON array batch is refused as a whole, and the body (with its passwords) is not echoed.
	batch := `[{"query":"mutation { login(input: {email: \"alice@example.com\", password: \"secret-guess-1\"}) { accessToken } }"},
		{"query":"mutation { login(input: {email: \"alice@example.com\", password: \"secret-guess-2\"}) { accessToken } }"}]`
	res, err := http.Post(e.Server.URL+"/graphql", "application/json", strings.NewReader("  \n"+batch))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(raw), `"BAD_REQUEST"`) || strings.Contains(string(raw), "secret-guess") {
		t.Fatalf("batch: status %d, body %s", res.StatusCode, raw)
	}
	// Malformed JSON is not echoed either.
	res, _ = http.Post(e.Server.URL+"/graphql", "application/json", strings.NewReader(`{"query":"x", "password":"secret-guess-3"`))
	raw, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if strings.Contains(string(raw), "secret-guess") || !strings.Contains(string(raw), `"code"`) {
		t.Fatalf("malformed JSON: %s", raw)
	}
}

func TestRegisterRateLimit(t *testing.T) {
	t.Parallel()
	limiterBackends(t, func(t *testing.T, backend map[string]string) {
		e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: merge(backend, map[string]string{"REGISTER_RATE_LIMIT": "2/1h", "TRUSTED_PROXIES": "127.0.0.0/8"})})
		u := uniq()
		xff := []string{"X-Forwarded-For", uniqSite() + "::1"}
		reg := `mutation($i: RegisterInput!) { register(input: $i) { accessToken } }`
		for i := range 2 {
			apptest.WantOK(t, e.Post(reg, map[string]any{"i": map[string]any{"email": fmt.Sprintf("r%d-%s@example.com", i, u), "password": pw}}, xff...))
		}
		r := e.Post(reg, map[string]any{"i": map[string]any{"email": "r3-" + u + "@example.com", "password": pw}}, xff...)
		apptest.WantCode(t, r, "RATE_LIMITED", "")
	})
}

func TestQueryLimits(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	// Introspection is the only deep shape in this schema.
	deep := "{ __schema { types { fields { type " + strings.Repeat("{ ofType ", 14) + "{ name }" + strings.Repeat(" }", 14) + " } } } }"
	apptest.WantCode(t, e.Post(deep, nil), "DEPTH_LIMIT_EXCEEDED", "")
	// GraphiQL's own introspection query stays within the default depth.
	ok := "{ __schema { types { fields { type " + strings.Repeat("{ ofType ", 8) + "{ name }" + strings.Repeat(" }", 8) + " } } } }"
	apptest.WantOK(t, e.Post(ok, nil))

	var wide strings.Builder
	wide.WriteString("{")
	for i := range 150 {
		fmt.Fprintf(&wide, " a%d: me { id }", i) // introspection fields cost nothing; ours cost 1 each
	}
	wide.WriteString(" }")
	apptest.WantCode(t, e.Post(wide.String(), nil), "COMPLEXITY_LIMIT_EXCEEDED", "")

	tight := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"MAX_QUERY_DEPTH": "2", "MAX_QUERY_COMPLEXITY": "5"}})
	r := tight.Post(`mutation($i: RegisterInput!) { register(input: $i) { accessToken } }`,
		map[string]any{"i": map[string]any{"email": "alice@example.com", "password": pw}})
	apptest.WantOK(t, r) // depth 2
	apptest.WantCode(t, tight.Post(`mutation($i: LoginInput!) { login(input: $i) { user { id } } }`, loginVars("alice@example.com", pw)), "DEPTH_LIMIT_EXCEEDED", "")
	apptest.WantCode(t, tight.Post(`{ a: me { id } b: me { id } c: me { id } }`, nil), "COMPLEXITY_LIMIT_EXCEEDED", "")
}

// panicStore panics where a login reads the user: the server must answer INTERNAL_SERVER_ERROR
// and keep serving.
type panicStore struct{ auth.Store }

func (panicStore) UserByEmail(context.Context, string) (*models.User, error) {
	panic("boom: store exploded")
}

func TestResolverPanicIsRecovered(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	tokens, err := token.NewHS256Issuer([]byte(strings.Repeat("k", 32)), token.Options{Issuer: "i", Audience: "a", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := auth.NewService(panicStore{}, tokens, auth.Options{Password: apptest.CheapPassword, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	// The schema's server alone, with gqlgen's plain POST transport: recovery is graph's concern.
	srv := graph.New(svc, graph.Options{Logger: log})
	srv.AddTransport(transport.POST{})
	e := apptest.Serve(t, srv)
	for range 2 {
		r := e.Post(loginQ, loginVars("alice@example.com", pw))
		apptest.WantCode(t, r, "INTERNAL_SERVER_ERROR", "")
		if strings.Contains(r.Raw, "boom") {
			t.Fatalf("panic value leaked: %s", r.Raw)
		}
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Fatal("the panic is not in the log")
	}
}

// Logs never contain a token, a password or a password hash.
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		var logs testlog.Buffer
		e := apptest.New(t, dsn, apptest.Options{Vars: map[string]string{"REFRESH_REUSE_GRACE": "0s", "LOGIN_RATE_LIMIT": "2/1m"},
			Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		p := e.Register("alice@example.com", pw)
		q := e.MustPair(e.Refresh(p.RefreshToken), "refreshToken")
		e.Refresh(p.RefreshToken) // reuse: revokes the session, logged as a warning
		l := e.Login("alice@example.com", pw)
		e.Post(loginQ, loginVars("alice@example.com", "wrong password one"))
		e.Post(loginQ, loginVars("alice@example.com", "wrong password two"))
		e.Post(loginQ, loginVars("alice@example.com", "wrong password three")) // rate limited
		e.Post(`mutation($i: ChangePasswordInput!) { changePassword(input: $i) { accessToken } }`,
			map[string]any{"i": map[string]any{"currentPassword": "wrong current", "newPassword": "new password 9"}}, apptest.Bearer(l.AccessToken)...)
		e.Post(logoutQ, map[string]any{"t": l.RefreshToken})
		var hash string
		e.App.Store.Gorm().Raw("SELECT password_hash FROM users").Scan(&hash)
		e.App.Store.Gorm().Exec("DROP TABLE refresh_tokens") // force an internal error, which is logged
		e.Refresh(q.RefreshToken)

		out := logs.String()
		if !strings.Contains(out, "internal error") || !strings.Contains(out, "refresh_token_reuse") {
			t.Fatalf("expected log lines missing; got:\n%s", out)
		}
		for _, secret := range []string{pw, "wrong password one", "wrong current", "new password 9",
			p.RefreshToken, q.RefreshToken, l.RefreshToken, p.AccessToken, l.AccessToken, hash, "$argon2id$"} {
			if strings.Contains(out, secret) {
				t.Fatalf("log contains a secret (%.10s…):\n%s", secret, out)
			}
		}
	})
}
