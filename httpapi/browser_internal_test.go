package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The refresh cookie is read only from a JSON POST that carries it, and written only where a response
// exists; an expiry already past still gives the browser a cookie that lives one second, not a
// deleting one (MaxAge 0 would mean "no Max-Age").
func TestRefreshCookiesEdges(t *testing.T) {
	c := refreshCookies{opts: CookieOptions{Enabled: true, SameSite: http.SameSiteStrictMode}}
	req := func(method, contentType string, withCookie bool) *http.Request {
		r := httptest.NewRequest(method, PathGraphQL, nil)
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		if withCookie {
			r.AddCookie(&http.Cookie{Name: c.opts.Name(), Value: "tok"})
		}
		return r
	}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"no exchange in the context", context.Background(), ""},
		{"GET", withExchange(context.Background(), httptest.NewRecorder(), req(http.MethodGet, "application/json", true)), ""},
		{"form POST", withExchange(context.Background(), httptest.NewRecorder(), req(http.MethodPost, "application/x-www-form-urlencoded", true)), ""},
		{"bad Content-Type", withExchange(context.Background(), httptest.NewRecorder(), req(http.MethodPost, "application/json; =", true)), ""},
		{"no cookie", withExchange(context.Background(), httptest.NewRecorder(), req(http.MethodPost, "application/json", false)), ""},
		{"JSON POST with the cookie", withExchange(context.Background(), httptest.NewRecorder(), req(http.MethodPost, "application/json; charset=utf-8", true)), "tok"},
	} {
		if got := c.RefreshToken(tc.ctx); got != tc.want {
			t.Errorf("%s: RefreshToken = %q, want %q", tc.name, got, tc.want)
		}
	}

	c.SetRefreshToken(context.Background(), "tok", time.Now().Add(time.Hour)) // no response: nothing to do, no panic
	c.ClearRefreshToken(context.Background())
	w := httptest.NewRecorder()
	c.SetRefreshToken(withExchange(context.Background(), w, req(http.MethodPost, "application/json", false)), "tok", time.Now().Add(-time.Minute))
	if got := w.Header().Get("Set-Cookie"); !strings.Contains(got, "Max-Age=1;") || !strings.Contains(got, "HttpOnly") {
		t.Errorf("cookie for a past expiry: %q, want Max-Age=1 and HttpOnly", got)
	}
}

// "*" allows any origin without credentials (never reflected with credentials); a listed origin gets
// credentials; an invalid trusted origin is a configuration error.
func TestCORSAnyOrigin(t *testing.T) {
	c := newCORS([]string{"*", "https://app.example.com"})
	for _, tc := range []struct {
		origin, wantOrigin, wantCreds string
	}{
		{"https://elsewhere.example", "*", ""},
		{"https://app.example.com", "https://app.example.com", "true"},
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, PathGraphQL, nil)
		r.Header.Set("Origin", tc.origin)
		c.wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(w, r)
		if got := w.Header().Get("Access-Control-Allow-Origin"); got != tc.wantOrigin {
			t.Errorf("%s: Allow-Origin %q, want %q", tc.origin, got, tc.wantOrigin)
		}
		if got := w.Header().Get("Access-Control-Allow-Credentials"); got != tc.wantCreds {
			t.Errorf("%s: Allow-Credentials %q, want %q", tc.origin, got, tc.wantCreds)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := csrf([]string{"*", "https://app.example.com"}, log, http.NotFoundHandler()); err != nil {
		t.Errorf("csrf with * and an origin: %v", err)
	}
	if _, err := csrf([]string{"not an origin"}, log, http.NotFoundHandler()); err == nil {
		t.Error("csrf accepted an invalid trusted origin")
	}
}

// The response's media type follows gqlgen's rule for Accept.
func TestResponseContentType(t *testing.T) {
	for _, tc := range []struct{ accept, want string }{
		{"", "application/json"},
		{"*/*", "application/json"},
		{"application/*", "application/json"},
		{"text/html, application/json", "application/json"},
		{"application/graphql-response+json, application/json", graphQLResponseJSON},
		{"a/b; =, application/json", "application/json"}, // an unparsable part is skipped
		{"text/html", graphQLResponseJSON},
	} {
		r := httptest.NewRequest(http.MethodPost, PathGraphQL, nil)
		if tc.accept != "" {
			r.Header.Set("Accept", tc.accept)
		}
		if got := responseContentType(r); got != tc.want {
			t.Errorf("Accept %q: %q, want %q", tc.accept, got, tc.want)
		}
	}
}
