package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gqlauth/config"
	"gqlauth/token"
)

func TestRotateKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	cfg := &config.Config{JWTKeysDir: dir, KeyReloadInterval: 30 * time.Second, AccessTokenTTL: 15 * time.Minute}

	// An empty directory gets a first key that is active at once.
	var out strings.Builder
	if err := rotateKeys(cfg, &out); err != nil {
		t.Fatal(err)
	}
	keys, err := token.LoadKeyDir(dir)
	if err != nil || len(keys) != 1 || keys[0].ActivateAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("first key: %v %v\n%s", keys, err, out.String())
	}
	if !strings.Contains(out.String(), keys[0].Kid) || !strings.Contains(out.String(), "first key") {
		t.Errorf("output: %s", out.String())
	}

	// The next rotation activates after 2 × KEY_RELOAD_INTERVAL + the JWKS cache time.
	out.Reset()
	before := time.Now()
	if err := rotateKeys(cfg, &out); err != nil {
		t.Fatal(err)
	}
	keys, err = token.LoadKeyDir(dir)
	if err != nil || len(keys) != 2 {
		t.Fatalf("after rotation: %v %v", keys, err)
	}
	next := keys[1]
	want := 2*cfg.KeyReloadInterval + token.JWKSMaxAge
	if d := next.ActivateAt.Sub(before); d < want || d > want+2*time.Second {
		t.Errorf("activation in %s, want %s", d, want)
	}
	if !strings.Contains(out.String(), next.Kid) || !strings.Contains(out.String(), next.ActivateAt.Format(time.RFC3339)) ||
		!strings.Contains(out.String(), "no retired key files") {
		t.Errorf("output: %s", out.String())
	}

	// A key whose successor has been active longer than TTL + leeway is removed; the others are kept.
	retired, _, err := token.GenerateKeyFile(dir, time.Now().Add(-3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := token.GenerateKeyFile(dir, time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := rotateKeys(cfg, &out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(retired); !os.IsNotExist(err) || !strings.Contains(out.String(), filepath.Base(retired)) {
		t.Errorf("retired key not removed (%v): %s", err, out.String())
	}
	if keys, err := token.LoadKeyDir(dir); err != nil || len(keys) != 4 {
		t.Errorf("left %d keys (%v), want 4", len(keys), err)
	}
}

func TestRotateKeysErrors(t *testing.T) {
	var out strings.Builder
	err := rotateKeys(&config.Config{KeyReloadInterval: time.Second, AccessTokenTTL: time.Minute}, &out)
	if err == nil || !strings.Contains(err.Error(), "JWT_KEYS_DIR is not set") {
		t.Fatalf("err = %v", err)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "20300102T030405Z-abcdefgh.pem")
	if err := os.WriteFile(bad, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = rotateKeys(&config.Config{JWTKeysDir: dir, KeyReloadInterval: time.Second, AccessTokenTTL: time.Minute}, &out)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("err = %v, want one naming %s", err, bad)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("a key was added to a broken directory: %v", entries)
	}
}
