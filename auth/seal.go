package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
)

// TOTP secrets are stored sealed with AES-256-GCM under one of Options.TOTPKeys, so that a copy of the
// database (a backup, a read replica, an SQL injection) does not give away the second factor of every
// account. The sealed form is
//
//	version (1 byte) | key id (4 bytes) | nonce (12 bytes) | ciphertext and GCM tag
//
// where the key id is the first 4 bytes of SHA-256 of the key, so that the key that sealed a secret
// is found without trying each (the first key seals; every key opens, so a new key can be put first
// and the old one kept until no secret needs it). The additional data is the header and the user's
// id: a sealed secret copied onto another user's row does not open.

const (
	sealVersion    = 1
	sealKeyIDLen   = 4
	sealNonceLen   = 12
	sealHeaderLen  = 1 + sealKeyIDLen
	sealKeyLen     = 32
	sealMinSealLen = sealHeaderLen + sealNonceLen + 16 // an empty plaintext still has its tag
)

// errNoTOTPKey is what enrolment fails with when the service has no TOTP key: a wiring fault.
var errNoTOTPKey = errors.New("auth: no TOTP encryption key configured")

// errSealOpen is what opening a sealed secret fails with: an unknown key, a secret of another user,
// or a tampered or truncated value. Deliberately one error: it is an internal fault either way.
var errSealOpen = errors.New("auth: sealed TOTP secret cannot be opened")

// sealKeyID is the key id written into a sealed value.
func sealKeyID(key []byte) []byte {
	sum := sha256.Sum256(key)
	return sum[:sealKeyIDLen]
}

func sealAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != sealKeyLen {
		return nil, fmt.Errorf("auth: a TOTP key must be %d bytes, not %d", sealKeyLen, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealAD is the additional data of a sealed value: its header and the user's id.
func sealAD(header []byte, userID string) []byte {
	return append(append([]byte{}, header...), userID...)
}

// sealSecret encrypts plain for userID under the first of keys.
func sealSecret(keys [][]byte, userID string, plain []byte) ([]byte, error) {
	if len(keys) == 0 {
		return nil, errNoTOTPKey
	}
	aead, err := sealAEAD(keys[0])
	if err != nil {
		return nil, err
	}
	out := make([]byte, sealHeaderLen+sealNonceLen, sealHeaderLen+sealNonceLen+len(plain)+aead.Overhead())
	out[0] = sealVersion
	copy(out[1:sealHeaderLen], sealKeyID(keys[0]))
	if _, err := rand.Read(out[sealHeaderLen:]); err != nil {
		return nil, fmt.Errorf("auth: seal nonce: %w", err)
	}
	return aead.Seal(out, out[sealHeaderLen:], plain, sealAD(out[:sealHeaderLen], userID)), nil
}

// openSecret decrypts a value sealed for userID under any of keys; it returns errSealOpen (or a key
// error) when it cannot.
func openSecret(keys [][]byte, userID string, sealed []byte) ([]byte, error) {
	if len(keys) == 0 {
		return nil, errNoTOTPKey
	}
	if len(sealed) < sealMinSealLen || sealed[0] != sealVersion {
		return nil, errSealOpen
	}
	header, nonce, ct := sealed[:sealHeaderLen], sealed[sealHeaderLen:sealHeaderLen+sealNonceLen], sealed[sealHeaderLen+sealNonceLen:]
	for _, key := range keys {
		if subtle.ConstantTimeCompare(sealKeyID(key), header[1:]) != 1 {
			continue
		}
		aead, err := sealAEAD(key)
		if err != nil {
			return nil, err
		}
		plain, err := aead.Open(nil, nonce, ct, sealAD(header, userID))
		if err != nil {
			return nil, errSealOpen
		}
		return plain, nil
	}
	return nil, errSealOpen
}
