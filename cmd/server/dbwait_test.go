package main

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"gqlauth/internal/testdb"
	"gqlauth/internal/testlog"
)

// A server started while Postgres is unreachable waits for it (DB_WAIT_TIMEOUT), without listening
// meanwhile, and starts as soon as it answers; with a short timeout it gives up with a clear error.
func TestWaitsForTheDatabaseAtStart(t *testing.T) {
	dsn, proxy := testdb.Proxied(t, testdb.Postgres(t))
	proxy.Cut()
	addr := freeAddr(t)
	t.Setenv("ADDR", addr)
	t.Setenv("DATA_DIR", t.TempDir())
	t.Setenv("DATABASE_URL", dsn)

	t.Run("gives up after DB_WAIT_TIMEOUT", func(t *testing.T) {
		t.Setenv("DB_WAIT_TIMEOUT", "1s")
		start := time.Now()
		err := run(&testlog.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "DB_WAIT_TIMEOUT=1s") {
			t.Fatalf("run: %v, want the wait to time out", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("gave up after %s", d)
		}
	})

	t.Run("starts when the database answers", func(t *testing.T) {
		t.Setenv("DB_WAIT_TIMEOUT", "30s")
		logs := &testlog.Buffer{}
		done := make(chan error, 1)
		go func() { done <- run(logs) }()
		waitUntil(t, func() bool { return strings.Contains(logs.String(), "database unreachable; waiting for it") })
		if res, err := http.Get("http://" + addr + "/healthz"); err == nil {
			res.Body.Close()
			t.Fatal("the server listens before it has a database")
		}
		if err := proxy.Restore(); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, func() bool {
			res, err := http.Get("http://" + addr + "/readyz")
			return err == nil && res.Body.Close() == nil && res.StatusCode == http.StatusOK
		})
		if n := strings.Count(logs.String(), "waiting for it"); n != 1 {
			t.Errorf("the wait was logged %d times, want once", n)
		}
		if !strings.Contains(logs.String(), "database reachable; starting") {
			t.Error("no line for the end of the wait")
		}
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitStopped(t, done)
	})
}
