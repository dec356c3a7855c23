package graph_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gqlauth/internal/testdb"
)

func refreshCookie(t *testing.T, res *http.Response, name string) *http.Cookie {
	t.Helper()
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

const regQ = `mutation($i: RegisterInput!) { register(input: $i) { accessToken refreshToken refreshTokenExpiresAt } }`

func TestCookieMode(t *testing.T) {
	e := newEnv(t, testdb.SQLite(t), envOpt{vars: map[string]string{"REFRESH_TOKEN_COOKIE": "true"}})
	const name = "__Secure-refresh_token"
	res, r := e.do(regQ, map[string]any{"i": map[string]any{"email": "alice@example.com", "password": pw}})
	wantOK(t, r)
	var p pair
	r.decode(t, "register", &p)
	if p.RefreshToken != "" || !strings.Contains(r.Raw, `"refreshToken":null`) {
		t.Fatalf("cookie mode must not put the refresh token in the body: %s", r.Raw)
	}
	c := refreshCookie(t, res, name)
	if c == nil {
		t.Fatalf("no %s cookie: %v", name, res.Header["Set-Cookie"])
	}
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/graphql" ||
		c.MaxAge < 719*3600 || c.MaxAge > 720*3600 || len(c.Value) != 43 {
		t.Fatalf("cookie attributes: %s", res.Header.Get("Set-Cookie"))
	}
	cookie := func(v string) []string { return []string{"Cookie", name + "=" + v} }

	// refreshToken with no argument reads the cookie, and rotates it.
	res, r = e.do(`mutation { refreshToken { accessToken refreshToken } }`, nil, cookie(c.Value)...)
	wantOK(t, r)
	next := refreshCookie(t, res, name)
	if next == nil || next.Value == c.Value || strings.Contains(r.Raw, next.Value) {
		t.Fatalf("refresh did not rotate the cookie: %v %s", res.Header["Set-Cookie"], r.Raw)
	}
	// No cookie, no argument: INVALID_REFRESH_TOKEN.
	_, r = e.do(`mutation { refreshToken { accessToken } }`, nil)
	wantCode(t, r, "INVALID_REFRESH_TOKEN", "")
	// The cookie counts only on a JSON POST.
	req, _ := http.NewRequest("POST", e.srv.URL+"/graphql", strings.NewReader(`{"query":"mutation { refreshToken { accessToken } }"}`))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Cookie", name+"="+next.Value)
	if r := e.send(req); r.code() == "" {
		t.Fatalf("a text/plain POST used the cookie: %s", r.Raw)
	}
	// A dead cookie is cleared.
	e.clock.Advance(11e9) // past the reuse grace
	res, r = e.do(`mutation { refreshToken { accessToken } }`, nil, cookie(c.Value)...)
	wantCode(t, r, "INVALID_REFRESH_TOKEN", "") // reuse: the session is revoked
	if dead := refreshCookie(t, res, name); dead == nil || dead.MaxAge >= 0 {
		t.Fatalf("dead cookie not cleared: %v", res.Header["Set-Cookie"])
	}

	// logout with no argument revokes the cookie's session and clears the cookie.
	_, r = e.do(`mutation($i: LoginInput!) { login(input: $i) { accessToken } }`, loginVars("alice@example.com", pw))
	res, _ = e.do(`mutation($i: LoginInput!) { login(input: $i) { accessToken } }`, loginVars("alice@example.com", pw))
	live := refreshCookie(t, res, name)
	res, r = e.do(`mutation { logout }`, nil, cookie(live.Value)...)
	wantOK(t, r)
	if cleared := refreshCookie(t, res, name); cleared == nil || cleared.MaxAge >= 0 || cleared.Value != "" {
		t.Fatalf("logout did not clear the cookie: %v", res.Header["Set-Cookie"])
	}
	_, r = e.do(`mutation { refreshToken { accessToken } }`, nil, cookie(live.Value)...)
	wantCode(t, r, "INVALID_REFRESH_TOKEN", "")

	// The argument still works for non-browser clients.
	wantCode(t, e.refresh("garbage"), "INVALID_REFRESH_TOKEN", "")
}

func TestCookieModeChangePasswordSetsCookie(t *testing.T) {
	e := newEnv(t, testdb.SQLite(t), envOpt{vars: map[string]string{"REFRESH_TOKEN_COOKIE": "true", "COOKIE_SECURE": "false", "COOKIE_SAMESITE": "lax"}})
	res, r := e.do(regQ, map[string]any{"i": map[string]any{"email": "alice@example.com", "password": pw}})
	var p pair
	r.decode(t, "register", &p)
	c := refreshCookie(t, res, "refresh_token") // no __Secure- prefix without Secure
	if c == nil || c.Secure || c.SameSite != http.SameSiteLaxMode || !c.HttpOnly {
		t.Fatalf("development cookie: %v", res.Header["Set-Cookie"])
	}
	res, r = e.do(`mutation { changePassword(input: {currentPassword: "`+pw+`", newPassword: "another password"}) { accessToken refreshToken } }`,
		nil, bearer(p.AccessToken)...)
	wantOK(t, r)
	if n := refreshCookie(t, res, "refresh_token"); n == nil || n.Value == c.Value || !strings.Contains(r.Raw, `"refreshToken":null`) {
		t.Fatalf("changePassword cookie: %v %s", res.Header["Set-Cookie"], r.Raw)
	}
}

func TestCrossOriginRequests(t *testing.T) {
	const app = "https://app.example.com"
	e := newEnv(t, testdb.SQLite(t), envOpt{vars: map[string]string{"REFRESH_TOKEN_COOKIE": "true", "CORS_ALLOWED_ORIGINS": app + ", http://localhost:5173"}})
	res, _ := e.do(regQ, map[string]any{"i": map[string]any{"email": "alice@example.com", "password": pw}})
	ck := refreshCookie(t, res, "__Secure-refresh_token")
	refreshQ := `mutation { refreshToken { accessToken } }`
	cookie := []string{"Cookie", ck.Name + "=" + ck.Value}

	// A cross-site page posting with the victim's cookie is refused before anything runs.
	res, r := e.do(refreshQ, nil, append(cookie, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")...)
	if res.StatusCode != http.StatusForbidden || r.code() != "FORBIDDEN" || refreshCookie(t, res, ck.Name) != nil {
		t.Fatalf("cross-site POST: status %d %s", res.StatusCode, r.Raw)
	}
	res, r = e.do(refreshQ, nil, append(cookie, "Origin", "https://evil.example")...) // old browsers: Origin only
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin POST without Sec-Fetch-Site: status %d %s", res.StatusCode, r.Raw)
	}
	if res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS headers for a foreign origin")
	}
	// The allowed origin works, and its responses are readable with credentials.
	res, r = e.do(refreshQ, nil, append(cookie, "Origin", app, "Sec-Fetch-Site", "cross-site")...)
	wantOK(t, r)
	if res.Header.Get("Access-Control-Allow-Origin") != app || res.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("CORS headers: %v", res.Header)
	}
	ck = refreshCookie(t, res, ck.Name)
	// Non-browser clients (no Origin, no Sec-Fetch-Site) and same-origin pages are not affected.
	_, r = e.do(refreshQ, nil, "Cookie", ck.Name+"="+ck.Value)
	wantOK(t, r)
	_, r = e.do(`{ __typename }`, nil, "Sec-Fetch-Site", "same-origin", "Origin", e.srv.URL)
	wantOK(t, r)

	preflight := func(origin, method string) *http.Response {
		req, _ := http.NewRequest("OPTIONS", e.srv.URL+"/graphql", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", method)
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	res = preflight("http://localhost:5173", "POST")
	h := res.Header
	if res.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "http://localhost:5173" ||
		h.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Content-Type") || h.Get("Access-Control-Max-Age") == "" {
		t.Fatalf("preflight for an allowed origin: %d %v", res.StatusCode, h)
	}
	for _, origin := range []string{"https://evil.example", "http://localhost:5174", "null"} {
		if res := preflight(origin, "POST"); res.StatusCode != http.StatusForbidden || res.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("preflight for %s: %d %v", origin, res.StatusCode, res.Header)
		}
	}
	if res := preflight(app, "DELETE"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("preflight for DELETE: %d", res.StatusCode)
	}
}

// Schema-first teams fetch the SDL from the running server.
func TestSchemaEndpoint(t *testing.T) {
	e := newEnv(t, testdb.SQLite(t), envOpt{})
	res, err := http.Get(e.srv.URL + "/graphql/schema.graphql")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	got, _ := io.ReadAll(res.Body)
	want, _ := os.ReadFile(filepath.Join("..", "schema.graphqls"))
	if res.StatusCode != 200 || string(got) != string(want) {
		t.Fatalf("GET /graphql/schema.graphql: status %d, %d bytes; want the %d bytes of schema.graphqls", res.StatusCode, len(got), len(want))
	}
	// Production does not advertise the API (like introspection).
	prod := newEnv(t, testdb.SQLite(t), envOpt{vars: map[string]string{"APP_ENV": "production", "JWT_SECRET": strings.Repeat("p", 32)}})
	res, err = http.Get(prod.srv.URL + "/graphql/schema.graphql")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("SDL in production: status %d", res.StatusCode)
	}
}
