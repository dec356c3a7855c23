package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"gqlauth/httpapi"
	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
)

func TestReadiness(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	if status, body := e.Get("/readyz"); status != http.StatusOK || body != "ready\n" {
		t.Fatalf("readyz with the database up: %d %q", status, body)
	}
	if err := e.App.Store.Close(); err != nil { // the env's cleanup closes it again: must be harmless
		t.Fatal(err)
	}
	if status, body := e.Get("/readyz"); status != http.StatusServiceUnavailable || body != "not ready\n" {
		t.Fatalf("readyz with the database closed: %d %q", status, body)
	}
	if status, body := e.Get("/healthz"); status != http.StatusOK || body != "ok\n" {
		t.Fatalf("healthz is liveness only, got %d %q", status, body)
	}
}

func TestRequestIDHeader(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	res, r := e.Do(`{ __typename }`, nil, "X-Request-ID", "client-chosen.id_1")
	apptest.WantOK(t, r)
	if got := res.Header.Get("X-Request-ID"); got != "client-chosen.id_1" {
		t.Fatalf("X-Request-ID = %q", got)
	}
	res, _ = e.Do(`{ __typename }`, nil, "X-Request-ID", "not valid!")
	if got := res.Header.Get("X-Request-ID"); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(got) {
		t.Fatalf("invalid incoming id not replaced: %q", got)
	}
}

// Every failure carries extensions.code, and none is a 5xx.
func TestEveryErrorHasACode(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	for _, tc := range []struct {
		name, method, body, contentType, path string
	}{
		{"parse error", "POST", `{"query":"{ me { "}`, "application/json", "/graphql"},
		{"unknown field", "POST", `{"query":"{ nope }"}`, "application/json", "/graphql"},
		{"missing variable", "POST", `{"query":"mutation($i: LoginInput!) { login(input: $i) { accessToken } }"}`, "application/json", "/graphql"},
		{"wrong variable type", "POST", `{"query":"mutation($i: LoginInput!) { login(input: $i) { accessToken } }","variables":{"i":{"email":1}}}`, "application/json", "/graphql"},
		{"bad enum", "POST", `{"query":"{ user(id: 1) { role } }"}`, "application/json", "/graphql"},
		{"invalid json", "POST", `{"query":`, "application/json", "/graphql"},
		{"mutation over GET", "GET", "", "", "/graphql?query=" + "mutation%7BlogoutAll%7D"},
		{"undecodable GET variables", "GET", "", "", "/graphql?query=%7B__typename%7D&variables=%7B"},
		{"unsupported content type", "POST", `{"query":"{ __typename }"}`, "text/plain", "/graphql"},
		{"oversized body", "POST", `{"query":"` + strings.Repeat(" ", 2<<20) + `{ __typename }"}`, "application/json", "/graphql"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, e.Server.URL+tc.path, bytes.NewReader([]byte(tc.body)))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			raw, _ := io.ReadAll(res.Body)
			if res.StatusCode >= 500 {
				t.Fatalf("status %d: %s", res.StatusCode, raw)
			}
			var out struct {
				Errors []apptest.GQLError `json:"errors"`
			}
			if err := json.Unmarshal(raw, &out); err != nil || len(out.Errors) == 0 {
				t.Fatalf("status %d, want GraphQL errors: %s", res.StatusCode, raw)
			}
			for _, ge := range out.Errors {
				if c, _ := ge.Extensions["code"].(string); c == "" {
					t.Fatalf("error without extensions.code: %s", raw)
				}
			}
		})
	}
}

func TestHTTPEndpoints(t *testing.T) {
	t.Parallel()
	dev := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	prod := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"APP_ENV": "production", "JWT_SECRET": strings.Repeat("p", 32), "SMTP_URL": "smtp://127.0.0.1:1025", "TOTP_ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}})
	get := func(url string) (int, string) {
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := get(dev.Server.URL + "/healthz"); code != 200 {
		t.Fatalf("healthz = %d", code)
	}
	if code, body := get(dev.Server.URL + "/"); code != 200 || !strings.Contains(strings.ToLower(body), "graphiql") {
		t.Fatalf("IDE in development = %d", code)
	}
	if code, _ := get(prod.Server.URL + "/"); code != 404 {
		t.Fatalf("IDE in production = %d, want 404", code)
	}
	// GET /graphql runs queries.
	p := dev.Register("alice@example.com", pw)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, dev.Server.URL+"/graphql?query=%7Bme%7Bemail%7D%7D", nil)
	req.Header.Set("Authorization", "Bearer "+p.AccessToken)
	r := dev.Send(req)
	apptest.WantOK(t, r)
	// Introspection only in development.
	apptest.WantOK(t, dev.Post(`{ __schema { queryType { name } } }`, nil))
	if r := prod.Post(`{ __schema { queryType { name } } }`, nil); len(r.Errors) == 0 {
		t.Fatalf("introspection allowed in production: %s", r.Raw)
	}
	// Token responses are never cached.
	res, _ := http.Post(dev.Server.URL+"/graphql", "application/json", strings.NewReader(`{"query":"{ __typename }"}`))
	res.Body.Close()
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control = %q", res.Header.Get("Cache-Control"))
	}
}

func TestNewServerHasTimeouts(t *testing.T) {
	t.Parallel()
	s := httpapi.NewServer(":0", http.NotFoundHandler())
	if s.Addr != ":0" || s.Handler == nil || s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 {
		t.Fatalf("server without timeouts: %+v", s)
	}
}
