package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"gqlauth/auth"
	"gqlauth/config"
	"gqlauth/internal/testdb"
	"gqlauth/internal/testlog"
	"gqlauth/models"
	"gqlauth/password"
	"gqlauth/store"
)

var cheap = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func loadConfig(t *testing.T, vars map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.LoadFrom(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestServerHasTimeouts(t *testing.T) {
	dir := t.TempDir()
	cfg := loadConfig(t, map[string]string{"DATA_DIR": dir, "DATABASE_URL": filepath.Join(dir, "t.db"), "DB_MAX_OPEN_CONNS": "3"})
	a, err := New(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	pool, err := a.Store.SQL()
	if err != nil || pool.Stats().MaxOpenConnections != 3 {
		t.Fatalf("DB_MAX_OPEN_CONNS not applied: %v %+v", err, pool.Stats())
	}
	// The server's timeouts are httpapi.NewServer's (Serve uses it): see httpapi's TestNewServerHasTimeouts.
}

// openStore opens an SQLite store for the test and closes it when the test ends.
func openStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), testdb.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// settledGoroutines waits until at most want goroutines run, and reports how many do.
func settledGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(2 * time.Second); n > want && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

func goroutineDump() string {
	var b bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
	return b.String()
}

// New builds and starts nothing: no goroutine (no poller, no janitor, no key watcher), and no
// database work after it returns. An injected store stays open after Close.
func TestNewStartsNothing(t *testing.T) {
	db := openStore(t)
	keys := t.TempDir()
	cfg := loadConfig(t, map[string]string{"DATA_DIR": t.TempDir(), "JWT_KEYS_DIR": keys, "JANITOR_INTERVAL": "1s",
		"REVOCATION_POLL_INTERVAL": "100ms", "KEY_RELOAD_INTERVAL": "1s"})
	base := runtime.NumGoroutine()
	a, err := New(context.Background(), cfg, Options{Store: db, Password: &cheap, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if n := settledGoroutines(base); n > base {
		t.Fatalf("New started %d goroutines:\n%s", n-base, goroutineDump())
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(context.Background()); err != nil {
		t.Fatalf("Close closed the injected store: %v", err)
	}
}

// Serve starts the revocation poller and the janitor, and serves; when its context ends, /readyz
// answers 503 at once while the API still answers for SHUTDOWN_DRAIN_DELAY; then the server stops
// (new connections are refused), the background work stops, and Serve returns nil.
func TestServeRunsAndShutsDown(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	// An expired session for the janitor to purge.
	now := time.Now().UTC().Truncate(time.Microsecond)
	u := &models.User{ID: "u-1", Email: "a@example.com", PasswordHash: "x", Role: models.RoleUser, CreatedAt: now, UpdatedAt: now}
	if err := db.CreateUserOnly(ctx, u); err != nil {
		t.Fatal(err)
	}
	old := now.Add(-3 * time.Hour)
	s := &models.Session{ID: "s-old", UserID: u.ID, CreatedAt: old, LastUsedAt: old, ExpiresAt: old}
	rt := &models.RefreshToken{TokenHash: bytes.Repeat([]byte{1}, 32), SessionID: s.ID, UserID: u.ID, CreatedAt: old, ExpiresAt: old}
	if _, _, err := db.CreateSession(ctx, s, rt, auth.SessionCheck{Now: time.Now}); err != nil {
		t.Fatal(err)
	}
	// Count the revocation poller's queries (store.RevokedSince).
	var polls atomic.Int64
	countPolls := func(tx *gorm.DB) {
		if strings.Contains(tx.Statement.SQL.String(), "revoked_at >") {
			polls.Add(1)
		}
	}
	if err := db.Gorm().Callback().Row().After("gorm:row").Register("test:count_polls", countPolls); err != nil {
		t.Fatal(err)
	}
	purged := func() bool {
		_, err := db.SessionByID(ctx, "s-old")
		return errors.Is(err, auth.ErrNotFound)
	}

	cfg := loadConfig(t, map[string]string{"DATA_DIR": t.TempDir(), "JANITOR_INTERVAL": "1s", "JANITOR_RETENTION": "1h",
		"REVOCATION_POLL_INTERVAL": "100ms", "SHUTDOWN_DRAIN_DELAY": "1s"})
	logs := &testlog.Buffer{}
	base := runtime.NumGoroutine()
	a, err := New(ctx, cfg, Options{Store: db, Password: &cheap, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if polls.Load() != 0 || purged() {
		t.Fatalf("New polled revocations (%d) or purged", polls.Load())
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- a.Serve(runCtx, ln) }()

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) int {
		res, err := client.Get("http://" + addr + path)
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	graphql := func() (int, string) {
		res, err := client.Post("http://"+addr+"/graphql", "application/json", strings.NewReader(`{"query":"{ __typename }"}`))
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	eventually(t, "the poller to poll several times", func() bool { return polls.Load() >= 3 })
	eventually(t, "the janitor to purge the expired session", purged)
	if code := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz while serving: %d", code)
	}

	cancel()
	stoppedAt := time.Now()
	eventually(t, "/readyz to answer 503", func() bool { return get("/readyz") == http.StatusServiceUnavailable })
	if d := time.Since(stoppedAt); d > 500*time.Millisecond {
		t.Errorf("/readyz answered 503 only %s after the shutdown began", d)
	}
	if code, body := graphql(); code != http.StatusOK || !strings.Contains(body, `"__typename":"Query"`) {
		t.Fatalf("/graphql during the drain delay: %d %s", code, body)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned during the drain delay: %v", err)
	default:
	}

	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return")
	}
	if d := time.Since(stoppedAt); d < time.Second {
		t.Errorf("Serve returned %s after the shutdown began, before SHUTDOWN_DRAIN_DELAY=1s", d)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted after Serve returned")
	}
	// The background work has stopped: no more polls, and every goroutine Serve started is gone.
	if n := settledGoroutines(base); n > base {
		t.Errorf("%d goroutines left after Serve returned:\n%s", n-base, goroutineDump())
	}
	after := polls.Load()
	time.Sleep(300 * time.Millisecond)
	if polls.Load() != after {
		t.Error("the revocation poller still runs after Serve returned")
	}
	out := logs.String()
	for _, want := range []string{"msg=listening", "SHUTDOWN_DRAIN_DELAY", "finishing in-flight requests", "msg=stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if err := a.Serve(ctx, ln); err == nil {
		t.Error("a second Serve succeeded")
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// JWT_LEEWAY reaches the issuer: a token just past its exp is still accepted within the leeway.
func TestJWTLeeway(t *testing.T) {
	db := openStore(t)
	for _, tc := range []struct {
		leeway   string
		accepted bool
	}{{"", true}, {"0s", false}} { // the default is 5s
		now := time.Now()
		cfg := loadConfig(t, map[string]string{"DATA_DIR": t.TempDir(), "ACCESS_TOKEN_TTL": "1m", "JWT_LEEWAY": tc.leeway})
		a, err := New(context.Background(), cfg, Options{Store: db, Password: &cheap, Logger: slog.New(slog.DiscardHandler),
			Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		raw, _, err := a.Tokens.Issue("u-1", "s-1", "USER")
		if err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Minute + 2*time.Second)
		if _, err := a.Tokens.Verify(raw); (err == nil) != tc.accepted {
			t.Errorf("JWT_LEEWAY=%q: a token 2s past exp gives %v, want accepted=%v", tc.leeway, err, tc.accepted)
		}
		_ = a.Close()
	}
}
