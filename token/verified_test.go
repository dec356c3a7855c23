package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// A cached verification is never more permissive than a fresh one.
func TestVerifiedCacheRechecks(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))
	_, a, _ := ed25519.GenerateKey(rand.Reader)
	iss, err := NewEdDSAKeySetIssuer([]Key{{Private: a}}, clockOptions(clock))
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := iss.Issue("u", "s", "USER")
	if err != nil {
		t.Fatal(err)
	}
	first, err := iss.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	again, err := iss.Verify(raw) // from the cache
	if err != nil || again != first {
		t.Fatalf("second Verify = %p, %v; want the cached claims %p", again, err, first)
	}
	// A token that differs in one byte is not a hit.
	i := len(raw) - 10
	flipped := byte('A')
	if raw[i] == 'A' {
		flipped = 'B'
	}
	if _, err := iss.Verify(raw[:i] + string(flipped) + raw[i+1:]); !errors.Is(err, ErrInvalid) {
		t.Fatalf("tampered token: %v", err)
	}
	// Expiry is re-checked on a hit.
	clock.Advance(iss.TTL() + iss.leeway + time.Second)
	if _, err := iss.Verify(raw); !errors.Is(err, ErrExpired) {
		t.Fatalf("cached token past exp: %v", err)
	}
	clock.Advance(-(iss.TTL() + iss.leeway + time.Second))
	if _, err := iss.Verify(raw); err != nil {
		t.Fatal(err)
	}
	// Replacing the key set (a rotation, a deleted key file) drops every cached verification.
	_, b, _ := ed25519.GenerateKey(rand.Reader)
	if err := iss.SetKeys([]Key{{Private: b}}); err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Verify(raw); !errors.Is(err, ErrInvalid) {
		t.Fatalf("cached token of a removed key: %v", err)
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	iss, _ := NewEdDSAIssuer(key, Options{Issuer: "i", Audience: "a", TTL: time.Minute})
	raw, _, _ := iss.Issue("u", "s", "USER")
	for b.Loop() {
		if _, err := iss.Verify(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// The cache is bounded, and a full cache drops its least recently used token, not the ones in use.
func TestVerifiedCacheBound(t *testing.T) {
	c := newVerifiedCache()
	key := func(n int) string { return fmt.Sprintf("token-%d", n) }
	for n := range verifiedCacheSize {
		c.put(key(n), verifiedEntry{kid: key(n)})
	}
	if _, ok := c.get(key(0)); !ok { // token 0 is now the most recently used
		t.Fatal("token 0 missing from a cache that is not full yet")
	}
	c.put(key(verifiedCacheSize), verifiedEntry{})
	if n := c.lru.Len(); n != verifiedCacheSize {
		t.Fatalf("%d entries, want the bound %d", n, verifiedCacheSize)
	}
	if _, ok := c.get(key(1)); ok {
		t.Fatal("the least recently used token survived an overflow")
	}
	for _, n := range []int{0, 2, verifiedCacheSize} {
		if e, ok := c.get(key(n)); !ok || (n < verifiedCacheSize && e.kid != key(n)) {
			t.Fatalf("token %d: %+v, %v", n, e, ok)
		}
	}
}

// Building an issuer starts no goroutine (tests build hundreds): golang-lru's expirable.LRU would
// start a cleanup goroutine per cache that can never be stopped; the cache is a plain LRU.
func TestIssuersStartNoGoroutine(t *testing.T) {
	for range 32 {
		iss, err := NewHS256Issuer([]byte(strings.Repeat("s", 32)), Options{Issuer: "i", Audience: "a", TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		raw, _, _ := iss.Issue("u", "s", "USER")
		if _, err := iss.Verify(raw); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "golang-lru") {
		t.Fatalf("a cache goroutine is running:\n%s", stacks)
	}
}

// The zero cache (what BenchmarkVerify uses to measure verification alone) caches nothing and never
// panics.
func TestZeroVerifiedCacheCachesNothing(t *testing.T) {
	t.Parallel()
	var c verifiedCache
	c.put("raw", verifiedEntry{kid: "k"})
	if _, ok := c.get("raw"); ok {
		t.Fatal("the zero cache returned an entry")
	}
}
