package main

import (
	"io"
	"strings"
	"testing"
)

// In production the server refuses to start on unsafe settings, naming them.
func TestRunRefusesUnsafeProductionSettings(t *testing.T) {
	t.Setenv("APP_ENV", "production")
	t.Setenv("DATA_DIR", t.TempDir())
	for _, tc := range []struct{ name, key, value, want string }{
		{"generated key", "", "", "signing key would be generated"},
		{"short secret", "JWT_SECRET", "too-short", "JWT_SECRET must be at least 32 bytes"},
		{"wildcard CORS", "CORS_ALLOWED_ORIGINS", "*", "CORS_ALLOWED_ORIGINS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.key != "" {
				t.Setenv(tc.key, tc.value)
			}
			err := run(io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run() = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}
