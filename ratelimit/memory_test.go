package ratelimit

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strconv"
	"testing"
	"time"
)

func newMemoryFixture(t *testing.T) (fixture, *Memory, *fakeClock) {
	clk := newFakeClock()
	m := NewMemory(clk.Now)
	return fixture{
		l:           m,
		advance:     func(_ *testing.T, _ time.Time, d time.Duration) { clk.Advance(d) },
		stored:      func(*testing.T) []string { return memoryKeys(m) },
		shortWindow: time.Second,
	}, m, clk
}

// memoryKeys returns the raw map keys of counters and, prefixed with "b:",
// of blocks, white-box.
func memoryKeys(m *Memory) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.entries)+len(m.blocks))
	for k := range m.entries {
		keys = append(keys, string(k[:]))
	}
	for k := range m.blocks {
		keys = append(keys, "b:"+string(k[:]))
	}
	return keys
}

func memoryLen(m *Memory) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

func memoryBlocks(m *Memory) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.blocks)
}

func TestMemoryConformance(t *testing.T) {
	t.Parallel()
	runConformance(t, func(t *testing.T) fixture {
		f, _, _ := newMemoryFixture(t)
		return f
	})
}

func TestMemoryNilNowUsesTimeNow(t *testing.T) {
	t.Parallel()
	m := NewMemory(nil)
	res, err := m.Hit(t.Context(), "k", Rate{Limit: 1, Window: time.Minute})
	if err != nil || res.Count != 1 || !res.Allowed {
		t.Fatalf("Hit = %+v, %v", res, err)
	}
}

func TestMemoryRetryAfterExact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		elapsed time.Duration
		want    time.Duration
	}{
		{"at window start", 0, time.Minute},
		{"mid window", 10 * time.Second, 50 * time.Second},
		{"last moment", time.Minute - time.Nanosecond, time.Nanosecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, m, clk := newMemoryFixture(t)
			r := Rate{Limit: 1, Window: time.Minute}
			mustHit(t, m, "k", r)
			clk.Advance(tc.elapsed)
			res := mustHit(t, m, "k", r)
			if res.Allowed || res.RetryAfter != tc.want {
				t.Fatalf("Hit = %+v, want denied with RetryAfter %v", res, tc.want)
			}
		})
	}
}

// The window is fixed: it starts at the first hit and later hits do not
// extend it.
func TestMemoryFixedWindow(t *testing.T) {
	t.Parallel()
	_, m, clk := newMemoryFixture(t)
	r := Rate{Limit: 5, Window: time.Minute}
	mustHit(t, m, "k", r)
	clk.Advance(59 * time.Second)
	wantResult(t, mustHit(t, m, "k", r), 2, true)
	clk.Advance(time.Second)
	wantResult(t, mustHit(t, m, "k", r), 1, true)
}

// Undo in an expired window must not resurrect or decrement anything.
func TestMemoryUndoExpired(t *testing.T) {
	t.Parallel()
	_, m, clk := newMemoryFixture(t)
	r := Rate{Limit: 5, Window: time.Minute}
	mustHit(t, m, "k", r)
	clk.Advance(2 * time.Minute)
	if err := m.Undo(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if n := memoryLen(m); n != 0 {
		t.Fatalf("expired entry kept after Undo: %d entries", n)
	}
}

func TestMemoryStoresDigestOnly(t *testing.T) {
	t.Parallel()
	_, m, _ := newMemoryFixture(t)
	const key = "alice@example.com|10.0.0.1"
	mustHit(t, m, key, Rate{Limit: 5, Window: time.Minute})
	mustBlock(t, m, key, time.Minute)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.entries) != 1 || len(m.blocks) != 1 {
		t.Fatalf("%d entries and %d blocks, want 1 and 1", len(m.entries), len(m.blocks))
	}
	check := func(what string, k [sha256.Size]byte) {
		if k != sha256.Sum256([]byte(key)) {
			t.Fatalf("%s map key is not the SHA-256 of the key", what)
		}
		if bytes.Contains(k[:], []byte("alice")) {
			t.Fatalf("%s map key contains the e-mail address", what)
		}
	}
	for k := range m.entries {
		check("counter", k)
	}
	for k := range m.blocks {
		check("block", k)
	}
}

func TestMemoryBlockedExact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		elapsed time.Duration
		want    time.Duration
	}{
		{"at once", 0, 2 * time.Second},
		{"later", 500 * time.Millisecond, 1500 * time.Millisecond},
		{"last moment", 2*time.Second - time.Nanosecond, time.Nanosecond},
		{"ended", 2 * time.Second, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, m, clk := newMemoryFixture(t)
			mustBlock(t, m, "k", 2*time.Second)
			clk.Advance(tc.elapsed)
			if got := mustBlocked(t, m, "k"); got != tc.want {
				t.Fatalf("Blocked = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMemorySweep(t *testing.T) {
	t.Parallel()
	window := Rate{Limit: 5, Window: time.Minute}

	t.Run("expired keys are dropped by later hits", func(t *testing.T) {
		_, m, clk := newMemoryFixture(t)
		const n = 5000
		for i := range n {
			mustHit(t, m, fmt.Sprint("old", i), window)
		}
		if got := memoryLen(m); got != n {
			t.Fatalf("%d entries before expiry, want %d (live keys must not be swept)", got, n)
		}
		clk.Advance(2 * window.Window)
		// The map does not grow, so only the hit-count trigger can sweep.
		for range n {
			mustHit(t, m, "live", window)
		}
		if got := memoryLen(m); got != 1 {
			t.Fatalf("%d entries after sweep, want 1", got)
		}
	})

	t.Run("map stays bounded under key churn", func(t *testing.T) {
		_, m, clk := newMemoryFixture(t)
		peak := 0
		for i := range 50_000 {
			mustHit(t, m, fmt.Sprint("churn", i), window)
			// Every key is dead by the time the next one arrives.
			clk.Advance(window.Window)
			peak = max(peak, memoryLen(m))
		}
		if peak > 2*minSweep {
			t.Fatalf("map peaked at %d entries with at most 1 live key", peak)
		}
	})

	t.Run("expired blocks are dropped", func(t *testing.T) {
		const n = 5000
		tests := []struct {
			name string
			op   func(m *Memory) // what drives the sweep after expiry
		}{
			{"by Hits", func(m *Memory) { mustHit(t, m, "live", window) }},
			{"by Blocks", func(m *Memory) { mustBlock(t, m, "live", time.Hour) }},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, m, clk := newMemoryFixture(t)
				for i := range n {
					mustBlock(t, m, fmt.Sprint("old", i), time.Minute)
				}
				if got := memoryBlocks(m); got != n {
					t.Fatalf("%d blocks before expiry, want %d (live blocks must not be swept)", got, n)
				}
				clk.Advance(time.Minute)
				for range n {
					tc.op(m)
				}
				if got, want := memoryLen(m)+memoryBlocks(m), 1; got != want {
					t.Fatalf("%d entries and blocks after sweep, want %d", got, want)
				}
			})
		}
	})

	t.Run("live keys survive", func(t *testing.T) {
		_, m, clk := newMemoryFixture(t)
		long := Rate{Limit: 5, Window: 1000 * time.Hour}
		mustHit(t, m, "keep", long)
		// Enough churn for several sweeps, all well inside the long window.
		for i := range 3 * minSweep {
			mustHit(t, m, fmt.Sprint("short", i), window)
			clk.Advance(window.Window)
		}
		wantResult(t, mustHit(t, m, "keep", long), 2, true)
	})
}

func TestMemoryMaxKeysDefault(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, -1} {
		m := NewMemory(nil)
		m.MaxKeys = n
		if got := m.maxKeys(); got != DefaultMaxKeys {
			t.Fatalf("MaxKeys %d: limit %d, want DefaultMaxKeys (%d)", n, got, DefaultMaxKeys)
		}
	}
}

// A full Memory refuses new keys (fail closed) while keys that already have
// a counter keep counting, and accepts new keys again once windows end.
func TestMemoryMaxKeys(t *testing.T) {
	t.Parallel()
	r := Rate{Limit: 3, Window: time.Minute}
	refused := Result{Count: r.Limit + 1, Allowed: false, RetryAfter: r.Window}
	_, m, clk := newMemoryFixture(t)
	m.MaxKeys = 100

	for i := range 100 {
		wantResult(t, mustHit(t, m, fmt.Sprint("k", i), r), 1, true)
	}
	const refusals = 5
	for i := range refusals {
		if res := mustHit(t, m, fmt.Sprint("new", i), r); res != refused {
			t.Fatalf("Hit on new key %d with a full map = %+v, want %+v", i, res, refused)
		}
	}
	if n := memoryLen(m); n != 100 {
		t.Fatalf("%d entries, want MaxKeys = 100", n)
	}
	if got := m.Overflows(); got != refusals {
		t.Fatalf("Overflows() = %d, want %d", got, refusals)
	}

	// Existing keys are unaffected by the cap.
	wantResult(t, mustHit(t, m, "k0", r), 2, true)
	wantResult(t, mustHit(t, m, "k0", r), 3, true)
	wantResult(t, mustHit(t, m, "k0", r), 4, false)
	wantResult(t, mustHit(t, m, "k99", r), 2, true)

	// Reset frees a slot at once.
	if err := m.Reset(t.Context(), "k99"); err != nil {
		t.Fatal(err)
	}
	wantResult(t, mustHit(t, m, "fresh", r), 1, true)
	if res := mustHit(t, m, "new0", r); res != refused {
		t.Fatalf("Hit on new key with a full map = %+v, want %+v", res, refused)
	}

	// Once the windows have ended, new keys are accepted again.
	clk.Advance(r.Window)
	for i := range 100 {
		wantResult(t, mustHit(t, m, fmt.Sprint("later", i), r), 1, true)
	}
	if got := m.Overflows(); got != refusals+1 {
		t.Fatalf("Overflows() = %d, want %d", got, refusals+1)
	}
}

// Blocks are few and must always be settable, so MaxKeys does not apply.
func TestMemoryBlocksNotCapped(t *testing.T) {
	t.Parallel()
	r := Rate{Limit: 3, Window: time.Minute}
	_, m, _ := newMemoryFixture(t)
	m.MaxKeys = 10
	for i := range 10 {
		mustHit(t, m, fmt.Sprint("k", i), r)
	}
	for i := range 50 {
		mustBlock(t, m, fmt.Sprint("b", i), time.Minute)
	}
	for i := range 50 {
		wantBlocked(t, m, fmt.Sprint("b", i), 0, time.Minute)
	}
	// Blocks do not take counter slots either way.
	if res := mustHit(t, m, "new", r); res.Allowed {
		t.Fatalf("Hit on new key with full counters = %+v, want refused", res)
	}
	wantResult(t, mustHit(t, m, "k0", r), 2, true)
}

// While full, a Hit on a new key sweeps at most once per
// forcedSweepInterval, so a flood of new keys cannot make every Hit O(n).
func TestMemoryMaxKeysForcedSweepThrottled(t *testing.T) {
	t.Parallel()
	r := Rate{Limit: 3, Window: time.Minute}
	_, m, clk := newMemoryFixture(t)
	m.MaxKeys = 100
	for i := range 100 {
		mustHit(t, m, fmt.Sprint("k", i), r)
	}

	steps := []struct {
		name    string
		advance time.Duration
		allowed bool
		entries int
	}{
		// Sweeps (nothing has expired yet) and refuses.
		{"full of live keys", r.Window - forcedSweepInterval/2, false, 100},
		// Every window has ended, but the last sweep was too recent.
		{"expired, sweep too recent", forcedSweepInterval / 2, false, 100},
		{"expired, sweep due", forcedSweepInterval / 2, true, 1},
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		res := mustHit(t, m, fmt.Sprint("new", i), r)
		if res.Allowed != s.allowed {
			t.Fatalf("%s: Hit = %+v, want Allowed %v", s.name, res, s.allowed)
		}
		if n := memoryLen(m); n != s.entries {
			t.Fatalf("%s: %d entries, want %d", s.name, n, s.entries)
		}
	}
}

// Regression: a flood of distinct keys used to grow the map without limit.
func TestMemoryFloodBounded(t *testing.T) {
	t.Parallel()
	const maxKeys = 1000
	r := Rate{Limit: 5, Window: time.Second}
	tests := []struct {
		name string
		hits int
		tick time.Duration // fake time between two Hits
	}{
		{"all keys live", 1_000_000, 0},
		// Fewer Hits: 200 windows' worth is plenty, and the race detector
		// makes each Hit slow.
		{"keys expire during the flood", 200_000, time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, m, clk := newMemoryFixture(t)
			m.MaxKeys = maxKeys
			ctx := t.Context()
			allowed, peak := 0, 0
			for i := range tc.hits {
				// m.Hit rather than mustHit: t.Helper per call would
				// dominate a million iterations.
				res, err := m.Hit(ctx, strconv.Itoa(i), r)
				if err != nil {
					t.Fatal(err)
				}
				if res.Allowed {
					allowed++
				}
				if tc.tick != 0 {
					clk.Advance(tc.tick)
				}
				if i%1000 == 0 {
					peak = max(peak, memoryLen(m))
				}
			}
			peak = max(peak, memoryLen(m))
			if peak > maxKeys {
				t.Fatalf("map reached %d entries, MaxKeys is %d", peak, maxKeys)
			}
			if got := int64(allowed) + m.Overflows(); got != int64(tc.hits) {
				t.Fatalf("%d allowed + %d refused = %d, want %d", allowed, m.Overflows(), got, tc.hits)
			}
			if tc.tick == 0 && allowed != maxKeys {
				t.Fatalf("%d keys allowed with a frozen clock, want %d", allowed, maxKeys)
			}
			if tc.tick > 0 && allowed <= maxKeys {
				t.Fatalf("only %d keys allowed although windows kept ending", allowed)
			}
		})
	}
}
