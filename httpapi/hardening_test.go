package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/httpapi"
	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
	"gqlauth/models"
	"gqlauth/token"
)

// X-Forwarded-For is believed only from TRUSTED_PROXIES.
func TestClientIPFromTrustedProxiesOnly(t *testing.T) {
	t.Parallel()
	q := `{ sessions { ip } }`
	ipOf := func(e *apptest.Env, headers ...string) string {
		e.Clock.Advance(time.Second) // so the newest session is listed first
		p := e.Login("alice@example.com", pw, headers...)
		r := e.Post(q, nil, apptest.Bearer(p.AccessToken)...)
		var list []struct{ IP string }
		r.Decode(t, "sessions", &list)
		return list[0].IP // newest first
	}
	plain := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	plain.Register("alice@example.com", pw)
	if got := ipOf(plain, "X-Forwarded-For", "203.0.113.9"); got != "127.0.0.1" {
		t.Fatalf("untrusted X-Forwarded-For was believed: ip = %s", got)
	}
	proxied := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32, 10.0.0.0/8"}})
	proxied.Register("alice@example.com", pw)
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

// Bodies over MAX_BODY_BYTES get a clean 413 with a code, whether or not Content-Length is sent.
func TestBodyLimit(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"MAX_BODY_BYTES": "4096"}})
	big := `{"query":"{ __typename }","variables":{"pad":"` + strings.Repeat("x", 8000) + `"}}`
	for name, body := range map[string]io.Reader{
		"content-length": strings.NewReader(big),
		"chunked":        io.MultiReader(strings.NewReader(big)), // unknown length: sent chunked
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.Server.URL+"/graphql", body)
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
	apptest.WantOK(t, e.Post(`{ __typename }`, nil))
}

// stallStore never answers: a database that hangs.
type stallStore struct{ auth.Store }

func (stallStore) UserByEmail(ctx context.Context, _ string) (*models.User, error) {
	<-ctx.Done()
	return nil, fmt.Errorf("query: %w", ctx.Err())
}

// A stalled database fails the request at REQUEST_TIMEOUT instead of hanging it.
func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	tokens, err := token.NewHS256Issuer([]byte(strings.Repeat("k", 32)), token.Options{Issuer: "i", Audience: "a", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := auth.NewService(stallStore{}, tokens, auth.Options{Password: apptest.CheapPassword, Logger: apptest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(svc, httpapi.Options{Logger: apptest.DiscardLogger(), RequestTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e := apptest.Serve(t, h)
	start := time.Now()
	r := e.Post(loginQ, loginVars("alice@example.com", pw))
	apptest.WantCode(t, r, "SERVICE_UNAVAILABLE", "")
	if !strings.Contains(r.Errors[0].Message, "timed out") {
		t.Fatalf("message: %q", r.Errors[0].Message)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the request hung for %s", d)
	}
}
