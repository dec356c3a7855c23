package token

import lru "github.com/hashicorp/golang-lru/v2"

// verifiedCacheSize bounds the cache of verified tokens: 16384 entries of ~0.5 KiB, ~8 MiB at most.
const verifiedCacheSize = 1 << 14

// verifiedCache remembers tokens whose signature and claims have been checked, so a client sending
// the same access token again (the common case: one token for many requests) costs a map lookup
// instead of an Ed25519 verification (~45 µs, the largest cost of a protected request). It is keyed by
// the exact token string, so a hit means exactly those bytes were verified. A hit still re-checks what
// can change: expiry against the clock, that the key set is the same one (a rotation or a deleted key
// file invalidates every entry), and that the signing key is not retired. Revocation is checked by the
// caller on every request, cached or not.
//
// The entries live in a bounded LRU (hashicorp/golang-lru's lru.Cache): past verifiedCacheSize the
// least recently used token goes, so the tokens in use stay. Not the same module's expirable.LRU:
// each entry already carries its token's exp, which Verify checks against the Issuer's clock (tests
// move a fake one, which expirable cannot read); expirable reads the wall clock on every Get, which
// made a cached Verify almost twice as slow (BenchmarkVerifyCached); and with a TTL it runs a
// cleanup goroutine per cache that the library (v2.0.7) offers no way to stop, which a constructor
// must not start. An expired token left in the cache only takes a slot until the LRU pushes it out.
//
// The zero verifiedCache caches nothing (BenchmarkVerify uses one to measure the full check).
type verifiedCache struct {
	lru *lru.Cache[string, verifiedEntry]
}

type verifiedEntry struct {
	claims *Claims // shared and never modified
	set    *keySet
	kid    string
}

func newVerifiedCache() verifiedCache {
	c, err := lru.New[string, verifiedEntry](verifiedCacheSize)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	return verifiedCache{lru: c}
}

func (c verifiedCache) get(raw string) (verifiedEntry, bool) {
	if c.lru == nil {
		return verifiedEntry{}, false
	}
	return c.lru.Get(raw)
}

func (c verifiedCache) put(raw string, e verifiedEntry) {
	if c.lru != nil {
		c.lru.Add(raw, e)
	}
}
