package token

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateEd25519Key(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "nested", "keys", "signing.pem")

	key, created, err := LoadOrCreateEd25519Key(path)
	if err != nil || !created || len(key) == 0 {
		t.Fatalf("first call: key %d bytes, created %v, err %v", len(key), created, err)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("key file mode = %v, want 0600", fi.Mode().Perm())
		}
		di, err := os.Stat(filepath.Dir(path))
		if err != nil {
			t.Fatal(err)
		}
		if di.Mode().Perm() != 0o700 {
			t.Errorf("created dir mode = %v, want 0700", di.Mode().Perm())
		}
	}
	assertOnlyFile(t, filepath.Dir(path), "signing.pem")

	again, created, err := LoadOrCreateEd25519Key(path)
	if err != nil || created || !key.Equal(again) {
		t.Fatalf("second call: same key %v, created %v, err %v", key.Equal(again), created, err)
	}
	loaded, err := LoadEd25519Key(path)
	if err != nil || !key.Equal(loaded) {
		t.Fatalf("LoadEd25519Key: same %v, err %v", key.Equal(loaded), err)
	}
	// The file is one plain PKCS#8 block, readable by other tools (e.g. openssl pkey).
	data, _ := os.ReadFile(path)
	if block, rest := pem.Decode(data); block == nil || block.Type != "PRIVATE KEY" || len(rest) != 0 {
		t.Errorf("file is not a single PRIVATE KEY block: %q", data)
	}
}

func TestLoadOrCreateRefusesBadFiles(t *testing.T) {
	t.Parallel()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	goodDER, err := x509.MarshalPKCS8PrivateKey(testEdKey(1))
	if err != nil {
		t.Fatal(err)
	}
	goodPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: goodDER})

	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"garbage", []byte("definitely not a key\n")},
		{"empty", nil},
		{"ECDSA key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})},
		{"wrong PEM type", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: goodDER})},
		{"corrupt DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: goodDER[:20]})},
		{"PEM headers", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: goodDER})},
		{"trailing data", append(append([]byte(nil), goodPEM...), "junk"...)},
		{"two keys", append(append([]byte(nil), goodPEM...), goodPEM...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key.pem")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadEd25519Key(path); err == nil {
				t.Error("LoadEd25519Key accepted it")
			}
			key, created, err := LoadOrCreateEd25519Key(path)
			if err == nil || created || key != nil {
				t.Fatalf("key %v, created %v, err %v", key, created, err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, tc.data) {
				t.Error("file was modified")
			}
			assertOnlyFile(t, filepath.Dir(path), "key.pem")
		})
	}

	t.Run("control: valid file loads", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "key.pem")
		if err := os.WriteFile(path, goodPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		key, created, err := LoadOrCreateEd25519Key(path)
		if err != nil || created || !key.Equal(testEdKey(1)) {
			t.Fatalf("created %v, err %v", created, err)
		}
	})

	t.Run("path is a directory", func(t *testing.T) {
		path := t.TempDir()
		if _, _, err := LoadOrCreateEd25519Key(path); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestLoadEd25519KeyMissing(t *testing.T) {
	t.Parallel()
	_, err := LoadEd25519Key(filepath.Join(t.TempDir(), "absent.pem"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
}

// Not parallel: the race it sets up (several callers missing the file at once, so that all but one
// lose at the link) is reliably reached only when its goroutines have the CPUs to themselves.
func TestLoadOrCreateConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k", "key.pem")
	const n = 8
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		keys    [n][]byte
		created [n]bool
		errs    [n]error
	)
	for g := range n {
		wg.Go(func() {
			<-start
			keys[g], created[g], errs[g] = LoadOrCreateEd25519Key(path)
		})
	}
	close(start)
	wg.Wait()

	winners := 0
	for g := range n {
		if errs[g] != nil {
			t.Fatalf("goroutine %d: %v", g, errs[g])
		}
		if !bytes.Equal(keys[g], keys[0]) {
			t.Errorf("goroutine %d got a different key", g)
		}
		if created[g] {
			winners++
		}
	}
	if winners != 1 {
		t.Errorf("%d callers report created=true, want 1", winners)
	}
	onDisk, err := LoadEd25519Key(path)
	if err != nil || !bytes.Equal(onDisk, keys[0]) {
		t.Fatalf("stored key differs from returned key (err %v)", err)
	}
	assertOnlyFile(t, filepath.Dir(path), "key.pem")
}

// assertOnlyFile checks that no temp files were left behind.
func assertOnlyFile(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != name {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("dir holds %v, want only %s", names, name)
	}
}

// A key file larger than any PEM key is refused before it is parsed.
func TestLoadEd25519KeyRefusesLargeFiles(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "big.pem")
	if err := os.WriteFile(path, make([]byte, maxKeyFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadEd25519Key(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("LoadEd25519Key: %v, want a size error", err)
	}
}
