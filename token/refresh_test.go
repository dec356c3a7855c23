package token

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
)

func TestNewRefreshToken(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		raw, hash, err := NewRefreshToken()
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) != 43 || seen[raw] {
			t.Fatalf("raw = %q (len %d, seen %v)", raw, len(raw), seen[raw])
		}
		seen[raw] = true
		sum := sha256.Sum256([]byte(raw))
		if !bytes.Equal(hash, sum[:]) {
			t.Fatal("hash != sha256(raw)")
		}
		h, ok := HashRefreshToken(raw)
		if !ok || !bytes.Equal(h, hash) {
			t.Fatalf("HashRefreshToken(%q) = %x, %v", raw, h, ok)
		}
	}
}

func TestHashRefreshToken(t *testing.T) {
	t.Parallel()
	valid, _, err := NewRefreshToken()
	if err != nil {
		t.Fatal(err)
	}
	// "A" encodes six zero bits, so 42 of them plus "A" is the canonical form of 32 zero bytes, while
	// "B" as the last char sets one of the two unused trailing bits.
	zeros := strings.Repeat("A", 43)
	for _, tc := range []struct {
		name string
		raw  string
		ok   bool
	}{
		{"fresh token", valid, true},
		{"all zero bytes", zeros, true},
		{"empty", "", false},
		{"too short", valid[:42], false},
		{"too long", valid + "A", false},
		{"padded", valid[:42] + "=", false},
		{"padded 44", valid + "=", false},
		{"std alphabet plus", "+" + valid[1:], false},
		{"std alphabet slash", "/" + valid[1:], false},
		{"space", " " + valid[1:], false},
		{"newline", "\n" + valid[1:], false},
		{"non-zero trailing bits", zeros[:42] + "B", false},
		{"non-ASCII", "é" + valid[2:], false},
		{"an access token", "eyJhbGciOiJIUzI1NiJ9.e30.xxxxxxxxxxxxxxxxxx", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, ok := HashRefreshToken(tc.raw)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if ok != (h != nil) {
				t.Fatalf("hash = %x with ok = %v", h, ok)
			}
		})
	}
}
