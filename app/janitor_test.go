package app

import (
	"bytes"
	"context"
	"errors"
	"gqlauth/internal/testlog"
	"log/slog"
	"strings"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/internal/testdb"
	"gqlauth/models"
	"gqlauth/store"
)

func TestJanitorPurgesAndStops(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, testdb.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	u := &models.User{ID: "u-1", Email: "a@example.com", PasswordHash: "x", Role: models.RoleUser, CreatedAt: now, UpdatedAt: now}
	if err := db.CreateUserOnly(ctx, u); err != nil {
		t.Fatal(err)
	}
	old := now.Add(-3 * time.Hour)
	for i, id := range []string{"s-old", "s-live"} {
		exp := old
		if id == "s-live" {
			exp = now.Add(time.Hour)
		}
		s := &models.Session{ID: id, UserID: u.ID, CreatedAt: old, LastUsedAt: old, ExpiresAt: exp}
		rt := &models.RefreshToken{TokenHash: bytes.Repeat([]byte{byte(i + 1)}, 32), SessionID: id, UserID: u.ID, CreatedAt: old, ExpiresAt: exp}
		if _, _, err := db.CreateSession(ctx, s, rt, auth.SessionCheck{Now: time.Now}); err != nil {
			t.Fatal(err)
		}
	}

	var logs testlog.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runJanitor(runCtx, db, 20*time.Millisecond, time.Hour, log)
	}()

	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := db.SessionByID(ctx, "s-old"); errors.Is(err, auth.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the janitor did not purge the expired session within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := db.SessionByID(ctx, "s-live"); err != nil {
		t.Fatalf("live session purged: %v", err)
	}
	// One Info line with the count for the pass that deleted something, and none for empty passes.
	for time.Now().Before(deadline) && !strings.Contains(logs.String(), "deleted=2") {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // several more (empty) passes
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the janitor did not stop when its context ended")
	}
	out := logs.String()
	if n := strings.Count(out, "janitor:"); n != 1 || !strings.Contains(out, "level=INFO") || !strings.Contains(out, "deleted=2") {
		t.Fatalf("want exactly one INFO line with deleted=2, got:\n%s", out)
	}
}

func TestJanitorDisabled(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runJanitor(context.Background(), nil, 0, time.Hour, slog.Default())
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("runJanitor with interval 0 did not return")
	}
}

func TestJanitorLogsFailure(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, testdb.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close() // every purge now fails
	var logs testlog.Buffer
	janitorPass(ctx, db, time.Hour, slog.New(slog.NewTextHandler(&logs, nil)))
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "janitor: purge failed") {
		t.Fatalf("want a WARN line, got:\n%s", out)
	}
	// A purge cut short by shutdown is not reported as a failure.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	logs = testlog.Buffer{}
	janitorPass(cctx, db, time.Hour, slog.New(slog.NewTextHandler(&logs, nil)))
	if out := logs.String(); out != "" {
		t.Fatalf("logged on shutdown:\n%s", out)
	}
}

func TestJitter(t *testing.T) {
	for _, iv := range []time.Duration{time.Nanosecond, 20 * time.Millisecond, time.Hour, 48 * time.Hour} {
		for range 100 {
			if j := jitter(iv); j < 0 || j > iv/10 || j > time.Minute {
				t.Fatalf("jitter(%s) = %s", iv, j)
			}
		}
	}
}
