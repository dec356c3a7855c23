package graph_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"gqlauth/auth"
	"gqlauth/graph/model"
	"gqlauth/internal/testdb"
)

// FuzzGraphQLRequest sends arbitrary requests through the whole HTTP handler (the real wiring on
// SQLite: limits, cookies/CSRF, gqlgen, @auth, resolvers, error presenter). Invariants: no panic; no
// 5xx; the body is a JSON object; every error carries an extensions.code from the published enum
// ErrorCode; nothing is answered with INTERNAL_SERVER_ERROR or SERVICE_UNAVAILABLE (bad input is the
// client's fault, and SQLite does not go away); the password of the seeded account is never echoed.
//
//	go test -run='^$' -fuzz=FuzzGraphQLRequest -fuzztime=5m ./graph/
func FuzzGraphQLRequest(f *testing.F) {
	const secret = "fuzz secret password"
	a := benchApp(f, testdb.SQLite(f), nil)
	p, err := a.Auth.Register(context.Background(), "fuzz@example.com", secret, auth.Client{})
	if err != nil {
		f.Fatal(err)
	}
	known := map[string]bool{}
	for _, c := range model.AllErrorCode {
		known[string(c)] = true
	}
	login := `{"query":"mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken } }","variables":{"i":{"email":"fuzz@example.com","password":"wrong one!!"}}}`
	for _, seed := range []struct {
		body, contentType, bearer string
		get                       bool
	}{
		{`{"query":"{ me { id email role } }"}`, "application/json", p.AccessToken, false},
		{`{"query":"{ me { id } }"}`, "application/json", "not.a.jwt", false},
		{login, "application/json", "", false},
		{`{"query":"mutation { refreshToken(refreshToken: \"` + p.RefreshToken + `\") { accessToken } }"}`, "application/json", "", false},
		{`{"query":"mutation($t: String) { logout(refreshToken: $t) }","variables":{"t":null}}`, "application/json", p.AccessToken, false},
		{`{"query":"mutation { a: login(input: {email: \"x@example.com\", password: \"12345678\"}) { accessToken } b: login(input: {email: \"y@example.com\", password: \"12345678\"}) { accessToken } }"}`, "application/json", "", false},
		{`[` + login + `,` + login + `]`, "application/json", "", false},
		{`{"query":"{ __schema { types { name fields { name type { name ofType { name ofType { name } } } } } } }"}`, "application/graphql-response+json", "", false},
		{`{"query":"query Q($n: Int) { sessions(first: $n) { id } }","variables":{"n":"x"}}`, "application/json", p.AccessToken, false},
		{`{"query":"{ me { ...F } } fragment F on User { ...F }"}`, "application/json", p.AccessToken, false},
		{`{"query":` + strings.Repeat(`"`, 3), "application/json", "", false},
		{`query=%7B+me+%7B+id+%7D+%7D`, "", p.AccessToken, true},
		{`query=mutation+%7B+logoutAll+%7D`, "", p.AccessToken, true},
		{`{"query":"{ me { id } }"}`, "text/plain", "", false},
		{`{"query":"{ me { id } }","extensions":{"persistedQuery":{"version":1,"sha256Hash":"00"}}}`, "application/json", "", false},
	} {
		f.Add([]byte(seed.body), seed.contentType, seed.bearer, seed.get)
	}
	f.Fuzz(func(t *testing.T, body []byte, contentType, bearer string, get bool) {
		var req *http.Request
		if get {
			req = httptest.NewRequest(http.MethodGet, "/graphql", nil)
			req.URL.RawQuery = string(body)
		} else {
			req = httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(string(body)))
			req.Header.Set("Content-Type", contentType)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		rec := httptest.NewRecorder()
		a.Handler.ServeHTTP(rec, req)
		res := rec.Result()
		if res.StatusCode >= 500 {
			t.Fatalf("status %d: %s", res.StatusCode, rec.Body)
		}
		if strings.Contains(rec.Body.String(), secret) {
			t.Fatalf("the password came back: %s", rec.Body)
		}
		var out struct {
			Errors []struct {
				Extensions map[string]any `json:"extensions"`
			} `json:"errors"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("status %d, body is not a JSON object: %q", res.StatusCode, rec.Body)
		}
		for _, e := range out.Errors {
			code, _ := e.Extensions["code"].(string)
			if !known[code] {
				t.Fatalf("extensions.code %q is not in enum ErrorCode: %s", code, rec.Body)
			}
			if slices.Contains([]string{"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE"}, code) {
				t.Fatalf("%s for client input: %s", code, rec.Body)
			}
		}
	})
}
