package token

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func FuzzVerify(f *testing.F) {
	now := t0
	i, key := newEd(f, &now, 0)

	valid, _, err := i.Issue("user-1", "sess-1", "USER")
	if err != nil {
		f.Fatal(err)
	}
	past := t0.Add(-time.Hour)
	old, err := NewEdDSAIssuer(key, testOptions(&past, 0))
	if err != nil {
		f.Fatal(err)
	}
	expired, _, err := old.Issue("user-1", "sess-1", "USER")
	if err != nil {
		f.Fatal(err)
	}
	refresh, _, err := NewRefreshToken()
	if err != nil {
		f.Fatal(err)
	}

	f.Add(valid)
	f.Add("")
	f.Add(valid[:len(valid)/2])
	f.Add(sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, goodHeader(i.KeyID()), goodClaims(t0)))
	f.Add(sign(f, jwt.SigningMethodEdDSA, testEdKey(9), goodHeader(i.KeyID()), goodClaims(t0)))
	f.Add(expired)
	f.Add(refresh)

	f.Fuzz(func(t *testing.T, raw string) {
		c, err := i.Verify(raw)
		if err != nil {
			if c != nil {
				t.Fatalf("claims with error %v", err)
			}
			if errors.Is(err, ErrInvalid) == errors.Is(err, ErrExpired) {
				t.Fatalf("err %v is not exactly one of ErrInvalid, ErrExpired", err)
			}
			return
		}
		if c.Subject == "" || c.SessionID == "" || c.Role == "" || c.ID == "" {
			t.Fatalf("accepted claims with empty fields: %+v", c)
		}
		if c.ExpiresAt == nil || !c.ExpiresAt.After(now) {
			t.Fatalf("accepted claims with exp %v at %v", c.ExpiresAt, now)
		}
		if c.Issuer != testIss || len(c.Audience) == 0 || !slices.Contains(c.Audience, testAud) {
			t.Fatalf("accepted claims with iss %q aud %q", c.Issuer, c.Audience)
		}
		if len(raw) > MaxAccessTokenLength {
			t.Fatalf("accepted %d-byte token", len(raw))
		}
	})
}
