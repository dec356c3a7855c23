package token

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

const (
	pemTypePrivateKey = "PRIVATE KEY"
	// maxKeyFileSize is far above a PEM Ed25519 key (~120 bytes); it only stops a misconfigured path
	// (a log, a device) from being read into memory whole.
	maxKeyFileSize = 64 << 10
)

// LoadEd25519Key reads an Ed25519 private key stored as a PKCS#8 PEM block ("PRIVATE KEY") at path.
// A missing file yields an error matching fs.ErrNotExist.
func LoadEd25519Key(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("token: read key file: %w", err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("token: key file %s is larger than %d bytes", path, maxKeyFileSize)
	}
	key, err := parseEd25519PEM(data)
	if err != nil {
		return nil, fmt.Errorf("token: key file %s: %w", path, err)
	}
	return key, nil
}

func parseEd25519PEM(data []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if block.Type != pemTypePrivateKey {
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, pemTypePrivateKey)
	}
	// Headers mean a legacy encrypted key; extra data means the file is not what we wrote. Either way
	// guessing could pick the wrong key, so refuse.
	if len(block.Headers) != 0 {
		return nil, errors.New("PEM block has headers (encrypted keys are not supported)")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("unexpected data after the PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#8: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want Ed25519", k)
	}
	return key, nil
}

// LoadOrCreateEd25519Key loads the key at path like LoadEd25519Key or, if no file exists there,
// generates a key and stores it with mode 0600 (creating parent directories with mode 0700), returning
// created=true. The file appears atomically and fully written; when several processes race to create
// it, all of them end up with the one key that was stored first. An existing file that is not a valid
// key is an error and is never overwritten.
func LoadOrCreateEd25519Key(path string) (key ed25519.PrivateKey, created bool, err error) {
	key, err = LoadEd25519Key(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}

	priv, data, err := newEd25519PEM()
	if err != nil {
		return nil, false, err
	}
	if err := createFileExclusive(path, data); err != nil {
		if errors.Is(err, fs.ErrExist) {
			key, err := LoadEd25519Key(path)
			return key, false, err
		}
		return nil, false, err
	}
	return priv, true, nil
}

// newEd25519PEM generates an Ed25519 key and encodes it as a PKCS#8 PEM block.
func newEd25519PEM() (ed25519.PrivateKey, []byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("token: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("token: marshal key: %w", err)
	}
	return priv, pem.EncodeToMemory(&pem.Block{Type: pemTypePrivateKey, Bytes: der}), nil
}

// createFileExclusive stores data at path with mode 0600, creating the parent directories with mode
// 0700. The file appears atomically and fully written, and never replaces an existing one: if path
// exists the error matches fs.ErrExist.
func createFileExclusive(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	// The temp file lives in the target directory so that the link below stays on one filesystem.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	tmpName := tmp.Name()
	// After a successful link the file lives on under path; the temp name is never needed.
	defer os.Remove(tmpName)
	if err := writeAndSync(tmp, data); err != nil {
		return fmt.Errorf("token: write key: %w", err)
	}

	// Link, unlike rename, fails if path already exists, so a concurrent creator's key is never
	// replaced; and since the content was synced first, a reader never sees a partial file.
	if err := os.Link(tmpName, path); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	// Persist the new directory entry too. Some platforms cannot sync directories, and the key is
	// already in place, so this is best effort.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func writeAndSync(f *os.File, data []byte) error {
	// CreateTemp already uses 0600; Chmod makes the mode independent of that detail.
	err := f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
