package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"gqlauth/internal/testdb"
	"gqlauth/internal/testlog"
)

// A server started while Postgres is unreachable waits for it (DB_WAIT_TIMEOUT), without listening
// meanwhile, and starts as soon as it answers; with a short timeout it gives up with a clear error,
// and a shutdown during the wait ends it.
func TestWaitsForTheDatabaseAtStart(t *testing.T) {
	t.Parallel()
	dsn, proxy := testdb.Proxied(t, testdb.Postgres(t))
	proxy.Cut()
	addr := freeAddr(t)
	vars := func(wait string) map[string]string {
		return map[string]string{"ADDR": addr, "DATA_DIR": t.TempDir(), "DATABASE_URL": dsn, "DB_WAIT_TIMEOUT": wait}
	}

	t.Run("gives up after DB_WAIT_TIMEOUT", func(t *testing.T) {
		start := time.Now()
		err := run(context.Background(), getenv(vars("1s")), io.Discard, &testlog.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "DB_WAIT_TIMEOUT=1s") {
			t.Fatalf("run: %v, want the wait to time out", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("gave up after %s", d)
		}
	})

	t.Run("a shutdown ends the wait", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		logs := &testlog.Buffer{}
		done := make(chan error, 1)
		go func() { done <- run(ctx, getenv(vars("30s")), io.Discard, logs) }()
		waitUntil(t, func() bool { return strings.Contains(logs.String(), "database unreachable; waiting for it") })
		cancel()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "stopped while waiting for the database") {
				t.Fatalf("run: %v, want it stopped while waiting", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("run kept waiting for the database after its context ended")
		}
	})

	t.Run("starts when the database answers", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		logs := &testlog.Buffer{}
		done := make(chan error, 1)
		go func() { done <- run(ctx, getenv(vars("30s")), io.Discard, logs) }()
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
		cancel()
		waitStopped(t, done)
	})
}
