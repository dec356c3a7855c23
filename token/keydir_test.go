package token

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGenerateKeyFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "nested", "keys")
	at := time.Date(2031, 5, 6, 7, 8, 9, 250e6, time.FixedZone("CEST", 2*3600))
	path, kid, err := GenerateKeyFile(dir, at)
	if err != nil {
		t.Fatal(err)
	}
	// Named in UTC, rounded up to the next second so the key never activates early.
	if want := filepath.Join(dir, "20310506T050810Z-"+kid[:8]+".pem"); path != want {
		t.Fatalf("path = %s, want %s", path, want)
	}
	if runtime.GOOS != "windows" {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file mode %v (%v), want 0600", fi.Mode().Perm(), err)
		}
		if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
			t.Fatalf("dir mode %v (%v), want 0700", di.Mode().Perm(), err)
		}
	}
	assertOnlyFile(t, dir, filepath.Base(path))
	keys, err := LoadKeyDir(dir)
	if err != nil || len(keys) != 1 {
		t.Fatalf("LoadKeyDir: %v %v", keys, err)
	}
	k := keys[0]
	if k.Kid != kid || !k.ActivateAt.Equal(time.Date(2031, 5, 6, 5, 8, 10, 0, time.UTC)) || len(k.Private) == 0 {
		t.Fatalf("loaded %s at %v", k.Kid, k.ActivateAt)
	}
	// A whole-second time is kept as it is.
	path2, kid2, err := GenerateKeyFile(dir, time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil || filepath.Base(path2) != "20310101T000000Z-"+kid2[:8]+".pem" || kid2 == kid {
		t.Fatalf("second key %s %s %v", path2, kid2, err)
	}
}

func TestLoadKeyDir(t *testing.T) {
	t.Parallel()
	t.Run("sorted, foreign files ignored, symlinks followed", func(t *testing.T) {
		dir := t.TempDir()
		late, kidLate, _ := GenerateKeyFile(dir, t0.Add(time.Hour))
		_, kidEarly, _ := GenerateKeyFile(dir, t0.Add(-time.Hour))
		_, kidMid, _ := GenerateKeyFile(dir, t0)
		// Things a key directory may also hold; none is a key file.
		for name, data := range map[string]string{
			"README":                             "keys",
			"key.pem":                            "not a key file name",
			".20300102T030405Z-abcdefgh.pem.tmp": "temp",
			"20300102T030405Z-abcdefgh.pem.bak":  "backup",
			"20300102T030405Z-abcdefg.pem":       "kid too short",
		} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Mkdir(filepath.Join(dir, "..data"), 0o700); err != nil {
			t.Fatal(err)
		}
		// Kubernetes Secret volumes present each key as a symbolic link.
		if runtime.GOOS != "windows" {
			target := filepath.Join(dir, "..data", filepath.Base(late))
			if err := os.Rename(late, target); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join("..data", filepath.Base(late)), late); err != nil {
				t.Fatal(err)
			}
		}
		keys, err := LoadKeyDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var kids []string
		for _, k := range keys {
			kids = append(kids, k.Kid)
		}
		if !slices.Equal(kids, []string{kidEarly, kidMid, kidLate}) {
			t.Fatalf("kids %v, want early, mid, late", kids)
		}
		if !keys[0].ActivateAt.Equal(t0.Add(-time.Hour)) || keys[0].ActivateAt.Location() != time.UTC {
			t.Fatalf("activation %v", keys[0].ActivateAt)
		}
	})

	t.Run("empty and missing", func(t *testing.T) {
		dir := t.TempDir()
		_ = os.WriteFile(filepath.Join(dir, "README"), nil, 0o600)
		if _, err := LoadKeyDir(dir); !errors.Is(err, ErrNoKeys) {
			t.Fatalf("empty dir: %v, want ErrNoKeys", err)
		}
		if _, err := LoadKeyDir(filepath.Join(dir, "absent")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("missing dir: %v, want fs.ErrNotExist", err)
		}
	})

	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the file the error must name
	}{
		{"corrupt key", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "20300102T030405Z-abcdefgh.pem")
			_ = os.WriteFile(p, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
			return p
		}},
		{"name does not match the kid", func(t *testing.T, dir string) string {
			p, _, _ := GenerateKeyFile(dir, t0.Add(time.Hour))
			bad := filepath.Join(dir, "20300102T030405Z-abcdefgh.pem")
			data, _ := os.ReadFile(p)
			_ = os.WriteFile(bad, data, 0o600)
			return bad
		}},
		{"same key twice", func(t *testing.T, dir string) string {
			p, kid, _ := GenerateKeyFile(dir, t0)
			data, _ := os.ReadFile(p)
			again := filepath.Join(dir, KeyFileName(t0.Add(time.Hour), kid))
			_ = os.WriteFile(again, data, 0o600)
			return again
		}},
		{"bad activation time", func(t *testing.T, dir string) string {
			p, kid, _ := GenerateKeyFile(dir, t0)
			bad := filepath.Join(dir, "20301399T030405Z-"+kid[:8]+".pem")
			_ = os.Rename(p, bad)
			return bad
		}},
		{"directory with a key name", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "20300102T030405Z-abcdefgh.pem")
			_ = os.Mkdir(p, 0o700)
			return p
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, _, _ = GenerateKeyFile(dir, t0.Add(-time.Hour)) // a good key does not hide the bad one
			name := tc.setup(t, dir)
			_, err := LoadKeyDir(dir)
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("err = %v, want one naming %s", err, name)
			}
			// Nothing is pruned from a directory LoadKeyDir refuses.
			before := fileNames(t, dir)
			if removed, err := PruneKeyDir(dir, t0.Add(1000*time.Hour), testTTL, testLeeway); err == nil || len(removed) != 0 {
				t.Fatalf("prune: removed %v, err %v", removed, err)
			}
			if after := fileNames(t, dir); !slices.Equal(before, after) {
				t.Fatalf("prune changed the dir: %v -> %v", before, after)
			}
		})
	}
}

func TestPruneKeyDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, _, _ := GenerateKeyFile(dir, t0.Add(-3*time.Hour))
	b, _, _ := GenerateKeyFile(dir, t0.Add(-2*time.Hour))
	c, _, _ := GenerateKeyFile(dir, t0.Add(-5*time.Minute)) // signer, B still within its grace
	d, _, _ := GenerateKeyFile(dir, t0.Add(time.Hour))      // pending
	removed, err := PruneKeyDir(dir, t0, testTTL, testLeeway)
	if err != nil || !slices.Equal(removed, []string{a}) {
		t.Fatalf("removed %v (err %v), want only A", removed, err)
	}
	// Far in the future D signs: everything before it goes, D never does.
	removed, err = PruneKeyDir(dir, t0.Add(100*time.Hour), testTTL, testLeeway)
	if err != nil || !slices.Equal(removed, []string{b, c}) {
		t.Fatalf("removed %v (err %v), want B and C", removed, err)
	}
	if names := fileNames(t, dir); !slices.Equal(names, []string{filepath.Base(d)}) {
		t.Fatalf("left %v", names)
	}
}

func TestReloadKeyDirKeepsSetOnError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clock := newFakeClock(t0)
	_, kidA, _ := GenerateKeyFile(dir, t0.Add(-time.Hour))
	keys, _ := LoadKeyDir(dir)
	iss, err := NewEdDSAKeySetIssuer(keys, clockOptions(clock))
	if err != nil {
		t.Fatal(err)
	}
	tok := issue(t, iss)
	bad := filepath.Join(dir, "20300102T030405Z-abcdefgh.pem")
	_ = os.WriteFile(bad, []byte("garbage"), 0o600)
	_, _, _ = GenerateKeyFile(dir, t0.Add(-time.Minute))
	if _, changed, err := iss.ReloadKeyDir(dir); err == nil || changed {
		t.Fatalf("reload with a corrupt file: changed %v, err %v", changed, err)
	}
	if iss.KeyID() != kidA {
		t.Fatal("failed reload changed the signer")
	}
	if _, err := iss.Verify(tok); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(bad)
	if keys, changed, err := iss.ReloadKeyDir(dir); err != nil || !changed || len(keys) != 2 {
		t.Fatalf("reload: %d keys, changed %v, err %v", len(keys), changed, err)
	}
	if iss.KeyID() == kidA {
		t.Fatal("the newer key does not sign")
	}
	if _, err := iss.Verify(tok); err != nil {
		t.Fatal(err)
	}
}
