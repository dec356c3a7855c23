package config

import (
	"strings"
	"testing"
	"time"
)

func load(vars map[string]string) (*Config, error) {
	return LoadFrom(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
}

func TestDefaults(t *testing.T) {
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":8080" || c.Env != "development" || c.AccessTokenTTL != 15*time.Minute ||
		c.RefreshTokenTTL != 720*time.Hour || c.RefreshReuseGrace != 10*time.Second ||
		c.JWTIssuer != DefaultIssuer || c.JWTAudience != DefaultIssuer || c.DatabaseURL != "data/gqlauth.db" ||
		c.KeyFile() != "data/jwt-ed25519.pem" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestInvalid(t *testing.T) {
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"ACCESS_TOKEN_TTL": "15"}, "ACCESS_TOKEN_TTL"},
		{map[string]string{"ACCESS_TOKEN_TTL": "-1m"}, "ACCESS_TOKEN_TTL"},
		{map[string]string{"ACCESS_TOKEN_TTL": "2h", "REFRESH_TOKEN_TTL": "1h"}, "must not be longer"},
		{map[string]string{"REFRESH_REUSE_GRACE": "-1s"}, "REFRESH_REUSE_GRACE"},
		{map[string]string{"JWT_SECRET": "short"}, "JWT_SECRET must be at least 32 bytes"},
		{map[string]string{"JWT_SECRET": strings.Repeat("x", 32), "JWT_PRIVATE_KEY_FILE": "k.pem"}, "not both"},
		{map[string]string{"APP_ENV": "staging"}, "APP_ENV"},
		{map[string]string{"REVOCATION_POLL_INTERVAL": "5s"}, "REVOCATION_POLL_INTERVAL"},
	} {
		_, err := load(tc.vars)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want mention of %q", tc.vars, err, tc.want)
		}
	}
	c, err := load(map[string]string{"JWT_SECRET": strings.Repeat("x", 32), "DATABASE_URL": "postgres://u@h/db"})
	if err != nil || len(c.JWTSecret) != 32 || c.DatabaseURL != "postgres://u@h/db" {
		t.Fatalf("valid config rejected: %v", err)
	}
}
