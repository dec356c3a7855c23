package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
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
