package graph_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
)

// Postgres goes away under load and comes back (here the connection is cut by a proxy in front of the
// real server, so other tests sharing that server are not disturbed; TestPostgresRestart stops the
// real one). See checkDatabaseOutage for what must hold.
func TestDatabaseOutage(t *testing.T) {
	dsn, proxy := testdb.Proxied(t, testdb.Postgres(t))
	checkDatabaseOutage(t, dsn, proxy.Cut, func() {
		if err := proxy.Restore(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPostgresRestart stops the real Postgres server with pg_ctlcluster (fast shutdown: open
// connections are terminated) and starts it again. It runs only with OUTAGE_PGCTL=1, because stopping
// the server breaks every other test using it: .ci/run runs it alone, after the main test run. The
// server is started again even when the test fails.
func TestPostgresRestart(t *testing.T) {
	if os.Getenv("OUTAGE_PGCTL") != "1" {
		t.Skip("OUTAGE_PGCTL=1 not set: this test stops the shared Postgres server (see .ci/run)")
	}
	versions, _ := filepath.Glob("/etc/postgresql/*")
	if len(versions) != 1 {
		t.Fatalf("want one cluster under /etc/postgresql, found %v", versions)
	}
	pgctl := func(action string) {
		out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", filepath.Base(versions[0]), "main", action).CombinedOutput()
		if err != nil {
			t.Errorf("pg_ctlcluster %s: %v\n%s", action, err, out)
		}
	}
	dsn := testdb.Postgres(t)
	t.Cleanup(func() { // registered after testdb's cleanup, so it runs before the schema is dropped
		if exec.Command("pg_isready", "-h", "127.0.0.1", "-q").Run() != nil {
			pgctl("start")
		}
	})
	checkDatabaseOutage(t, dsn, func() { pgctl("stop") }, func() { pgctl("start") })
}

// checkDatabaseOutage runs a server on dsn with clients looping me and refresh chains, takes the
// database down with down, probes it, brings it back with up, and checks that:
//   - while it is down every request is answered within REQUEST_TIMEOUT, with data or
//     SERVICE_UNAVAILABLE (never a hang, a 5xx, INTERNAL_SERVER_ERROR or another code), and /readyz
//     answers 503;
//   - within 5 s of its return requests succeed again, with no restart;
//   - no session is lost or double-spent: each refresh chain's last token still refreshes, and the
//     token presented to a refresh that failed in the outage is the one that works afterwards.
func checkDatabaseOutage(t *testing.T, dsn string, down, up func()) {
	const requestTimeout = 3 * time.Second
	e := apptest.New(t, dsn, apptest.Options{RealTime: true, Vars: map[string]string{
		"REQUEST_TIMEOUT": requestTimeout.String(), "LOGIN_RATE_LIMIT": "off", "LOGIN_IP_RATE_LIMIT": "off",
	}})
	email := "outage-" + uniq() + "@example.com"
	owner := e.Register(email, pw)

	// Load: 4 clients loop me; 4 clients each follow a refresh chain of their own session.
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		problems []string
		codes    = map[string]int{}
		slowest  time.Duration
	)
	record := func(code string, d time.Duration, raw string, err error) {
		mu.Lock()
		defer mu.Unlock()
		codes[code]++
		slowest = max(slowest, d)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("transport error after %s: %v", d, err))
		case code != "OK" && code != "SERVICE_UNAVAILABLE":
			problems = append(problems, fmt.Sprintf("%s after %s: %s", code, d, raw))
		case d > requestTimeout+time.Second:
			problems = append(problems, fmt.Sprintf("answer took %s", d))
		}
	}
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				code, d, raw, err := rawPost(e, `{ me { id } }`, nil, owner.AccessToken)
				record(code, d, raw, err)
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	chains := make([]string, 4) // each chain's current refresh token, read after the load stops
	for i := range chains {
		chains[i] = e.Login(email, pw).RefreshToken
		wg.Go(func() {
			for !stop.Load() {
				code, d, raw, err := rawPost(e, `mutation($t: String) { refreshToken(refreshToken: $t) { refreshToken } }`, map[string]any{"t": chains[i]}, "")
				record(code, d, raw, err)
				if code == "OK" {
					var out struct {
						Data struct {
							RefreshToken struct{ RefreshToken string } `json:"refreshToken"`
						} `json:"data"`
					}
					_ = json.Unmarshal([]byte(raw), &out)
					chains[i] = out.Data.RefreshToken.RefreshToken
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	// The load runs before the outage: wait for answers rather than for a fixed time.
	okAnswers := func() int { mu.Lock(); defer mu.Unlock(); return codes["OK"] }
	waitFor(t, 10*time.Second, "the load is answered before the outage", func() bool { return okAnswers() >= 16 })

	held := e.Login(email, pw).RefreshToken // refreshed only during the outage
	down()
	downAt := time.Now()

	// Probes while the database is down: each answers quickly with SERVICE_UNAVAILABLE.
	probes := []struct {
		name, query string
		vars        map[string]any
	}{
		{"login", `mutation($i: LoginInput!) { login(input: $i) { accessToken } }`, loginVars(email, pw)},
		{"register", `mutation($i: RegisterInput!) { register(input: $i) { accessToken } }`, loginVars("outage-new-"+uniq()+"@example.com", pw)},
		{"refreshToken", `mutation($t: String) { refreshToken(refreshToken: $t) { refreshToken } }`, map[string]any{"t": held}},
	}
	for _, p := range probes {
		code, d, raw, err := rawPost(e, p.query, p.vars, "")
		if err != nil || code != "SERVICE_UNAVAILABLE" || d > requestTimeout+time.Second {
			t.Errorf("%s during the outage: %s after %s (%v): %s", p.name, code, d, err, raw)
		}
	}
	var readyz int
	for deadline := time.Now().Add(requestTimeout); readyz != http.StatusServiceUnavailable && time.Now().Before(deadline); {
		readyz = getStatus(e, "/readyz")
	}
	if readyz != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage: %d, want 503", readyz)
	}
	// me may be answered from the caches for a moment; after that it must fail too.
	var meUnavailableAfter time.Duration
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code, _, _, _ := rawPost(e, `{ me { id } }`, nil, owner.AccessToken); code == "SERVICE_UNAVAILABLE" {
			meUnavailableAfter = time.Since(downAt)
			break
		}
	}
	if meUnavailableAfter == 0 {
		t.Error("me kept answering for 10 s without a database")
	}
	time.Sleep(3*time.Second - time.Since(downAt)) // an outage of at least 3 s under load
	outage := time.Since(downAt)

	up()
	upAt := time.Now()
	var recovered time.Duration
	for deadline := upAt.Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if code, _, _, _ := rawPost(e, `mutation($i: LoginInput!) { login(input: $i) { accessToken } }`, loginVars(email, pw), ""); code == "OK" {
			recovered = time.Since(upAt)
			break
		}
	}
	if recovered == 0 {
		t.Fatal("requests still fail 5 s after the database came back")
	}
	if s := getStatus(e, "/readyz"); s != http.StatusOK {
		t.Errorf("/readyz after recovery: %d", s)
	}
	// The load runs on the recovered database for a while: more answers, not a fixed time.
	okBefore := okAnswers()
	waitFor(t, 10*time.Second, "the load is answered after the recovery", func() bool { return okAnswers() >= okBefore+16 })
	stop.Store(true)
	wg.Wait()

	// No session lost or double-spent.
	apptest.WantOK(t, e.Refresh(held))
	for i, rt := range chains {
		if r := e.Refresh(rt); len(r.Errors) > 0 {
			t.Errorf("refresh chain %d broke: %s", i, r.Raw)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	t.Logf("database down for %s: me unavailable after %s (caches); answers by code %v, slowest %s; "+
		"requests succeeded %s after the database was back", outage.Round(time.Millisecond),
		meUnavailableAfter.Round(time.Millisecond), codes, slowest.Round(time.Millisecond), recovered.Round(time.Millisecond))
}

// rawPost sends one GraphQL request without failing the test, for use from goroutines: it returns
// "OK" or errors[0].extensions.code (HTTP_<status> when there is none), the latency and the body.
func rawPost(e *apptest.Env, query string, vars map[string]any, access string) (code string, d time.Duration, raw string, err error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, e.Server.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if access != "" {
		req.Header.Set("Authorization", "Bearer "+access)
	}
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "TRANSPORT", time.Since(start), "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	d = time.Since(start)
	if err != nil {
		return "TRANSPORT", d, "", err
	}
	var out struct {
		Errors []apptest.GQLError `json:"errors"`
	}
	if json.Unmarshal(b, &out) != nil || res.StatusCode >= 500 {
		return fmt.Sprintf("HTTP_%d", res.StatusCode), d, string(b), nil
	}
	if len(out.Errors) > 0 {
		c, _ := out.Errors[0].Extensions["code"].(string)
		return c, d, string(b), nil
	}
	return "OK", d, string(b), nil
}

func getStatus(e *apptest.Env, path string) int {
	res, err := http.Get(e.Server.URL + path)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// In cookie mode, a refresh or logout that fails for want of a database leaves the browser its
// refresh cookie: nothing was decided, and the retry after the outage must still be able to rotate
// the token or end the session.
func TestCookieKeptDuringOutage(t *testing.T) {
	t.Parallel()
	dsn, proxy := testdb.Proxied(t, testdb.Postgres(t))
	e := apptest.New(t, dsn, apptest.Options{RealTime: true, Vars: map[string]string{"REFRESH_TOKEN_COOKIE": "true"}})
	const name = "__Secure-refresh_token"
	res, r := e.Do(regQ, map[string]any{"i": map[string]any{"email": "cookie-outage-" + uniq() + "@example.com", "password": pw}})
	apptest.WantOK(t, r)
	c := apptest.ResponseCookie(res, name)
	if c == nil {
		t.Fatal("no refresh cookie")
	}
	cookie := []string{"Cookie", name + "=" + c.Value}

	proxy.Cut()
	for _, q := range []string{`mutation { refreshToken { accessToken } }`, `mutation { logout }`} {
		res, r := e.Do(q, nil, cookie...)
		apptest.WantCode(t, r, "SERVICE_UNAVAILABLE", "")
		if got := apptest.ResponseCookie(res, name); got != nil {
			t.Errorf("%s during the outage touched the cookie: %v", q, res.Header["Set-Cookie"])
		}
	}
	if err := proxy.Restore(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the database is back", func() bool { return getStatus(e, "/readyz") == http.StatusOK })
	res, r = e.Do(`mutation { logout }`, nil, cookie...)
	apptest.WantOK(t, r)
	if cleared := apptest.ResponseCookie(res, name); cleared == nil || cleared.MaxAge >= 0 {
		t.Fatalf("logout after the outage did not clear the cookie: %v", res.Header["Set-Cookie"])
	}
	_, r = e.Do(`mutation { refreshToken { accessToken } }`, nil, cookie...)
	apptest.WantCode(t, r, "INVALID_REFRESH_TOKEN", "")
}
