package httpapi_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
)

const regQ = `mutation($i: RegisterInput!) { register(input: $i) { accessToken refreshToken refreshTokenExpiresAt } }`

func TestCookieMode(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"REFRESH_TOKEN_COOKIE": "true"}})
	const name = "__Secure-refresh_token"
	res, r := e.Do(regQ, map[string]any{"i": map[string]any{"email": "alice@example.com", "password": pw}})
	apptest.WantOK(t, r)
	var p apptest.Pair
	r.Decode(t, "register", &p)
	if p.RefreshToken != "" || !strings.Contains(r.Raw, `"refreshToken":null`) {
		t.Fatalf("cookie mode must not put the refresh token in the body: %s", r.Raw)
	}
	c := apptest.ResponseCookie(res, name)
	if c == nil {
		t.Fatalf("no %s cookie: %v", name, res.Header["Set-Cookie"])
	}
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/graphql" ||
		c.MaxAge < 719*3600 || c.MaxAge > 720*3600 || len(c.Value) != 43 {
		t.Fatalf("cookie attributes: %s", res.Header.Get("Set-Cookie"))
	}
	cookie := func(v string) []string { return []string{"Cookie", name + "=" + v} }

	// refreshToken with no argument reads the cookie, and rotates it.
	res, r = e.Do(`mutation { refreshToken { accessToken refreshToken } }`, nil, cookie(c.Value)...)
	apptest.WantOK(t, r)
	next := apptest.ResponseCookie(res, name)
	if next == nil || next.Value == c.Value || strings.Contains(r.Raw, next.Value) {
		t.Fatalf("refresh did not rotate the cookie: %v %s", res.Header["Set-Cookie"], r.Raw)
	}
	// No cookie, no argument: INVALID_REFRESH_TOKEN.
	_, r = e.Do(`mutation { refreshToken { accessToken } }`, nil)
	apptest.WantCode(t, r, "INVALID_REFRESH_TOKEN", "")
	// The cookie counts only on a JSON POST.
	req, _ := http.NewRequest(http.MethodPost, e.Server.URL+"/graphql", strings.NewReader(`{"query":"mutation { refreshToken { accessToken } }"}`))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Cookie", name+"="+next.Value)
	if r := e.Send(req); r.Code() == "" {
		t.Fatalf("a text/plain POST used the cookie: %s", r.Raw)
	}
	// A dead cookie is cleared.
	e.Clock.Advance(11e9) // past the reuse grace
	res, r = e.Do(`mutation { refreshToken { accessToken } }`, nil, cookie(c.Value)...)
	apptest.WantCode(t, r, "INVALID_REFRESH_TOKEN", "") // reuse: the session is revoked
	if dead := apptest.ResponseCookie(res, name); dead == nil || dead.MaxAge >= 0 {
		t.Fatalf("dead cookie not cleared: %v", res.Header["Set-Cookie"])
	}

	// logout with no argument revokes the cookie's session and clears the cookie.
	_, r = e.Do(`mutation($i: LoginInput!) { login(input: $i) { accessToken } }`, loginVars("alice@example.com", pw))
	res, _ = e.Do(`mutation($i: LoginInput!) { login(input: $i) { accessToken } }`, loginVars("alice@example.com", pw))
	live := apptest.ResponseCookie(res, name)
	res, r = e.Do(`mutation { logout }`, nil, cookie(live.Value)...)
	apptest.WantOK(t, r)
	if cleared := apptest.ResponseCookie(res, name); cleared == nil || cleared.MaxAge >= 0 || cleared.Value != "" {
		t.Fatalf("logout did not clear the cookie: %v", res.Header["Set-Cookie"])
	}
	_, r = e.Do(`mutation { refreshToken { accessToken } }`, nil, cookie(live.Value)...)
	apptest.WantCode(t, r, "INVALID_REFRESH_TOKEN", "")

	// The argument still works for non-browser clients.
	apptest.WantCode(t, e.Refresh("garbage"), "INVALID_REFRESH_TOKEN", "")
}

func TestCookieModeChangePasswordSetsCookie(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"REFRESH_TOKEN_COOKIE": "true", "COOKIE_SECURE": "false", "COOKIE_SAMESITE": "lax"}})
	res, r := e.Do(regQ, map[string]any{"i": map[string]any{"email": "alice@example.com", "password": pw}})
	var p apptest.Pair
	r.Decode(t, "register", &p)
	c := apptest.ResponseCookie(res, "refresh_token") // no __Secure- prefix without Secure
	if c == nil || c.Secure || c.SameSite != http.SameSiteLaxMode || !c.HttpOnly {
		t.Fatalf("development cookie: %v", res.Header["Set-Cookie"])
	}
	res, r = e.Do(`mutation { changePassword(input: {currentPassword: "`+pw+`", newPassword: "another password"}) { accessToken refreshToken } }`,
		nil, apptest.Bearer(p.AccessToken)...)
	apptest.WantOK(t, r)
	if n := apptest.ResponseCookie(res, "refresh_token"); n == nil || n.Value == c.Value || !strings.Contains(r.Raw, `"refreshToken":null`) {
		t.Fatalf("changePassword cookie: %v %s", res.Header["Set-Cookie"], r.Raw)
	}
}

func TestCrossOriginRequests(t *testing.T) {
	t.Parallel()
	const app = "https://app.example.com"
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"REFRESH_TOKEN_COOKIE": "true", "CORS_ALLOWED_ORIGINS": app + ", http://localhost:5173"}})
	res, _ := e.Do(regQ, map[string]any{"i": map[string]any{"email": "alice@example.com", "password": pw}})
	ck := apptest.ResponseCookie(res, "__Secure-refresh_token")
	refreshQ := `mutation { refreshToken { accessToken } }`
	cookie := []string{"Cookie", ck.Name + "=" + ck.Value}

	// A cross-site page posting with the victim's cookie is refused before anything runs.
	res, r := e.Do(refreshQ, nil, append(cookie, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")...)
	if res.StatusCode != http.StatusForbidden || r.Code() != "FORBIDDEN" || apptest.ResponseCookie(res, ck.Name) != nil {
		t.Fatalf("cross-site POST: status %d %s", res.StatusCode, r.Raw)
	}
	res, r = e.Do(refreshQ, nil, append(cookie, "Origin", "https://evil.example")...) // old browsers: Origin only
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin POST without Sec-Fetch-Site: status %d %s", res.StatusCode, r.Raw)
	}
	if res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS headers for a foreign origin")
	}
	// The allowed origin works, and its responses are readable with credentials.
	res, r = e.Do(refreshQ, nil, append(cookie, "Origin", app, "Sec-Fetch-Site", "cross-site")...)
	apptest.WantOK(t, r)
	if res.Header.Get("Access-Control-Allow-Origin") != app || res.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("CORS headers: %v", res.Header)
	}
	ck = apptest.ResponseCookie(res, ck.Name)
	// Non-browser clients (no Origin, no Sec-Fetch-Site) and same-origin pages are not affected.
	_, r = e.Do(refreshQ, nil, "Cookie", ck.Name+"="+ck.Value)
	apptest.WantOK(t, r)
	_, r = e.Do(`{ __typename }`, nil, "Sec-Fetch-Site", "same-origin", "Origin", e.Server.URL)
	apptest.WantOK(t, r)

	preflight := func(origin, method string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, e.Server.URL+"/graphql", nil)
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
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	res, err := http.Get(e.Server.URL + "/graphql/schema.graphql")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	got, _ := io.ReadAll(res.Body)
	want, _ := os.ReadFile(filepath.Join("..", "schema.graphqls"))
	if res.StatusCode != http.StatusOK || string(got) != string(want) {
		t.Fatalf("GET /graphql/schema.graphql: status %d, %d bytes; want the %d bytes of schema.graphqls", res.StatusCode, len(got), len(want))
	}
	// Production does not advertise the API (like introspection).
	prod := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"APP_ENV": "production", "JWT_SECRET": strings.Repeat("p", 32), "SMTP_URL": "smtp://127.0.0.1:1025", "TOTP_ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}})
	res, err = http.Get(prod.Server.URL + "/graphql/schema.graphql")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("SDL in production: status %d", res.StatusCode)
	}
}
