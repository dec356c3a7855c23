package ratelimit

import (
	"bytes"
	"crypto/sha256"
	"fmt"
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

// memoryKeys returns the raw map keys, white-box.
func memoryKeys(m *Memory) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.entries))
	for k := range m.entries {
		keys = append(keys, string(k[:]))
	}
	return keys
}

func memoryLen(m *Memory) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

func TestMemoryConformance(t *testing.T) {
	runConformance(t, func(t *testing.T) fixture {
		f, _, _ := newMemoryFixture(t)
		return f
	})
}

func TestMemoryNilNowUsesTimeNow(t *testing.T) {
	m := NewMemory(nil)
	res, err := m.Hit(t.Context(), "k", Rate{Limit: 1, Window: time.Minute})
	if err != nil || res.Count != 1 || !res.Allowed {
		t.Fatalf("Hit = %+v, %v", res, err)
	}
}

func TestMemoryRetryAfterExact(t *testing.T) {
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
	_, m, _ := newMemoryFixture(t)
	const key = "alice@example.com|10.0.0.1"
	mustHit(t, m, key, Rate{Limit: 5, Window: time.Minute})
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.entries) != 1 {
		t.Fatalf("%d entries, want 1", len(m.entries))
	}
	for k := range m.entries {
		if k != sha256.Sum256([]byte(key)) {
			t.Fatalf("map key is not the SHA-256 of the key")
		}
		if bytes.Contains(k[:], []byte("alice")) {
			t.Fatalf("map key contains the e-mail address")
		}
	}
}

func TestMemorySweep(t *testing.T) {
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
