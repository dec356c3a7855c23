package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// In production the server refuses to start on unsafe settings, naming them.
func TestRunRefusesUnsafeProductionSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, key, value, want string }{
		{"generated key", "", "", "signing key would be generated"},
		{"short secret", "JWT_SECRET", "too-short", "JWT_SECRET must be at least 32 bytes"},
		{"wildcard CORS", "CORS_ALLOWED_ORIGINS", "*", "CORS_ALLOWED_ORIGINS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{"APP_ENV": "production", "DATA_DIR": t.TempDir(), "SMTP_URL": "smtp://127.0.0.1:1025", "TOTP_ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
			if tc.key != "" {
				vars[tc.key] = tc.value
			}
			err := run(context.Background(), getenv(vars), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run() = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

// getenv is run's view of an environment holding exactly vars.
func getenv(vars map[string]string) func(string) string {
	return func(key string) string { return vars[key] }
}
