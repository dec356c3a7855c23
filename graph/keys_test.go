package graph_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gqlauth/app"
	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
	"gqlauth/token"
)

// accessKid returns the kid in an access token's header.
func accessKid(t *testing.T, raw string) string {
	t.Helper()
	h, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var header struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(h, &header); err != nil {
		t.Fatal(err)
	}
	return header.Kid
}

// jwksKids fetches the JWKS endpoint and returns the published kids.
func jwksKids(e *apptest.Env) []string {
	e.T.Helper()
	res, err := http.Get(e.Server.URL + "/.well-known/jwks.json")
	if err != nil {
		e.T.Fatal(err)
	}
	defer res.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(res.Body).Decode(&set); err != nil {
		e.T.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

// eventually polls cond every 50ms until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKeyRotationThroughKeyDir rotates the signing key of a running server through JWT_KEYS_DIR: the
// server picks the new key up by itself, publishes it before it signs with it, switches to it at its
// activation time, and keeps accepting tokens signed with the old key.
//
// The key set judges activation times by the server's (fake) clock, while the directory watcher
// reloads every second of real time: so the pending phase lasts until the test moves the clock, and
// is always checked (it used to be checked only if the reload happened to come before a real-time
// activation 1.5 s ahead, and was skipped silently otherwise).
func TestKeyRotationThroughKeyDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{
		Vars: map[string]string{"JWT_KEYS_DIR": dir, "KEY_RELOAD_INTERVAL": "1s"},
	})
	// Development: the empty directory got a first key.
	p := e.Register("alice@example.com", pw)
	kidA := accessKid(t, p.AccessToken)
	if got := jwksKids(e); !slices.Equal(got, []string{kidA}) {
		t.Fatalf("JWKS = %v, want [%s]", got, kidA)
	}
	apptest.WantOK(t, e.Me(p.AccessToken))

	// Rotate: what "authctl keys rotate" does, with a delay of a minute.
	activateB := e.Clock.Now().Add(time.Minute)
	_, kidB, err := token.GenerateKeyFile(dir, activateB)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the JWKS publishes the new key", func() bool {
		return slices.Equal(jwksKids(e), []string{kidA, kidB})
	})
	// Published but pending: A still signs.
	if kid := accessKid(t, e.Login("alice@example.com", pw).AccessToken); kid != kidA {
		t.Fatalf("pending key signed (kid %s)", kid)
	}

	// From its activation (rounded up to a whole second) new tokens carry B's kid; no reload is
	// needed for the switch.
	e.Clock.Advance(time.Minute + time.Second)
	q := e.Login("alice@example.com", pw)
	if kid := accessKid(t, q.AccessToken); kid != kidB {
		t.Fatalf("after the activation time the token has kid %s, want the new key %s", kid, kidB)
	}
	apptest.WantOK(t, e.Me(q.AccessToken))
	apptest.WantOK(t, e.Me(p.AccessToken)) // nobody is logged out
	if got := jwksKids(e); !slices.Equal(got, []string{kidA, kidB}) {
		t.Fatalf("JWKS after activation = %v, want both keys", got)
	}
}

// A server never starts without the shared keys in production (each replica would sign with a key of
// its own), nor with a key directory it cannot fully load.
func TestKeyDirStartup(t *testing.T) {
	t.Parallel()
	start := func(vars map[string]string) error {
		vars["DATABASE_URL"] = testdb.SQLite(t)
		vars["DATA_DIR"] = t.TempDir()
		a, err := app.New(context.Background(), apptest.LoadConfig(t, vars), app.Options{Password: &apptest.CheapPassword, Logger: apptest.DiscardLogger()})
		if err == nil {
			_ = a.Close()
		}
		return err
	}
	empty := t.TempDir()
	err := start(map[string]string{"APP_ENV": "production", "SMTP_URL": "smtp://127.0.0.1:1025", "TOTP_ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "JWT_KEYS_DIR": empty})
	if err == nil || !strings.Contains(err.Error(), "authctl keys rotate") {
		t.Fatalf("production with an empty JWT_KEYS_DIR: %v", err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("production generated a key: %v", entries)
	}

	broken := t.TempDir()
	if _, _, err := token.GenerateKeyFile(broken, time.Now()); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(broken, "20300102T030405Z-abcdefgh.pem")
	if err := os.WriteFile(bad, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := start(map[string]string{"JWT_KEYS_DIR": broken}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("corrupt key file: %v, want an error naming %s", err, bad)
	}
}
