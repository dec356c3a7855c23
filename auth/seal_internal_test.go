package auth

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func testKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, sealKeyLen)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// A sealed secret opens for its user, under its key, and is not the plain secret.
func TestSealRoundTrip(t *testing.T) {
	k := testKey(t)
	plain := []byte("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
	sealed, err := sealSecret([][]byte{k}, "user-1", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, plain) {
		t.Fatal("the sealed value contains the plain secret")
	}
	if len(sealed) != sealHeaderLen+sealNonceLen+len(plain)+16 || sealed[0] != sealVersion || !bytes.Equal(sealed[1:5], sealKeyID(k)) {
		t.Fatalf("format: % x", sealed[:sealHeaderLen])
	}
	got, err := openSecret([][]byte{k}, "user-1", sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open = %q, %v", got, err)
	}
	// A fresh nonce every time: sealing twice gives two values.
	again, _ := sealSecret([][]byte{k}, "user-1", plain)
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of the same secret are equal (nonce reused)")
	}
}

// The user id is additional data: a value copied onto another user's row does not open.
func TestSealBoundToUser(t *testing.T) {
	k := testKey(t)
	sealed, _ := sealSecret([][]byte{k}, "user-1", []byte("secret"))
	if _, err := openSecret([][]byte{k}, "user-2", sealed); !errors.Is(err, errSealOpen) {
		t.Fatalf("open for another user = %v, want errSealOpen", err)
	}
}

// Rotation: the first key seals, every key opens; a value of a key no longer listed does not open.
func TestSealKeyRotation(t *testing.T) {
	oldKey, newKey := testKey(t), testKey(t)
	sealedOld, _ := sealSecret([][]byte{oldKey}, "u", []byte("old"))
	keys := [][]byte{newKey, oldKey}
	if got, err := openSecret(keys, "u", sealedOld); err != nil || string(got) != "old" {
		t.Fatalf("open under the rotated keys = %q, %v", got, err)
	}
	sealedNew, _ := sealSecret(keys, "u", []byte("new"))
	if !bytes.Equal(sealedNew[1:5], sealKeyID(newKey)) {
		t.Fatal("the first key did not seal")
	}
	if _, err := openSecret([][]byte{oldKey}, "u", sealedNew); !errors.Is(err, errSealOpen) {
		t.Fatalf("open without the sealing key = %v, want errSealOpen", err)
	}
	if _, err := openSecret(nil, "u", sealedNew); !errors.Is(err, errNoTOTPKey) {
		t.Fatalf("open without keys = %v", err)
	}
	if _, err := sealSecret(nil, "u", []byte("x")); !errors.Is(err, errNoTOTPKey) {
		t.Fatalf("seal without keys = %v", err)
	}
	if _, err := sealSecret([][]byte{make([]byte, 16)}, "u", []byte("x")); err == nil {
		t.Fatal("a 16-byte key sealed (AES-256 needs 32)")
	}
}

// Any change to a sealed value (each byte flipped in turn, or a truncation) makes it fail to open.
func TestSealTampering(t *testing.T) {
	k := testKey(t)
	sealed, _ := sealSecret([][]byte{k}, "u", []byte("JBSWY3DPEHPK3PXP"))
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if _, err := openSecret([][]byte{k}, "u", bad); err == nil {
			t.Fatalf("a value with byte %d flipped opened", i)
		}
	}
	for _, n := range []int{0, 1, sealHeaderLen, sealHeaderLen + sealNonceLen, len(sealed) - 1} {
		if _, err := openSecret([][]byte{k}, "u", sealed[:n]); err == nil {
			t.Fatalf("a value cut to %d bytes opened", n)
		}
	}
}
