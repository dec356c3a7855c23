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
	// and blocks (raw digest bytes for Memory, with "b:" before a block's,
	// Redis key names for Redis).
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

func mustBlock(t *testing.T, l Limiter, key string, d time.Duration) {
	t.Helper()
	if err := l.Block(t.Context(), key, d); err != nil {
		t.Fatalf("Block(%q, %v): %v", key, d, err)
	}
}

func mustBlocked(t *testing.T, l Limiter, key string) time.Duration {
	t.Helper()
	d, err := l.Blocked(t.Context(), key)
	if err != nil {
		t.Fatalf("Blocked(%q): %v", key, err)
	}
	return d
}

// wantBlocked fails unless Blocked(key) is in (min, max].
func wantBlocked(t *testing.T, l Limiter, key string, min, max time.Duration) {
	t.Helper()
	if d := mustBlocked(t, l, key); d <= min || d > max {
		t.Fatalf("Blocked(%q) = %v, want in (%v, %v]", key, d, min, max)
	}
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
		mustBlock(t, f.l, key, time.Minute)
		keys := f.stored(t)
		if len(keys) != 3 {
			t.Fatalf("stored %d keys, want 3 (2 counters, 1 block)", len(keys))
		}
		for _, k := range keys {
			for _, secret := range []string{"alice", "example.com", "10.0.0.1"} {
				if strings.Contains(k, secret) {
					t.Fatalf("stored key %q contains %q", k, secret)
				}
			}
		}
	})

	t.Run("NotBlocked", func(t *testing.T) {
		f := newFixture(t)
		if d := mustBlocked(t, f.l, "k"); d != 0 {
			t.Fatalf("Blocked of a never-blocked key = %v, want 0", d)
		}
		// Non-positive durations do nothing, not even store a key.
		for _, d := range []time.Duration{0, -time.Second} {
			mustBlock(t, f.l, "k", d)
			if got := mustBlocked(t, f.l, "k"); got != 0 {
				t.Fatalf("after Block(%v): Blocked = %v, want 0", d, got)
			}
		}
		if keys := f.stored(t); len(keys) != 0 {
			t.Fatalf("non-positive Blocks stored %d keys", len(keys))
		}
	})

	t.Run("BlockNeverShortens", func(t *testing.T) {
		f := newFixture(t)
		// One key through successive Blocks; the lower bounds leave
		// ~0.5s for Redis round trips.
		steps := []struct {
			name     string
			block    time.Duration
			min, max time.Duration // Blocked afterwards is in (min, max]
		}{
			{"first block", 2 * time.Second, 0, 2 * time.Second},
			{"shorter block is ignored", time.Second, 1500 * time.Millisecond, 2 * time.Second},
			{"zero is ignored", 0, 1500 * time.Millisecond, 2 * time.Second},
			{"negative is ignored", -time.Minute, 1500 * time.Millisecond, 2 * time.Second},
			{"longer block extends", time.Minute, 59 * time.Second, time.Minute},
			{"back to shorter is ignored", 2 * time.Second, 59 * time.Second, time.Minute},
		}
		for _, s := range steps {
			mustBlock(t, f.l, "k", s.block)
			if d := mustBlocked(t, f.l, "k"); d <= s.min || d > s.max {
				t.Fatalf("%s: after Block(%v), Blocked = %v, want in (%v, %v]", s.name, s.block, d, s.min, s.max)
			}
		}
	})

	t.Run("BlockExpires", func(t *testing.T) {
		f := newFixture(t)
		// Short, because Redis needs real time to pass.
		const d = 300 * time.Millisecond
		start := time.Now()
		mustBlock(t, f.l, "k", d)
		wantBlocked(t, f.l, "k", 0, d)
		// The 100ms slack covers the round trip of Block.
		f.advance(t, start, d+100*time.Millisecond)
		if got := mustBlocked(t, f.l, "k"); got != 0 {
			t.Fatalf("Blocked after the block ended = %v, want 0", got)
		}
		// An ended block does not get in the way of a new one.
		mustBlock(t, f.l, "k", time.Minute)
		wantBlocked(t, f.l, "k", 0, time.Minute)
	})

	t.Run("BlockSeparateFromCounters", func(t *testing.T) {
		f := newFixture(t)
		ctx := t.Context()
		// Hits, even denied ones, never block.
		for range rate.Limit + 1 {
			mustHit(t, f.l, "k", rate)
		}
		if d := mustBlocked(t, f.l, "k"); d != 0 {
			t.Fatalf("Blocked after Hits = %v, want 0", d)
		}
		// A block leaves the counter of the same key alone...
		mustBlock(t, f.l, "k", time.Minute)
		wantResult(t, mustHit(t, f.l, "k", rate), rate.Limit+2, false)
		// ...and Undo and Reset of the counter leave the block alone.
		if err := f.l.Undo(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if err := f.l.Reset(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		wantBlocked(t, f.l, "k", 0, time.Minute)
		wantResult(t, mustHit(t, f.l, "k", rate), 1, true)

		// A block does not create a counter: the first Hit counts 1, and
		// Undo/Reset of a never-hit key do not clear the block.
		mustBlock(t, f.l, "fresh", time.Minute)
		for _, op := range []func(context.Context, string) error{f.l.Undo, f.l.Reset} {
			if err := op(ctx, "fresh"); err != nil {
				t.Fatal(err)
			}
		}
		wantBlocked(t, f.l, "fresh", 0, time.Minute)
		wantResult(t, mustHit(t, f.l, "fresh", rate), 1, true)
	})
}
