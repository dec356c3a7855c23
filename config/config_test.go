package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gqlauth/ratelimit"
)

// smtpURL is the SMTP server that production settings name (nothing connects to it at start).
const smtpURL = "smtp://127.0.0.1:1025"

func load(vars map[string]string) (*Config, error) {
	return LoadFrom(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":8080" || c.Env != "development" || c.AccessTokenTTL != 15*time.Minute ||
		c.RefreshTokenTTL != 720*time.Hour || c.RefreshReuseGrace != 10*time.Second ||
		c.JWTIssuer != DefaultIssuer || c.JWTAudience != DefaultIssuer || c.DatabaseURL != "data/gqlauth.db" ||
		c.KeyFile() != "data/jwt-ed25519.pem" || c.JWTLeeway != 5*time.Second || c.ShutdownDrainDelay != 0 {
		t.Fatalf("defaults: %+v", c)
	}
}

// SHUTDOWN_DRAIN_DELAY defaults to 0 in development (Ctrl-C stops at once) and to 5s in production
// (time for the load balancer to see /readyz fail); both it and JWT_LEEWAY are bounded.
func TestShutdownDrainDelayAndLeeway(t *testing.T) {
	secret := strings.Repeat("s", 32)
	for _, tc := range []struct {
		name       string
		vars       map[string]string
		wantDelay  time.Duration
		wantLeeway time.Duration
	}{
		{"development", map[string]string{}, 0, 5 * time.Second},
		{"production", map[string]string{"APP_ENV": "production", "JWT_SECRET": secret, "SMTP_URL": smtpURL, "TOTP_ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, 5 * time.Second, 5 * time.Second},
		{"production, set", map[string]string{"APP_ENV": "production", "JWT_SECRET": secret, "SMTP_URL": smtpURL, "TOTP_ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "SHUTDOWN_DRAIN_DELAY": "0s"}, 0, 5 * time.Second},
		{"development, set", map[string]string{"SHUTDOWN_DRAIN_DELAY": "1m", "JWT_LEEWAY": "0s"}, time.Minute, 0},
		{"leeway", map[string]string{"JWT_LEEWAY": "1m"}, 0, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(tc.vars)
			if err != nil {
				t.Fatal(err)
			}
			if c.ShutdownDrainDelay != tc.wantDelay || c.JWTLeeway != tc.wantLeeway {
				t.Fatalf("SHUTDOWN_DRAIN_DELAY=%s JWT_LEEWAY=%s, want %s and %s", c.ShutdownDrainDelay, c.JWTLeeway, tc.wantDelay, tc.wantLeeway)
			}
		})
	}
	for _, tc := range []struct{ key, value string }{
		{"SHUTDOWN_DRAIN_DELAY", "-1s"}, {"SHUTDOWN_DRAIN_DELAY", "61s"}, {"SHUTDOWN_DRAIN_DELAY", "5"},
		{"JWT_LEEWAY", "-1s"}, {"JWT_LEEWAY", "2m"}, {"JWT_LEEWAY", "soon"},
	} {
		if _, err := load(map[string]string{tc.key: tc.value}); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s=%s: err = %v, want it refused", tc.key, tc.value, err)
		}
	}
}

func TestInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"ACCESS_TOKEN_TTL": "15"}, "ACCESS_TOKEN_TTL"},
		{map[string]string{"ACCESS_TOKEN_TTL": "-1m"}, "ACCESS_TOKEN_TTL"},
		{map[string]string{"ACCESS_TOKEN_TTL": "2h", "REFRESH_TOKEN_TTL": "1h"}, "must not be longer"},
		{map[string]string{"REFRESH_REUSE_GRACE": "-1s"}, "REFRESH_REUSE_GRACE"},
		{map[string]string{"JWT_SECRET": "short"}, "JWT_SECRET must be at least 32 bytes"},
		{map[string]string{"JWT_SECRET": strings.Repeat("x", 32), "JWT_PRIVATE_KEY_FILE": "k.pem"}, "set only one of"},
		{map[string]string{"JWT_KEYS_DIR": "keys", "JWT_PRIVATE_KEY_FILE": "k.pem"}, "set only one of"},
		{map[string]string{"LOG_FORMAT": "xml"}, "LOG_FORMAT"},
		{map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{map[string]string{"JANITOR_RETENTION": "10m"}, "JANITOR_RETENTION"},
		{map[string]string{"SHUTDOWN_TIMEOUT": "0s"}, "SHUTDOWN_TIMEOUT"},
		{map[string]string{"REQUEST_TIMEOUT": "1m"}, "REQUEST_TIMEOUT"},
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

func TestProductionRefusesUnsafeSettings(t *testing.T) {
	t.Parallel()
	key := t.TempDir() + "/key.pem"
	if err := os.WriteFile(key, []byte("placeholder"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := strings.Repeat("s", 32)
	for _, tc := range []struct {
		name string
		vars map[string]string
		want string // "" = accepted
	}{
		{"generated key", map[string]string{}, "signing key would be generated"},
		{"missing key file", map[string]string{"JWT_PRIVATE_KEY_FILE": key + ".missing"}, "cannot be read"},
		{"short secret", map[string]string{"JWT_SECRET": "short"}, "at least 32 bytes"},
		{"insecure cookie", map[string]string{"JWT_SECRET": secret, "REFRESH_TOKEN_COOKIE": "true", "COOKIE_SECURE": "false"}, "COOKIE_SECURE=false"},
		{"wildcard CORS", map[string]string{"JWT_SECRET": secret, "CORS_ALLOWED_ORIGINS": "https://app.example.com, *"}, "not *"},
		{"secret", map[string]string{"JWT_SECRET": secret}, ""},
		{"key file", map[string]string{"JWT_PRIVATE_KEY_FILE": key}, ""},
		{"secure cookie", map[string]string{"JWT_SECRET": secret, "REFRESH_TOKEN_COOKIE": "true"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.vars["APP_ENV"] = "production"
			tc.vars["SMTP_URL"] = smtpURL
			tc.vars["TOTP_ENCRYPTION_KEY"] = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
			_, err := load(tc.vars)
			if tc.want == "" && err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
			// The same settings are accepted in development (except the short secret, refused everywhere).
			tc.vars["APP_ENV"] = "development"
			if _, err := load(tc.vars); err != nil && tc.name != "short secret" {
				t.Fatalf("development rejected: %v", err)
			}
		})
	}
}

func TestHardeningSettings(t *testing.T) {
	t.Parallel()
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.LoginRateLimit.String() != (ratelimit.Rate{Limit: 10, Window: 15 * time.Minute}).String() ||
		c.LoginIPRateLimit.Limit != 300 || c.RegisterRateLimit.Limit != 1000 || c.RegisterRateLimit.Window != time.Hour ||
		c.MaxQueryDepth != 15 || c.MaxBodyBytes != 16<<10 || c.MaxQueryTokens != 2000 || c.PasswordHashConcurrency < 1 || !c.CookieSecure {
		t.Fatalf("hardening defaults: %+v", c)
	}
	c, err = load(map[string]string{"CORS_ALLOWED_ORIGINS": "https://app.example.com/, http://localhost:5173", "COOKIE_SAMESITE": "Lax"})
	if err != nil || len(c.CORSAllowedOrigins) != 2 || c.CORSAllowedOrigins[0] != "https://app.example.com" || c.CookieSameSite != "lax" {
		t.Fatalf("browser settings: %+v %v", c, err)
	}
	c, err = load(map[string]string{"LOGIN_RATE_LIMIT": "off", "TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7 ,::1"})
	if err != nil || c.LoginRateLimit.Enabled() || len(c.TrustedProxies) != 3 || c.TrustedProxies[1].String() != "192.168.1.7/32" {
		t.Fatalf("parsed: %+v %v", c, err)
	}
	for _, vars := range []map[string]string{
		{"LOGIN_RATE_LIMIT": "10 per minute"}, {"TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"},
		{"MAX_QUERY_DEPTH": "0"}, {"MAX_BODY_BYTES": "lots"}, {"REDIS_URL": "localhost:6379"}, {"COOKIE_SECURE": "maybe"},
		{"COOKIE_SAMESITE": "none"}, {"CORS_ALLOWED_ORIGINS": "app.example.com"}, {"CORS_ALLOWED_ORIGINS": "https://app.example.com/login"},
		{"CORS_ALLOWED_ORIGINS": "ftp://app.example.com"}, {"MAX_QUERY_TOKENS": "10"}, {"MAX_BODY_BYTES": "1073741824"},
	} {
		if _, err := load(vars); err == nil {
			t.Errorf("%v accepted", vars)
		}
	}
}

func TestMigrateOnStart(t *testing.T) {
	for _, tc := range []struct {
		raw     string // "" = unset
		want    bool
		wantErr bool
	}{
		{"", true, false},
		{"true", true, false},
		{"false", false, false},
		{" 0 ", false, false},
		{"maybe", false, true},
	} {
		vars := map[string]string{}
		if tc.raw != "" {
			vars["MIGRATE_ON_START"] = tc.raw
		}
		c, err := load(vars)
		if tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), "MIGRATE_ON_START") {
				t.Errorf("MIGRATE_ON_START=%q: err = %v, want one naming MIGRATE_ON_START", tc.raw, err)
			}
			continue
		}
		if err != nil || c.MigrateOnStart != tc.want {
			t.Errorf("MIGRATE_ON_START=%q: MigrateOnStart = %v, %v; want %v", tc.raw, c != nil && c.MigrateOnStart, err, tc.want)
		}
	}
}

func TestMailDefaults(t *testing.T) {
	t.Parallel()
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTPURL != "" || c.MailFrom != "gqlauth <no-reply@localhost>" ||
		c.PasswordResetURL != "http://localhost:5173/reset-password?token={token}" ||
		c.EmailVerificationURL != "http://localhost:5173/verify-email?token={token}" ||
		c.PasswordResetTTL != time.Hour || c.EmailVerificationTTL != 24*time.Hour || c.RequireEmailVerification ||
		c.ResetEmailRateLimit != (ratelimit.Rate{Limit: 3, Window: time.Hour}) ||
		c.ResetIPRateLimit != (ratelimit.Rate{Limit: 20, Window: time.Hour}) || c.MailTemplatesDir != "" {
		t.Fatalf("mail defaults: %+v", c)
	}
	dir := t.TempDir()
	c, err = load(map[string]string{
		"SMTP_URL": "smtps://user:p%40ss@mail.example.com:465", "MAIL_FROM": "Accounts <accounts@example.com>",
		"PASSWORD_RESET_URL": "https://app.example.com/#/reset/{token}", "EMAIL_VERIFICATION_URL": "https://app.example.com/verify?t={token}&x=1",
		"PASSWORD_RESET_TTL": "30m", "EMAIL_VERIFICATION_TTL": "72h", "REQUIRE_EMAIL_VERIFICATION": "true",
		"RESET_EMAIL_RATE_LIMIT": "off", "RESET_IP_RATE_LIMIT": "100/1h", "MAIL_TEMPLATES_DIR": dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTPURL != "smtps://user:p%40ss@mail.example.com:465" || c.MailFrom != "Accounts <accounts@example.com>" ||
		c.PasswordResetTTL != 30*time.Minute || c.EmailVerificationTTL != 72*time.Hour || !c.RequireEmailVerification ||
		c.ResetEmailRateLimit.Enabled() || c.ResetIPRateLimit.Limit != 100 || c.MailTemplatesDir != dir {
		t.Fatalf("mail settings: %+v", c)
	}
	for _, u := range []string{"smtp://127.0.0.1:1025", "smtp://mail.example.com", "smtp://u:p@[::1]:587/"} {
		if _, err := load(map[string]string{"SMTP_URL": u}); err != nil {
			t.Errorf("SMTP_URL=%s: %v", u, err)
		}
	}
}

func TestMailInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ key, value string }{
		{"SMTP_URL", "mail.example.com:25"},
		{"SMTP_URL", "http://mail.example.com"},
		{"SMTP_URL", "smtp://"},
		{"SMTP_URL", "smtp://mail.example.com:99999"},
		{"SMTP_URL", "smtp://mail.example.com:25/path"},
		{"SMTP_URL", "smtp://mail.example.com:25?tls=off"},
		{"MAIL_FROM", "not an address"},
		{"MAIL_FROM", "a@b, c@d"},
		{"PASSWORD_RESET_URL", "https://app.example.com/reset"},
		{"PASSWORD_RESET_URL", "ftp://app.example.com/{token}"},
		{"PASSWORD_RESET_URL", "/reset?token={token}"},
		{"EMAIL_VERIFICATION_URL", "javascript:alert({token})"},
		{"PASSWORD_RESET_TTL", "0s"},
		{"PASSWORD_RESET_TTL", "48h"},
		{"PASSWORD_RESET_TTL", "soon"},
		{"EMAIL_VERIFICATION_TTL", "30s"},
		{"EMAIL_VERIFICATION_TTL", "1000h"},
		{"REQUIRE_EMAIL_VERIFICATION", "maybe"},
		{"RESET_EMAIL_RATE_LIMIT", "3 per hour"},
		{"RESET_IP_RATE_LIMIT", "lots"},
		{"MAIL_TEMPLATES_DIR", "/does/not/exist"},
	} {
		_, err := load(map[string]string{tc.key: tc.value})
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s=%q: err = %v, want it refused naming %s", tc.key, tc.value, err, tc.key)
		}
	}
	// The URL may hold a password: an error never quotes it.
	_, err := load(map[string]string{"SMTP_URL": "smtp://user:hunter2secret@mail.example.com:25/x"})
	if err == nil || strings.Contains(err.Error(), "hunter2secret") {
		t.Fatalf("err = %v; want a refusal that does not quote the password", err)
	}
}

// In production a missing SMTP_URL refuses to start: the mail would only be printed to the log.
func TestProductionRequiresSMTP(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"APP_ENV": "production", "JWT_SECRET": strings.Repeat("s", 32), "TOTP_ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
	if _, err := load(vars); err == nil || !strings.Contains(err.Error(), "SMTP_URL") {
		t.Fatalf("err = %v, want one naming SMTP_URL", err)
	}
	vars["SMTP_URL"] = smtpURL
	if _, err := load(vars); err != nil {
		t.Fatal(err)
	}
}

func TestFactorDefaults(t *testing.T) {
	t.Parallel()
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.TOTPKeys) != 0 || c.TOTPIssuer != "gqlauth" || c.MFARateLimit != (ratelimit.Rate{Limit: 10, Window: 15 * time.Minute}) ||
		c.ReauthMaxAge != 10*time.Minute || c.WebAuthnRPID != "localhost" || c.WebAuthnRPName != "gqlauth" ||
		!slices.Equal(c.WebAuthnRPOrigins, []string{"http://localhost:8080"}) || c.TOTPKeyFile() != filepath.Join("data", "totp.key") {
		t.Fatalf("factor defaults: %+v", c)
	}
	k1, k2 := strings.Repeat("A", 43)+"=", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	c, err = load(map[string]string{
		"TOTP_ENCRYPTION_KEY": k1 + ", " + k2, "TOTP_ISSUER": "Example Inc", "MFA_RATE_LIMIT": "5/1h", "REAUTH_MAX_AGE": "5m",
		"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_RP_NAME": "Example", "WEBAUTHN_RP_ORIGINS": "https://example.com, https://app.example.com/",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.TOTPKeys) != 2 || len(c.TOTPKeys[0]) != 32 || string(c.TOTPKeys[1]) != "0123456789abcdef0123456789abcdef" ||
		c.TOTPIssuer != "Example Inc" || c.MFARateLimit.Limit != 5 || c.ReauthMaxAge != 5*time.Minute ||
		!slices.Equal(c.WebAuthnRPOrigins, []string{"https://example.com", "https://app.example.com"}) {
		t.Fatalf("factor settings: %+v", c)
	}
}

func TestFactorInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ key, value string }{
		{"TOTP_ENCRYPTION_KEY", "c2hvcnQ="},                  // 5 bytes
		{"TOTP_ENCRYPTION_KEY", "not base64 at all!!!"},      // not base64
		{"TOTP_ISSUER", "a:b"},                               // a colon splits issuer and account in otpauth labels
		{"MFA_RATE_LIMIT", "ten"},                            // not a rate
		{"REAUTH_MAX_AGE", "10s"},                            // too short to do anything after reauthenticating
		{"REAUTH_MAX_AGE", "48h"},                            // not a step-up any more
		{"WEBAUTHN_RP_ID", "https://example.com"},            // a domain, not an origin
		{"WEBAUTHN_RP_ORIGINS", "example.com"},               // no scheme
		{"WEBAUTHN_RP_ORIGINS", "https://evil.test"},         // not under the RP id (localhost)
		{"WEBAUTHN_RP_ORIGINS", "http://localhost:8080/app"}, // a path
	} {
		_, err := load(map[string]string{tc.key: tc.value})
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s=%q: err = %v, want it refused naming %s", tc.key, tc.value, err, tc.key)
		}
	}
	// A key is a secret: an error never quotes it.
	_, err := load(map[string]string{"TOTP_ENCRYPTION_KEY": "c2VjcmV0LXRvdHAta2V5"})
	if err == nil || strings.Contains(err.Error(), "c2VjcmV0LXRvdHAta2V5") {
		t.Fatalf("err = %v; want a refusal that does not quote the key", err)
	}
	// Subdomains of the RP id are allowed; plain http is refused in production except on localhost.
	if _, err := load(map[string]string{"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_RP_ORIGINS": "http://app.example.com"}); err != nil {
		t.Fatalf("subdomain origin in development: %v", err)
	}
	prod := map[string]string{"APP_ENV": "production", "JWT_SECRET": strings.Repeat("s", 32), "SMTP_URL": "smtp://127.0.0.1:1025",
		"TOTP_ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_RP_ORIGINS": "http://example.com"}
	if _, err := load(prod); err == nil || !strings.Contains(err.Error(), "WEBAUTHN_RP_ORIGINS") {
		t.Fatalf("http origin in production: err = %v", err)
	}
}

// In production a missing TOTP_ENCRYPTION_KEY refuses to start: secrets would be sealed with a key
// generated on one machine (lost with it, and different on every replica).
func TestProductionRequiresTOTPKey(t *testing.T) {
	t.Parallel()
	_, err := load(map[string]string{"APP_ENV": "production", "JWT_SECRET": strings.Repeat("s", 32), "SMTP_URL": "smtp://127.0.0.1:1025"})
	if err == nil || !strings.Contains(err.Error(), "TOTP_ENCRYPTION_KEY") {
		t.Fatalf("err = %v, want one naming TOTP_ENCRYPTION_KEY", err)
	}
}

// The graphql-ws limits have documented defaults and bounds.
func TestWebSocketSettings(t *testing.T) {
	t.Parallel()
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.WSInitTimeout != 5*time.Second || c.WSKeepAliveInterval != 25*time.Second || c.WSMaxSubscriptions != 10 ||
		c.WSMaxConnectionsPerUser != 20 || c.WSMaxMessageBytes != 16<<10 {
		t.Fatalf("defaults: init %s keepalive %s subs %d conns %d bytes %d", c.WSInitTimeout, c.WSKeepAliveInterval,
			c.WSMaxSubscriptions, c.WSMaxConnectionsPerUser, c.WSMaxMessageBytes)
	}
	for _, tc := range []struct{ key, value string }{
		{"WS_INIT_TIMEOUT", "10ms"}, {"WS_INIT_TIMEOUT", "2m"}, {"WS_INIT_TIMEOUT", "soon"},
		{"WS_KEEPALIVE_INTERVAL", "0s"}, {"WS_KEEPALIVE_INTERVAL", "1h"},
		{"WS_MAX_SUBSCRIPTIONS", "0"}, {"WS_MAX_SUBSCRIPTIONS", "1001"},
		{"WS_MAX_CONNECTIONS_PER_USER", "0"}, {"WS_MAX_CONNECTIONS_PER_USER", "-1"},
		{"WS_MAX_MESSAGE_BYTES", "100"}, {"WS_MAX_MESSAGE_BYTES", "99999999"},
	} {
		_, err := load(map[string]string{tc.key: tc.value})
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s=%q: err = %v, want it refused naming %s", tc.key, tc.value, err, tc.key)
		}
	}
	c, err = load(map[string]string{"WS_INIT_TIMEOUT": "200ms", "WS_KEEPALIVE_INTERVAL": "1s", "WS_MAX_SUBSCRIPTIONS": "2",
		"WS_MAX_CONNECTIONS_PER_USER": "3", "WS_MAX_MESSAGE_BYTES": "2048"})
	if err != nil {
		t.Fatal(err)
	}
	if c.WSInitTimeout != 200*time.Millisecond || c.WSKeepAliveInterval != time.Second || c.WSMaxSubscriptions != 2 ||
		c.WSMaxConnectionsPerUser != 3 || c.WSMaxMessageBytes != 2048 {
		t.Fatalf("parsed: %+v", c)
	}
}

func TestTrustedDocumentsSettings(t *testing.T) {
	t.Parallel()
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.TrustedDocuments != TrustedOff || c.TrustedDocumentsFile != "" || c.APQCacheSize != 1000 ||
		c.APQMaxDocumentBytes != 8<<10 || c.APQRedisTTL != 24*time.Hour {
		t.Fatalf("defaults: mode %q file %q size %d bytes %d ttl %s", c.TrustedDocuments, c.TrustedDocumentsFile,
			c.APQCacheSize, c.APQMaxDocumentBytes, c.APQRedisTTL)
	}
	manifest := filepath.Join(t.TempDir(), "persisted-documents.json")
	if err := os.WriteFile(manifest, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"TRUSTED_DOCUMENTS": "strict"}, "TRUSTED_DOCUMENTS"},
		{map[string]string{"TRUSTED_DOCUMENTS": "require"}, "TRUSTED_DOCUMENTS_FILE"},
		{map[string]string{"TRUSTED_DOCUMENTS": "allow"}, "TRUSTED_DOCUMENTS_FILE"},
		{map[string]string{"TRUSTED_DOCUMENTS": "require", "TRUSTED_DOCUMENTS_FILE": manifest + ".missing"}, "TRUSTED_DOCUMENTS_FILE"},
		{map[string]string{"TRUSTED_DOCUMENTS_FILE": t.TempDir()}, "TRUSTED_DOCUMENTS_FILE"},
		{map[string]string{"APQ_CACHE_SIZE": "-1"}, "APQ_CACHE_SIZE"},
		{map[string]string{"APQ_CACHE_SIZE": "1000000"}, "APQ_CACHE_SIZE"},
		{map[string]string{"APQ_MAX_DOCUMENT_BYTES": "10"}, "APQ_MAX_DOCUMENT_BYTES"},
		{map[string]string{"APQ_MAX_DOCUMENT_BYTES": "99999999"}, "APQ_MAX_DOCUMENT_BYTES"},
		{map[string]string{"APQ_REDIS_TTL": "1s"}, "APQ_REDIS_TTL"},
	} {
		_, err := load(tc.vars)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want it refused naming %s", tc.vars, err, tc.want)
		}
	}
	c, err = load(map[string]string{"TRUSTED_DOCUMENTS": "Require", "TRUSTED_DOCUMENTS_FILE": manifest, "APQ_CACHE_SIZE": "0"})
	if err != nil {
		t.Fatal(err)
	}
	if c.TrustedDocuments != TrustedRequire || c.TrustedDocumentsFile != manifest || c.APQCacheSize != 0 {
		t.Fatalf("parsed: %+v", c)
	}
}

// Tracing is on only when an OTLP endpoint is named, and the standard switches turn it off again.
func TestTracingSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		vars     map[string]string
		on       bool
		protocol string
		service  string
	}{
		{"nothing set", nil, false, "http/protobuf", "gqlauth"},
		{"general endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true, "http/protobuf", "gqlauth"},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector/v1/traces"}, true, "http/protobuf", "gqlauth"},
		{"grpc and a name", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_SERVICE_NAME": "auth-eu"}, true, "grpc", "auth-eu"},
		{"traces protocol wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, true, "grpc", "gqlauth"},
		{"SDK disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, false, "http/protobuf", "gqlauth"},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, false, "http/protobuf", "gqlauth"},
		// Off, a protocol the exporter cannot speak does not matter.
		{"off ignores protocol", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, false, "http/json", "gqlauth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(tc.vars)
			if err != nil {
				t.Fatal(err)
			}
			if c.Tracing != tc.on || c.OTelProtocol != tc.protocol || c.OTelService != tc.service {
				t.Fatalf("tracing %v protocol %q service %q, want %v %q %q", c.Tracing, c.OTelProtocol, c.OTelService, tc.on, tc.protocol, tc.service)
			}
		})
	}
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://user:secret@c/"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"},
		{map[string]string{"OTEL_SDK_DISABLED": "maybe"}, "OTEL_SDK_DISABLED"},
	} {
		_, err := load(tc.vars)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want it refused naming %s", tc.vars, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%v: the error quotes the endpoint: %v", tc.vars, err)
		}
	}
}
