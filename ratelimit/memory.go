package ratelimit

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"
)

// minSweep is the smallest map size / hit count that triggers a sweep, so
// small maps are not rescanned on every few Hits.
const minSweep = 1024

// Memory is the in-process Limiter, used when no Redis is configured and as
// the Fallback secondary. Counters are per process, so with several replicas
// each one enforces the limit separately.
//
// Expired windows are swept lazily during Hit instead of by a background
// goroutine, so a Memory needs no Close and cannot leak a goroutine. A sweep
// runs when the map has doubled since the previous sweep or when as many Hits
// as there are entries have happened since; both make the O(n) sweep cost
// amortised O(1) per Hit while keeping memory bounded by roughly twice the
// number of live keys.
type Memory struct {
	now func() time.Time

	mu      sync.Mutex
	entries map[[sha256.Size]byte]*memEntry
	// sweepLen is the map size that triggers the next sweep.
	sweepLen int
	// hits counts Hits since the last sweep; it bounds how long expired
	// entries survive when the map is not growing.
	hits int
}

type memEntry struct {
	count   int
	expires time.Time
}

// NewMemory returns an empty Memory that reads the time from now; a nil now
// means time.Now. Tests inject a fake clock to move across windows without
// sleeping.
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{
		now:      now,
		entries:  make(map[[sha256.Size]byte]*memEntry),
		sweepLen: minSweep,
	}
}

// Hit implements Limiter. It never returns an error.
func (m *Memory) Hit(_ context.Context, key string, r Rate) (Result, error) {
	if !r.Enabled() {
		return Result{Allowed: true}, nil
	}
	k := digest(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.maybeSweep(now)
	e, ok := m.entries[k]
	if !ok {
		e = &memEntry{}
		m.entries[k] = e
	}
	if !now.Before(e.expires) {
		// First hit, or the previous window is over: start a new one. The
		// entry is reused in place rather than deleted and re-added.
		e.count = 0
		e.expires = now.Add(r.Window)
	}
	e.count++
	return result(e.count, r, e.expires.Sub(now)), nil
}

// Undo implements Limiter. It never returns an error.
func (m *Memory) Undo(_ context.Context, key string) error {
	k := digest(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[k]
	if !ok {
		return nil
	}
	if !m.now().Before(e.expires) {
		// Nothing left to take back in an expired window.
		delete(m.entries, k)
		return nil
	}
	if e.count > 0 {
		e.count--
	}
	return nil
}

// Reset implements Limiter. It never returns an error.
func (m *Memory) Reset(_ context.Context, key string) error {
	k := digest(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, k)
	return nil
}

// maybeSweep drops expired entries when a sweep is due. m.mu must be held.
func (m *Memory) maybeSweep(now time.Time) {
	m.hits++
	n := len(m.entries)
	if n < m.sweepLen && m.hits < max(minSweep, n) {
		return
	}
	for k, e := range m.entries {
		if !now.Before(e.expires) {
			delete(m.entries, k)
		}
	}
	if live := len(m.entries); n > minSweep && live < n/4 {
		// Go maps never release their buckets on delete, so after a burst
		// of keys (e.g. a credential-stuffing wave) the table would stay at
		// its peak size forever. Copying into a right-sized map lets the GC
		// reclaim it; the copy costs no more than the sweep itself.
		fresh := make(map[[sha256.Size]byte]*memEntry, live)
		for k, e := range m.entries {
			fresh[k] = e
		}
		m.entries = fresh
	}
	m.hits = 0
	m.sweepLen = max(minSweep, 2*len(m.entries))
}
