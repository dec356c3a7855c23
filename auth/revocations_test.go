package auth

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// fakeStore implements the two Store methods the revocation cache uses; the rest panic if called.
type fakeStore struct {
	Store
	revokedSince   func(since time.Time) ([]Revocation, error)
	sessionRevoked func(id string) (bool, error)
	dbChecks       atomic.Int32
}

func (f *fakeStore) RevokedSince(_ context.Context, since time.Time) ([]Revocation, error) {
	return f.revokedSince(since)
}

func (f *fakeStore) SessionRevoked(_ context.Context, id string) (bool, error) {
	f.dbChecks.Add(1)
	return f.sessionRevoked(id)
}

func TestRevocationCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	var pollErr error
	var since []time.Time
	fs := &fakeStore{
		revokedSince: func(s time.Time) ([]Revocation, error) {
			since = append(since, s)
			if pollErr != nil {
				return nil, pollErr
			}
			return []Revocation{{ID: "remote", RevokedAt: now.Add(-time.Second)}}, nil
		},
		sessionRevoked: func(id string) (bool, error) { return id == "in-db-only", nil },
	}
	r := newRevocations(fs, nil, clock, time.Second, 16*time.Minute)

	// Before any poll the cache is not trusted: the database answers.
	if rev, _ := r.isRevoked(ctx, "in-db-only"); !rev || fs.dbChecks.Load() != 1 {
		t.Fatalf("unsynced cache must ask the database (revoked=%v, checks=%d)", rev, fs.dbChecks.Load())
	}
	if err := r.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !since[0].Equal(now.Add(-16 * time.Minute)) {
		t.Fatalf("first poll since %s, want one access-token lifetime back", since[0])
	}
	// Fresh: answers from memory, no database round trip.
	fs.dbChecks.Store(0)
	if rev, _ := r.isRevoked(ctx, "remote"); !rev {
		t.Fatal("revocation read by the poll not applied")
	}
	if rev, _ := r.isRevoked(ctx, "live"); rev {
		t.Fatal("live session reported revoked")
	}
	if fs.dbChecks.Load() != 0 {
		t.Fatalf("fresh cache made %d database checks", fs.dbChecks.Load())
	}
	// Local revocations apply at once.
	r.add(ctx, "u", []string{"local"}, now, slog.Default())
	if rev, _ := r.isRevoked(ctx, "local"); !rev {
		t.Fatal("local revocation not immediate")
	}
	// Later polls start at the previous poll, minus the overlap.
	now = now.Add(time.Second)
	if err := r.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if want := now.Add(-time.Second - pollOverlap); !since[1].Equal(want) {
		t.Fatalf("second poll since %s, want %s", since[1], want)
	}
	// The poller stalls (database down): after interval+1s the cache is no longer trusted.
	pollErr = errors.New("connection refused")
	now = now.Add(2500 * time.Millisecond)
	if err := r.sync(ctx); err == nil {
		t.Fatal("want poll error")
	}
	if rev, _ := r.isRevoked(ctx, "in-db-only"); !rev || fs.dbChecks.Load() != 1 {
		t.Fatalf("stale cache must ask the database (revoked=%v, checks=%d)", rev, fs.dbChecks.Load())
	}
	// Entries are forgotten once every access token they could cover has expired.
	pollErr = nil
	now = now.Add(time.Hour)
	_ = r.sync(ctx)
	r.mu.RLock()
	_, kept := r.revoked["local"]
	r.mu.RUnlock()
	if kept {
		t.Fatal("old revocation never pruned")
	}
}
