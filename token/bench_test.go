package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"
)

// Access-token issue and verify, per algorithm (verify without the cache of verified tokens):
//
//	go test -run='^$' -bench='Issue|Verify' -benchmem ./token/
func BenchmarkIssue(b *testing.B) {
	for name, iss := range benchIssuers(b) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := iss.Issue("user", "session", "USER"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for name, iss := range benchIssuers(b) {
		b.Run(name, func(b *testing.B) {
			raw, _, _ := iss.Issue("user", "session", "USER")
			for b.Loop() {
				iss.verified = verifiedCache{} // measure the full check every time
				if _, err := iss.Verify(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchIssuers(b *testing.B) map[string]*Issuer {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	opts := Options{Issuer: "i", Audience: "a", TTL: 15 * time.Minute}
	ed, err := NewEdDSAIssuer(key, opts)
	if err != nil {
		b.Fatal(err)
	}
	hs, err := NewHS256Issuer([]byte(strings.Repeat("s", 32)), opts)
	if err != nil {
		b.Fatal(err)
	}
	return map[string]*Issuer{"EdDSA": ed, "HS256": hs}
}
