package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// RefreshTokenBytes is the entropy of a refresh token. 256 random bits make guessing hopeless, which
// is why a fast unsalted SHA-256 is enough to store them.
const RefreshTokenBytes = 32

// refreshTokenLength is base64.RawURLEncoding.EncodedLen(RefreshTokenBytes).
const refreshTokenLength = 43

// NewRefreshToken returns a fresh opaque refresh token for the client (RefreshTokenBytes random bytes,
// base64url without padding) and its SHA-256 digest, which is all the server should store.
func NewRefreshToken() (raw string, hash []byte, err error) {
	b := make([]byte, RefreshTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("token: refresh token: %w", err)
	}
	raw = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(raw))
	return raw, sum[:], nil
}

// HashRefreshToken returns the SHA-256 digest of raw for a database lookup. ok is false when raw cannot
// be a token from NewRefreshToken, so callers can reject it without touching the database.
func HashRefreshToken(raw string) (hash []byte, ok bool) {
	if len(raw) != refreshTokenLength {
		return nil, false
	}
	// Strict rejects non-zero trailing bits, so each token has exactly one accepted spelling; the
	// length check on the result catches the newlines base64 decoding silently skips.
	b, err := base64.RawURLEncoding.Strict().DecodeString(raw)
	if err != nil || len(b) != RefreshTokenBytes {
		return nil, false
	}
	sum := sha256.Sum256([]byte(raw))
	return sum[:], true
}
