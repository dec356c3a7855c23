package ratelimit

import (
	"context"
	"crypto/sha256"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// minSweep is the smallest map size / hit count that triggers a sweep, so
// small maps are not rescanned on every few Hits.
const minSweep = 1024

// DefaultMaxKeys is the number of counters a Memory holds when MaxKeys is 0:
// 512Ki entries, roughly 64 MiB with map overhead, far above the number of
// keys that legitimate traffic keeps live in one window.
const DefaultMaxKeys = 1 << 19

// forcedSweepInterval is how often, at most, a Hit on a full Memory may
// sweep to make room for a new key; in between, new keys are refused at once.
const forcedSweepInterval = time.Second

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
//
// The number of counters is also capped at MaxKeys, because an attacker who
// sends a flood of distinct keys (e.g. random e-mail addresses) would
// otherwise keep that many windows live and grow the map without limit. A
// Hit that needs a new counter while the map is full is refused: it returns
// Result{Count: Limit+1, Allowed: false, RetryAfter: Window} and no error, and
// is counted in Overflows. Refusing is the safe side for brute-force defence
// (an error would let the attempt through) and keys that already have a
// counter keep working. Before refusing, a Hit sweeps expired entries, but
// only if no sweep has run for a second; otherwise it refuses at once. So a
// full map costs at most one extra O(MaxKeys) sweep per second on top of the
// amortised sweeps, never one per Hit, and newcomers are admitted again at
// most a second after old windows end.
//
// Blocks (see Block) live in a separate map that is swept together with the
// counters but is not subject to MaxKeys: a block is set only after many
// failures of one account, so blocks are few.
type Memory struct {
	// MaxKeys is the maximum number of counters held; 0 (or negative) means
	// DefaultMaxKeys. Set it before first use.
	MaxKeys int

	now func() time.Time

	mu      sync.Mutex
	entries map[[sha256.Size]byte]*memEntry
	// blocks maps a key digest to the end of its block.
	blocks map[[sha256.Size]byte]time.Time
	// sweepLen is the combined map size that triggers the next sweep.
	sweepLen int
	// ops counts Hits and Blocks since the last sweep; it bounds how long
	// expired entries survive when the maps are not growing.
	ops int
	// lastSweep is when the last sweep ran; it rate-limits forced sweeps.
	lastSweep time.Time

	overflows atomic.Int64
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
		blocks:   make(map[[sha256.Size]byte]time.Time),
		sweepLen: minSweep,
	}
}

// Overflows returns how many Hits were refused because the map already held
// MaxKeys counters (for a metric: a rising value means a flood of distinct
// keys, or a MaxKeys too small for the traffic).
func (m *Memory) Overflows() int64 {
	return m.overflows.Load()
}

func (m *Memory) maxKeys() int {
	if m.MaxKeys <= 0 {
		return DefaultMaxKeys
	}
	return m.MaxKeys
}

// Hit implements Limiter. It never returns an error; when the map is full it
// refuses new keys as described on Memory.
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
		if !m.roomForNew(now) {
			m.overflows.Add(1)
			return Result{Count: r.Limit + 1, Allowed: false, RetryAfter: r.Window}, nil
		}
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

// roomForNew reports whether a new counter may be added, sweeping first when
// the map is full and no sweep has run for forcedSweepInterval. m.mu must be
// held.
func (m *Memory) roomForNew(now time.Time) bool {
	limit := m.maxKeys()
	if len(m.entries) < limit {
		return true
	}
	if now.Sub(m.lastSweep) < forcedSweepInterval {
		return false
	}
	m.sweep(now)
	return len(m.entries) < limit
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

// Block implements Limiter. It never returns an error. Blocks are not
// limited by MaxKeys.
func (m *Memory) Block(_ context.Context, key string, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	k := digest(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	// Blocks count towards the sweep trigger like Hits, so they are swept
	// even when only Block and Blocked are in use.
	m.maybeSweep(now)
	until := now.Add(d)
	if cur, ok := m.blocks[k]; !ok || cur.Before(until) {
		m.blocks[k] = until
	}
	return nil
}

// Blocked implements Limiter. It never returns an error.
func (m *Memory) Blocked(_ context.Context, key string) (time.Duration, error) {
	k := digest(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	until, ok := m.blocks[k]
	if !ok {
		return 0, nil
	}
	left := until.Sub(m.now())
	if left <= 0 {
		delete(m.blocks, k)
		return 0, nil
	}
	return left, nil
}

// maybeSweep drops expired entries when a sweep is due. m.mu must be held.
func (m *Memory) maybeSweep(now time.Time) {
	m.ops++
	n := len(m.entries) + len(m.blocks)
	if n < m.sweepLen && m.ops < max(minSweep, n) {
		return
	}
	m.sweep(now)
}

// sweep drops expired counters and blocks. m.mu must be held.
func (m *Memory) sweep(now time.Time) {
	m.entries = sweepMap(m.entries, func(e *memEntry) bool { return !now.Before(e.expires) })
	m.blocks = sweepMap(m.blocks, func(until time.Time) bool { return !now.Before(until) })
	m.ops = 0
	m.sweepLen = max(minSweep, 2*(len(m.entries)+len(m.blocks)))
	m.lastSweep = now
}

// sweepMap deletes the values of mp for which expired is true and returns
// mp, or a right-sized copy of it when most entries were dropped.
func sweepMap[V any](mp map[[sha256.Size]byte]V, expired func(V) bool) map[[sha256.Size]byte]V {
	n := len(mp)
	for k, v := range mp {
		if expired(v) {
			delete(mp, k)
		}
	}
	if live := len(mp); n > minSweep && live < n/4 {
		// Go maps never release their buckets on delete, so after a burst
		// of keys (e.g. a credential-stuffing wave) the table would stay at
		// its peak size forever. Copying into a right-sized map lets the GC
		// reclaim it; the copy costs no more than the sweep itself.
		fresh := make(map[[sha256.Size]byte]V, live)
		maps.Copy(fresh, mp)
		return fresh
	}
	return mp
}
