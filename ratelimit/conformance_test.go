package ratelimit

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixture is one fresh, empty limiter plus the hooks the shared suite needs
// to observe it from outside the Limiter interface.
type fixture struct {
	l Limiter
	// advance makes at least d pass since the real time start: a fake
	// clock moved by d for Memory, a real sleep until start+d for Redis.
	advance func(t *testing.T, start time.Time, d time.Duration)
	// stored returns the names under which the limiter stores its counters
	// (raw bytes for Memory, Redis key names for Redis).
	stored func(t *testing.T) []string
	// shortWindow is the window used by the reset test; Redis needs a real
	// one, so it is kept at the 1s minimum.
	shortWindow time.Duration
}

// fakeClock is a manually advanced clock safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func mustHit(t *testing.T, l Limiter, key string, r Rate) Result {
	t.Helper()
	res, err := l.Hit(t.Context(), key, r)
	if err != nil {
		t.Fatalf("Hit(%q, %v): %v", key, r, err)
	}
	return res
}

func wantResult(t *testing.T, got Result, count int, allowed bool) {
	t.Helper()
	if got.Count != count || got.Allowed != allowed {
		t.Fatalf("Hit = %+v, want Count=%d Allowed=%v", got, count, allowed)
	}
	if allowed && got.RetryAfter != 0 {
		t.Fatalf("allowed Hit has RetryAfter %v, want 0", got.RetryAfter)
	}
}

// runConformance runs the behaviour every Limiter must share against
// limiters produced by newFixture (called once per subtest).
func runConformance(t *testing.T, newFixture func(t *testing.T) fixture) {
	rate := Rate{Limit: 3, Window: time.Minute}

	t.Run("FirstHit", func(t *testing.T) {
		f := newFixture(t)
		wantResult(t, mustHit(t, f.l, "k", rate), 1, true)
	})

	t.Run("LimitThenDenied", func(t *testing.T) {
		f := newFixture(t)
		for i := 1; i <= rate.Limit; i++ {
			wantResult(t, mustHit(t, f.l, "k", rate), i, true)
		}
		for i := rate.Limit + 1; i <= rate.Limit+2; i++ {
			res := mustHit(t, f.l, "k", rate)
			wantResult(t, res, i, false)
			if res.RetryAfter <= 0 || res.RetryAfter > rate.Window {
				t.Fatalf("RetryAfter = %v, want in (0, %v]", res.RetryAfter, rate.Window)
			}
		}
	})

	t.Run("WindowEndResets", func(t *testing.T) {
		f := newFixture(t)
		r := Rate{Limit: 2, Window: f.shortWindow}
		start := time.Now()
		mustHit(t, f.l, "k", r)
		mustHit(t, f.l, "k", r)
		res := mustHit(t, f.l, "k", r)
		wantResult(t, res, 3, false)
		if res.RetryAfter <= 0 || res.RetryAfter > r.Window {
			t.Fatalf("RetryAfter = %v, want in (0, %v]", res.RetryAfter, r.Window)
		}
		// The 100ms slack covers the round trip of the first Hit.
		f.advance(t, start, r.Window+100*time.Millisecond)
		wantResult(t, mustHit(t, f.l, "k", r), 1, true)
	})

	t.Run("Undo", func(t *testing.T) {
		f := newFixture(t)
		ctx := t.Context()
		for range rate.Limit + 1 {
			mustHit(t, f.l, "k", rate)
		}
		// Taking back the denied event lets the count return to the limit.
		if err := f.l.Undo(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		wantResult(t, mustHit(t, f.l, "k", rate), rate.Limit+1, false)
		if err := f.l.Undo(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if err := f.l.Undo(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		wantResult(t, mustHit(t, f.l, "k", rate), rate.Limit, true)
	})

	t.Run("UndoNeverBelowZero", func(t *testing.T) {
		f := newFixture(t)
		ctx := t.Context()
		mustHit(t, f.l, "k", rate)
		for range 5 {
			if err := f.l.Undo(ctx, "k"); err != nil {
				t.Fatal(err)
			}
		}
		wantResult(t, mustHit(t, f.l, "k", rate), 1, true)
	})

	t.Run("UndoMissingKey", func(t *testing.T) {
		f := newFixture(t)
		if err := f.l.Undo(t.Context(), "missing"); err != nil {
			t.Fatal(err)
		}
		if keys := f.stored(t); len(keys) != 0 {
			t.Fatalf("Undo of a missing key stored %d keys", len(keys))
		}
		wantResult(t, mustHit(t, f.l, "missing", rate), 1, true)
	})

	t.Run("Reset", func(t *testing.T) {
		f := newFixture(t)
		ctx := t.Context()
		for range rate.Limit + 1 {
			mustHit(t, f.l, "k", rate)
		}
		if err := f.l.Reset(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if keys := f.stored(t); len(keys) != 0 {
			t.Fatalf("after Reset %d keys remain", len(keys))
		}
		wantResult(t, mustHit(t, f.l, "k", rate), 1, true)
		if err := f.l.Reset(ctx, "never-seen"); err != nil {
			t.Fatalf("Reset of a missing key: %v", err)
		}
	})

	t.Run("DisabledRateStoresNothing", func(t *testing.T) {
		f := newFixture(t)
		for _, r := range []Rate{{}, {Limit: 5}, {Window: time.Minute}} {
			for range 3 {
				res := mustHit(t, f.l, "k", r)
				if res != (Result{Allowed: true}) {
					t.Fatalf("Hit with disabled %+v = %+v, want {Allowed:true}", r, res)
				}
			}
		}
		if keys := f.stored(t); len(keys) != 0 {
			t.Fatalf("disabled Rate stored %d keys", len(keys))
		}
		wantResult(t, mustHit(t, f.l, "k", rate), 1, true)
	})

	t.Run("Concurrent", func(t *testing.T) {
		f := newFixture(t)
		const n, limit = 50, 10
		r := Rate{Limit: limit, Window: time.Minute}
		results := make([]Result, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				results[i], errs[i] = f.l.Hit(context.Background(), "fresh", r)
			})
		}
		close(start)
		wg.Wait()
		allowed := 0
		seen := make(map[int]bool)
		for i, res := range results {
			if errs[i] != nil {
				t.Fatalf("Hit %d: %v", i, errs[i])
			}
			if res.Allowed {
				allowed++
			}
			if res.Allowed != (res.Count <= limit) {
				t.Fatalf("inconsistent result %+v", res)
			}
			seen[res.Count] = true
		}
		if allowed != limit {
			t.Fatalf("%d of %d concurrent Hits allowed, want exactly %d", allowed, n, limit)
		}
		// Atomic counting hands every Hit a distinct count 1..n.
		for c := 1; c <= n; c++ {
			if !seen[c] {
				t.Fatalf("no Hit saw count %d; counts were not atomic", c)
			}
		}
	})

	t.Run("KeysIndependent", func(t *testing.T) {
		f := newFixture(t)
		for range rate.Limit + 1 {
			mustHit(t, f.l, "a", rate)
		}
		wantResult(t, mustHit(t, f.l, "b", rate), 1, true)
		wantResult(t, mustHit(t, f.l, "a|x", rate), 1, true)
		if err := f.l.Reset(t.Context(), "b"); err != nil {
			t.Fatal(err)
		}
		wantResult(t, mustHit(t, f.l, "a", rate), rate.Limit+2, false)
	})

	t.Run("KeyPrivacy", func(t *testing.T) {
		f := newFixture(t)
		const key = "alice@example.com|10.0.0.1"
		for range 3 {
			mustHit(t, f.l, key, rate)
		}
		mustHit(t, f.l, "10.0.0.1", rate)
		keys := f.stored(t)
		if len(keys) != 2 {
			t.Fatalf("stored %d keys, want 2", len(keys))
		}
		for _, k := range keys {
			for _, secret := range []string{"alice", "example.com", "10.0.0.1"} {
				if strings.Contains(k, secret) {
					t.Fatalf("stored key %q contains %q", k, secret)
				}
			}
		}
	})
}
