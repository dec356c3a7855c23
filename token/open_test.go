package token

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gqlauth/internal/testlog"
)

func TestOpenIssuer(t *testing.T) {
	opts := Options{Issuer: testIss, Audience: testAud, TTL: testTTL}
	open := func(t *testing.T, src Source) (*Issuer, string, error) {
		t.Helper()
		var logs bytes.Buffer
		iss, err := OpenIssuer(src, opts, slog.New(slog.NewTextHandler(&logs, nil)))
		return iss, logs.String(), err
	}

	t.Run("secret wins", func(t *testing.T) {
		iss, _, err := open(t, Source{Secret: bytes.Repeat([]byte("s"), 32), KeysDir: t.TempDir(), KeyFile: "unused.pem"})
		if err != nil || iss.Algorithm() != "HS256" {
			t.Fatalf("OpenIssuer: %v, %v", iss, err)
		}
	})

	t.Run("key file generated once", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "jwt-ed25519.pem")
		first, logs, err := open(t, Source{KeyFile: path, Production: true})
		if err != nil || first.Algorithm() != "EdDSA" || !strings.Contains(logs, "generated a new Ed25519 signing key") {
			t.Fatalf("first open: %v, %q", err, logs)
		}
		second, logs, err := open(t, Source{KeyFile: path})
		if err != nil || second.KeyID() != first.KeyID() || logs != "" {
			t.Fatalf("second open: kid %s vs %s, %v, %q", second.KeyID(), first.KeyID(), err, logs)
		}
	})

	t.Run("key file unreadable", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "key.pem")
		if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := open(t, Source{KeyFile: path}); err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("err = %v, want one naming %s", err, path)
		}
	})

	t.Run("empty key dir in development gets a first key", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "keys") // missing, too
		iss, logs, err := open(t, Source{KeysDir: dir})
		if err != nil || iss.Algorithm() != "EdDSA" {
			t.Fatalf("OpenIssuer: %v", err)
		}
		keys, err := LoadKeyDir(dir)
		if err != nil || len(keys) != 1 || keys[0].Kid != iss.KeyID() {
			t.Fatalf("key dir after open: %v, %v", keys, err)
		}
		if !strings.Contains(logs, "generated a first Ed25519 signing key") || !strings.Contains(logs, "signing keys loaded") {
			t.Fatalf("logs: %q", logs)
		}
	})

	t.Run("empty key dir in production is refused", func(t *testing.T) {
		for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "missing")} {
			_, _, err := open(t, Source{KeysDir: dir, Production: true})
			if err == nil || !strings.Contains(err.Error(), "JWT_KEYS_DIR") || !strings.Contains(err.Error(), "authctl keys rotate") {
				t.Fatalf("%s: err = %v", dir, err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("production generated a key: %v", entries)
			}
		}
	})

	t.Run("corrupt key dir", func(t *testing.T) {
		dir := t.TempDir()
		if _, _, err := GenerateKeyFile(dir, t0); err != nil {
			t.Fatal(err)
		}
		bad := filepath.Join(dir, "20300102T030405Z-abcdefgh.pem")
		if err := os.WriteFile(bad, []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := open(t, Source{KeysDir: dir}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Fatalf("err = %v, want one naming %s", err, bad)
		}
	})
}

// WatchKeyDir picks up a new key without a restart, keeps the current keys when the directory is
// broken (logging it), and returns when its context ends.
func TestWatchKeyDir(t *testing.T) {
	dir := t.TempDir()
	_, kidA, _ := GenerateKeyFile(dir, time.Now().Add(-time.Hour))
	iss, err := OpenIssuer(Source{KeysDir: dir}, Options{Issuer: testIss, Audience: testAud, TTL: testTTL}, slog.New(slog.DiscardHandler))
	if err != nil || iss.KeyID() != kidA {
		t.Fatalf("OpenIssuer: %v", err)
	}
	var logs testlog.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		iss.WatchKeyDir(ctx, dir, 10*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("WatchKeyDir did not return when its context ended")
		}
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; log:\n%s", what, logs.String())
			}
		}
	}

	bad := filepath.Join(dir, "20300102T030405Z-abcdefgh.pem")
	if err := os.WriteFile(bad, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, kidB, _ := GenerateKeyFile(dir, time.Now().Add(-time.Minute))
	waitFor("a warning about the broken directory", func() bool {
		return strings.Contains(logs.String(), "level=WARN msg=\"signing keys not reloaded; keeping the current keys\"")
	})
	if iss.KeyID() != kidA {
		t.Fatal("a broken directory changed the signer")
	}
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	waitFor("the new key to sign", func() bool { return iss.KeyID() == kidB })
	waitFor("the reload to be logged", func() bool { return strings.Contains(logs.String(), "signing keys reloaded") })
}

// Key sources that cannot be used fail with an error naming them; a nil logger is slog.Default().
func TestOpenIssuerUnusableSources(t *testing.T) {
	t.Parallel()
	opts := Options{Issuer: testIss, Audience: testAud, TTL: testTTL}
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		src  Source
		want string
	}{
		{"key file under a file", Source{KeyFile: filepath.Join(file, "jwt.pem")}, "signing key " + filepath.Join(file, "jwt.pem")},
		{"key directory under a file, development", Source{KeysDir: filepath.Join(file, "keys")}, "JWT_KEYS_DIR"},
	} {
		if _, err := OpenIssuer(tc.src, opts, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
}
