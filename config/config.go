// Package config reads the service's settings from environment variables, applies defaults and
// validates them. It is the only code that reads the environment.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultIssuer is the default value of both JWT_ISSUER and JWT_AUDIENCE.
const DefaultIssuer = "gqlauth"

// MinSecretLength is the shortest JWT_SECRET accepted (HS256 needs a 256-bit key).
const MinSecretLength = 32

// Config is the whole configuration.
type Config struct {
	Addr    string // ADDR
	Env     string // APP_ENV: development or production
	DataDir string // DATA_DIR: where the SQLite file and a generated signing key live

	DatabaseURL string // DATABASE_URL: postgres://… selects Postgres; anything else is an SQLite path

	AccessTokenTTL    time.Duration // ACCESS_TOKEN_TTL
	RefreshTokenTTL   time.Duration // REFRESH_TOKEN_TTL
	RefreshReuseGrace time.Duration // REFRESH_REUSE_GRACE

	JWTSecret         []byte // JWT_SECRET (HS256); never logged
	JWTPrivateKeyFile string // JWT_PRIVATE_KEY_FILE (EdDSA, PKCS#8 PEM)
	JWTIssuer         string // JWT_ISSUER
	JWTAudience       string // JWT_AUDIENCE

	RevocationPollInterval time.Duration // REVOCATION_POLL_INTERVAL
}

// Production reports whether APP_ENV is production.
func (c *Config) Production() bool { return c.Env == "production" }

// KeyFile is the Ed25519 key used for signing: JWT_PRIVATE_KEY_FILE, or a file generated on first
// start under DATA_DIR.
func (c *Config) KeyFile() string {
	if c.JWTPrivateKeyFile != "" {
		return c.JWTPrivateKeyFile
	}
	return filepath.Join(c.DataDir, "jwt-ed25519.pem")
}

// Load reads the configuration from the environment and validates it.
func Load() (*Config, error) { return LoadFrom(os.LookupEnv) }

// LoadFrom reads the configuration through lookup (os.LookupEnv in production, a map in tests).
func LoadFrom(lookup func(string) (string, bool)) (*Config, error) {
	get := func(key, def string) string {
		if v, ok := lookup(key); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}
	var errs []error
	dur := func(key, def string) time.Duration {
		raw := get(key, def)
		d, err := time.ParseDuration(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: not a duration (use Go syntax such as 15m or 720h)", key, raw))
		}
		return d
	}
	c := &Config{
		Addr:                   get("ADDR", ":8080"),
		Env:                    strings.ToLower(get("APP_ENV", "development")),
		DataDir:                get("DATA_DIR", "data"),
		AccessTokenTTL:         dur("ACCESS_TOKEN_TTL", "15m"),
		RefreshTokenTTL:        dur("REFRESH_TOKEN_TTL", "720h"),
		RefreshReuseGrace:      dur("REFRESH_REUSE_GRACE", "10s"),
		JWTPrivateKeyFile:      get("JWT_PRIVATE_KEY_FILE", ""),
		JWTIssuer:              get("JWT_ISSUER", DefaultIssuer),
		JWTAudience:            get("JWT_AUDIENCE", DefaultIssuer),
		RevocationPollInterval: dur("REVOCATION_POLL_INTERVAL", "1s"),
	}
	// The secret is used as raw bytes, untrimmed: whitespace may be part of it.
	if v, ok := lookup("JWT_SECRET"); ok && v != "" {
		c.JWTSecret = []byte(v)
	}
	c.DatabaseURL = get("DATABASE_URL", filepath.Join(c.DataDir, "gqlauth.db"))
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate rejects settings that cannot work or are unsafe, naming the variable at fault.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Env != "development" && c.Env != "production" {
		bad("APP_ENV=%q: must be development or production", c.Env)
	}
	if c.AccessTokenTTL < time.Second {
		// exp has one-second precision: a shorter lifetime could mint tokens that are already expired.
		bad("ACCESS_TOKEN_TTL must be at least 1s (got %s)", c.AccessTokenTTL)
	}
	if c.RefreshTokenTTL <= 0 {
		bad("REFRESH_TOKEN_TTL must be positive")
	}
	if c.AccessTokenTTL > 0 && c.RefreshTokenTTL > 0 && c.AccessTokenTTL > c.RefreshTokenTTL {
		bad("ACCESS_TOKEN_TTL (%s) must not be longer than REFRESH_TOKEN_TTL (%s)", c.AccessTokenTTL, c.RefreshTokenTTL)
	}
	if c.RefreshReuseGrace < 0 || c.RefreshReuseGrace > time.Minute {
		bad("REFRESH_REUSE_GRACE must be between 0 and 1m (got %s)", c.RefreshReuseGrace)
	}
	if c.RevocationPollInterval < 100*time.Millisecond || c.RevocationPollInterval > time.Second {
		// Above 1s another instance could keep accepting a revoked session's access token for over 2s.
		bad("REVOCATION_POLL_INTERVAL must be between 100ms and 1s (got %s)", c.RevocationPollInterval)
	}
	if len(c.JWTSecret) > 0 && len(c.JWTSecret) < MinSecretLength {
		bad("JWT_SECRET must be at least %d bytes (got %d); generate one with: head -c 32 /dev/urandom | base64", MinSecretLength, len(c.JWTSecret))
	}
	if len(c.JWTSecret) > 0 && c.JWTPrivateKeyFile != "" {
		bad("set either JWT_SECRET (HS256) or JWT_PRIVATE_KEY_FILE (EdDSA), not both")
	}
	if c.JWTIssuer == "" || c.JWTAudience == "" {
		bad("JWT_ISSUER and JWT_AUDIENCE must not be empty")
	}
	return errors.Join(errs...)
}
