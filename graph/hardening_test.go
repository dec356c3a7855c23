package graph_test

import (
	"bytes"
	"context"
	"fmt"
	"gqlauth/internal/testlog"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/graph"
	"gqlauth/internal/testdb"
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
	limiterBackends(t, func(t *testing.T, backend map[string]string) {
		e := newEnv(t, testdb.SQLite(t), envOpt{vars: merge(backend, map[string]string{
			"LOGIN_RATE_LIMIT": "3/15m", "LOGIN_IP_RATE_LIMIT": "8/15m", "TRUSTED_PROXIES": "127.0.0.1",
		})})
		u, site := uniq(), uniqSite()
		// Each scenario comes from its own (forwarded) address, unique to this run.
		from := func(n int) []string {
			return []string{"X-Forwarded-For", fmt.Sprintf("%s:%d::1", site, n)}
		}
		alice := "alice-" + u + "@example.com"
		e.register(alice, pw)

		// Three failures for alice from one address, then even the right password is refused.
		for range 3 {
			wantCode(t, e.post(loginQ, loginVars(alice, "wrong password"), from(1)...), "INVALID_CREDENTIALS", "")
		}
		r := e.post(loginQ, loginVars(alice, pw), from(1)...)
		wantCode(t, r, "RATE_LIMITED", "")
		if ra, _ := r.Errors[0].Extensions["retryAfter"].(float64); ra < 1 || ra > 900 {
			t.Fatalf("retryAfter = %v, want 1..900 seconds", r.Errors[0].Extensions["retryAfter"])
		}
		// The same account from another address is not blocked (the key is account+IP).
		e.login(alice, pw, from(2)...)

		// Unknown e-mails are counted and limited exactly like known ones.
		ghost := "ghost-" + u + "@example.com"
		for range 3 {
			wantCode(t, e.post(loginQ, loginVars(ghost, "wrong password"), from(3)...), "INVALID_CREDENTIALS", "")
		}
		wantCode(t, e.post(loginQ, loginVars(ghost, "wrong password"), from(3)...), "RATE_LIMITED", "")

		// A success clears the account's failures.
		bob := "bob-" + u + "@example.com"
		e.register(bob, pw)
		for range 2 {
			wantCode(t, e.post(loginQ, loginVars(bob, "wrong password"), from(4)...), "INVALID_CREDENTIALS", "")
		}
		e.login(bob, pw, from(4)...)
		for range 2 {
			wantCode(t, e.post(loginQ, loginVars(bob, "wrong password"), from(4)...), "INVALID_CREDENTIALS", "")
		}
		e.login(bob, pw, from(4)...)

		// Per IP across accounts: 8 failures on 8 different accounts, then every account is refused.
		for i := range 8 {
			wantCode(t, e.post(loginQ, loginVars(fmt.Sprintf("spray%d-%s@example.com", i, u), "wrong password"), from(5)...), "INVALID_CREDENTIALS", "")
		}
		wantCode(t, e.post(loginQ, loginVars(bob, pw), from(5)...), "RATE_LIMITED", "")
		e.login(bob, pw, from(6)...) // another address is fine
	})
}

func TestLoginRateLimitWindowEnds(t *testing.T) {
	e := newEnv(t, testdb.SQLite(t), envOpt{vars: map[string]string{"LOGIN_RATE_LIMIT": "2/1m"}})
	e.register("alice@example.com", pw)
	for range 2 {
		wantCode(t, e.post(loginQ, loginVars("alice@example.com", "wrong password")), "INVALID_CREDENTIALS", "")
	}
	wantCode(t, e.post(loginQ, loginVars("alice@example.com", pw)), "RATE_LIMITED", "")
	e.clock.Advance(61 * time.Second)
	e.login("alice@example.com", pw)
}

// Aliases, fragments and batches cannot pack several credential checks into one request.
func TestOneCredentialFieldPerRequest(t *testing.T) {
	e := newEnv(t, testdb.SQLite(t), envOpt{vars: map[string]string{"LOGIN_RATE_LIMIT": "3/15m"}})
	e.register("alice@example.com", pw)
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
		"refresh twice": `mutation { a: refreshToken(refreshToken: "x") { accessToken } b: refreshToken(refreshToken: "y") { accessToken } }`,
	} {
		t.Run(name, func(t *testing.T) {
			r := e.post(q, nil)
			wantCode(t, r, "BAD_REQUEST", "")
			if !strings.Contains(r.Errors[0].Message, "only one of login") {
				t.Fatalf("unclear message: %q", r.Errors[0].Message)
			}
		})
	}
	// Refused operations counted no attempt: all three failures are still available.
	for range 3 {
		wantCode(t, e.post(loginQ, loginVars("alice@example.com", "wrong password")), "INVALID_CREDENTIALS", "")
	}
	// A JSON array batch is refused as a whole, and the body (with its passwords) is not echoed.
	batch := `[{"query":"mutation { login(input: {email: \"alice@example.com\", password: \"secret-guess-1\"}) { accessToken } }"},
		{"query":"mutation { login(input: {email: \"alice@example.com\", password: \"secret-guess-2\"}) { accessToken } }"}]`
	res, err := http.Post(e.srv.URL+"/graphql", "application/json", strings.NewReader("  \n"+batch))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 400 || !strings.Contains(string(raw), `"BAD_REQUEST"`) || strings.Contains(string(raw), "secret-guess") {
		t.Fatalf("batch: status %d, body %s", res.StatusCode, raw)
	}
	// Malformed JSON is not echoed either.
	res, _ = http.Post(e.srv.URL+"/graphql", "application/json", strings.NewReader(`{"query":"x", "password":"secret-guess-3"`))
	raw, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if strings.Contains(string(raw), "secret-guess") || !strings.Contains(string(raw), `"code"`) {
		t.Fatalf("malformed JSON: %s", raw)
	}
}

func TestRegisterRateLimit(t *testing.T) {
	limiterBackends(t, func(t *testing.T, backend map[string]string) {
		e := newEnv(t, testdb.SQLite(t), envOpt{vars: merge(backend, map[string]string{"REGISTER_RATE_LIMIT": "2/1h", "TRUSTED_PROXIES": "127.0.0.0/8"})})
		u := uniq()
		xff := []string{"X-Forwarded-For", uniqSite() + "::1"}
		reg := `mutation($i: RegisterInput!) { register(input: $i) { accessToken } }`
		for i := range 2 {
			wantOK(t, e.post(reg, map[string]any{"i": map[string]any{"email": fmt.Sprintf("r%d-%s@example.com", i, u), "password": pw}}, xff...))
		}
		r := e.post(reg, map[string]any{"i": map[string]any{"email": "r3-" + u + "@example.com", "password": pw}}, xff...)
		wantCode(t, r, "RATE_LIMITED", "")
	})
}

// X-Forwarded-For is believed only from TRUSTED_PROXIES.
func TestClientIPFromTrustedProxiesOnly(t *testing.T) {
	q := `{ sessions { ip } }`
	ipOf := func(e *env, headers ...string) string {
		e.clock.Advance(time.Second) // so the newest session is listed first
		p := e.login("alice@example.com", pw, headers...)
		r := e.post(q, nil, bearer(p.AccessToken)...)
		var list []struct{ IP string }
		r.decode(t, "sessions", &list)
		return list[0].IP // newest first
	}
	plain := newEnv(t, testdb.SQLite(t), envOpt{})
	plain.register("alice@example.com", pw)
	if got := ipOf(plain, "X-Forwarded-For", "203.0.113.9"); got != "127.0.0.1" {
		t.Fatalf("untrusted X-Forwarded-For was believed: ip = %s", got)
	}
	proxied := newEnv(t, testdb.SQLite(t), envOpt{vars: map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32, 10.0.0.0/8"}})
	proxied.register("alice@example.com", pw)
	for _, tc := range []struct{ xff, want string }{
		{"203.0.113.9", "203.0.113.9"},
		{"198.51.100.1, 203.0.113.9", "203.0.113.9"}, // the client can prepend anything; the last untrusted hop counts
		{"203.0.113.9, 10.1.2.3", "203.0.113.9"},     // skip our own proxies
		{"garbage, 203.0.113.9", "203.0.113.9"},
		{"", "127.0.0.1"},
	} {
		if got := ipOf(proxied, "X-Forwarded-For", tc.xff); got != tc.want {
			t.Errorf("X-Forwarded-For %q: ip = %s, want %s", tc.xff, got, tc.want)
		}
	}
}

func TestQueryLimits(t *testing.T) {
	e := newEnv(t, testdb.SQLite(t), envOpt{})
	// Introspection is the only deep shape in this schema.
	deep := "{ __schema { types { fields { type " + strings.Repeat("{ ofType ", 14) + "{ name }" + strings.Repeat(" }", 14) + " } } } }"
	wantCode(t, e.post(deep, nil), "DEPTH_LIMIT_EXCEEDED", "")
	// GraphiQL's own introspection query stays within the default depth.
	ok := "{ __schema { types { fields { type " + strings.Repeat("{ ofType ", 8) + "{ name }" + strings.Repeat(" }", 8) + " } } } }"
	wantOK(t, e.post(ok, nil))

	var wide strings.Builder
	wide.WriteString("{")
	for i := range 150 {
		fmt.Fprintf(&wide, " a%d: me { id }", i) // introspection fields cost nothing; ours cost 1 each
	}
	wide.WriteString(" }")
	wantCode(t, e.post(wide.String(), nil), "COMPLEXITY_LIMIT_EXCEEDED", "")

	tight := newEnv(t, testdb.SQLite(t), envOpt{vars: map[string]string{"MAX_QUERY_DEPTH": "2", "MAX_QUERY_COMPLEXITY": "5"}})
	r := tight.post(`mutation($i: RegisterInput!) { register(input: $i) { accessToken } }`,
		map[string]any{"i": map[string]any{"email": "alice@example.com", "password": pw}})
	wantOK(t, r) // depth 2
	wantCode(t, tight.post(`mutation($i: LoginInput!) { login(input: $i) { user { id } } }`, loginVars("alice@example.com", pw)), "DEPTH_LIMIT_EXCEEDED", "")
	wantCode(t, tight.post(`{ a: me { id } b: me { id } c: me { id } }`, nil), "COMPLEXITY_LIMIT_EXCEEDED", "")
}

// Bodies over MAX_BODY_BYTES get a clean 413 with a code, whether or not Content-Length is sent.
func TestBodyLimit(t *testing.T) {
	e := newEnv(t, testdb.SQLite(t), envOpt{vars: map[string]string{"MAX_BODY_BYTES": "4096"}})
	big := `{"query":"{ __typename }","variables":{"pad":"` + strings.Repeat("x", 8000) + `"}}`
	for name, body := range map[string]io.Reader{
		"content-length": strings.NewReader(big),
		"chunked":        io.MultiReader(strings.NewReader(big)), // unknown length: sent chunked
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.srv.URL+"/graphql", body)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(raw), `"PAYLOAD_TOO_LARGE"`) {
				t.Fatalf("status %d: %s", res.StatusCode, raw)
			}
		})
	}
	wantOK(t, e.post(`{ __typename }`, nil))
}

// panicStore panics where a login reads the user: the server must answer INTERNAL_SERVER_ERROR
// and keep serving.
type panicStore struct{ auth.Store }

func (panicStore) UserByEmail(context.Context, string) (*models.User, error) {
	panic("boom: store exploded")
}

func TestResolverPanicIsRecovered(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	tokens, err := token.NewHS256Issuer([]byte(strings.Repeat("k", 32)), token.Options{Issuer: "i", Audience: "a", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := auth.NewService(panicStore{}, tokens, auth.Options{Password: cheap, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h, err := graph.NewHandler(svc, graph.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	e := &env{t: t, srv: &server{URL: srv.URL, close: srv.Close}}
	for range 2 {
		r := e.post(loginQ, loginVars("alice@example.com", pw))
		wantCode(t, r, "INTERNAL_SERVER_ERROR", "")
		if strings.Contains(r.Raw, "boom") {
			t.Fatalf("panic value leaked: %s", r.Raw)
		}
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Fatal("the panic is not in the log")
	}
}

// stallStore never answers: a database that hangs.
type stallStore struct{ auth.Store }

func (stallStore) UserByEmail(ctx context.Context, _ string) (*models.User, error) {
	<-ctx.Done()
	return nil, fmt.Errorf("query: %w", ctx.Err())
}

// A stalled database fails the request at REQUEST_TIMEOUT instead of hanging it.
func TestRequestTimeout(t *testing.T) {
	tokens, err := token.NewHS256Issuer([]byte(strings.Repeat("k", 32)), token.Options{Issuer: "i", Audience: "a", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := auth.NewService(stallStore{}, tokens, auth.Options{Password: cheap, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	h, err := graph.NewHandler(svc, graph.Options{Logger: discardLogger(), RequestTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	e := &env{t: t, srv: &server{URL: srv.URL, close: srv.Close}}
	start := time.Now()
	r := e.post(loginQ, loginVars("alice@example.com", pw))
	wantCode(t, r, "SERVICE_UNAVAILABLE", "")
	if !strings.Contains(r.Errors[0].Message, "timed out") {
		t.Fatalf("message: %q", r.Errors[0].Message)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the request hung for %s", d)
	}
}

// Logs never contain a token, a password or a password hash.
func TestNoSecretsInLogs(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		var logs testlog.Buffer
		e := newEnv(t, dsn, envOpt{vars: map[string]string{"REFRESH_REUSE_GRACE": "0s", "LOGIN_RATE_LIMIT": "2/1m"},
			logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		p := e.register("alice@example.com", pw)
		q := e.mustPair(e.refresh(p.RefreshToken), "refreshToken")
		e.refresh(p.RefreshToken) // reuse: revokes the session, logged as a warning
		l := e.login("alice@example.com", pw)
		e.post(loginQ, loginVars("alice@example.com", "wrong password one"))
		e.post(loginQ, loginVars("alice@example.com", "wrong password two"))
		e.post(loginQ, loginVars("alice@example.com", "wrong password three")) // rate limited
		e.post(`mutation($i: ChangePasswordInput!) { changePassword(input: $i) { accessToken } }`,
			map[string]any{"i": map[string]any{"currentPassword": "wrong current", "newPassword": "new password 9"}}, bearer(l.AccessToken)...)
		e.post(logoutQ, map[string]any{"t": l.RefreshToken})
		var hash string
		e.app.Store.Gorm().Raw("SELECT password_hash FROM users").Scan(&hash)
		e.app.Store.Gorm().Exec("DROP TABLE refresh_tokens") // force an internal error, which is logged
		e.refresh(q.RefreshToken)

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
