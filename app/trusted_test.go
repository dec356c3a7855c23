package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A manifest that is missing, malformed or does not match its documents stops the start: a server
// in require mode with a broken manifest would refuse its own clients' operations.
func TestTrustedDocumentsManifestCheckedAtStart(t *testing.T) {
	db := openStore(t)
	doc := `query Me { me { id } }`
	hash := sha(doc)
	for _, tc := range []struct {
		name, manifest, want string
	}{
		{"good", `{"sha256:` + hash + `": "` + doc + `"}`, ""},
		{"bare hex key", `{"` + hash + `": "` + doc + `"}`, ""},
		{"not JSON", `{"sha256:` + hash, "not a JSON object"},
		{"an array", `["` + doc + `"]`, "not a JSON object"},
		{"empty", `{}`, "no documents"},
		{"edited document", `{"sha256:` + hash + `": "query Me { me { id email } }"}`, "hashes to"},
		{"sha1 key", `{"` + hash[:40] + `": "` + doc + `"}`, "not a SHA-256 hash"},
		{"does not parse", `{"sha256:` + sha(`{ me {`) + `": "{ me {"}`, "does not parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "persisted-documents.json")
			if err := os.WriteFile(path, []byte(tc.manifest), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := loadConfig(t, map[string]string{"DATA_DIR": t.TempDir(), "TRUSTED_DOCUMENTS": "require", "TRUSTED_DOCUMENTS_FILE": path})
			a, err := New(context.Background(), cfg, Options{Store: db, Password: &cheap, Logger: slog.New(slog.DiscardHandler)})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				_ = a.Close()
				return
			}
			if err == nil {
				_ = a.Close()
				t.Fatal("New accepted the manifest")
			}
			if !strings.Contains(err.Error(), "TRUSTED_DOCUMENTS_FILE") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want TRUSTED_DOCUMENTS_FILE and %q", err, tc.want)
			}
		})
	}
	// A file that vanished between configuration and start.
	path := filepath.Join(t.TempDir(), "persisted-documents.json")
	if err := os.WriteFile(path, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := loadConfig(t, map[string]string{"DATA_DIR": t.TempDir(), "TRUSTED_DOCUMENTS": "require", "TRUSTED_DOCUMENTS_FILE": path})
	_ = os.Remove(path)
	if a, err := New(context.Background(), cfg, Options{Store: db, Password: &cheap, Logger: slog.New(slog.DiscardHandler)}); err == nil {
		_ = a.Close()
		t.Fatal("New started without its manifest")
	}
}

func sha(doc string) string {
	sum := sha256.Sum256([]byte(doc))
	return hex.EncodeToString(sum[:])
}
