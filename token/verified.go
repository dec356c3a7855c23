package token

import "sync"

// verifiedCacheSize bounds the cache of verified tokens: 16384 entries of ~0.5 KiB, ~8 MiB at most.
const verifiedCacheSize = 1 << 14

// verifiedCache remembers tokens whose signature and claims have been checked, so a client sending
// the same access token again (the common case: one token for many requests) costs a map lookup
// instead of an Ed25519 verification (~45 µs, the largest cost of a protected request). It is keyed by
// the exact token string, so a hit means exactly those bytes were verified. A hit still re-checks what
// can change: expiry against the clock, that the key set is the same one (a rotation or a deleted key
// file invalidates every entry), and that the signing key is not retired. Revocation is checked by the
// caller on every request, cached or not.
type verifiedCache struct {
	mu sync.RWMutex
	m  map[string]verifiedEntry
}

type verifiedEntry struct {
	claims *Claims // shared and never modified
	set    *keySet
	kid    string
}

func (c *verifiedCache) get(raw string) (verifiedEntry, bool) {
	c.mu.RLock()
	e, ok := c.m[raw]
	c.mu.RUnlock()
	return e, ok
}

func (c *verifiedCache) put(raw string, e verifiedEntry) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= verifiedCacheSize {
		// Dropping everything at once keeps the cache simple and bounded; the tokens in use are
		// verified again on their next request and come straight back.
		c.m = make(map[string]verifiedEntry)
	}
	c.m[raw] = e
	c.mu.Unlock()
}
