// Package config reads the service's settings from environment variables, applies defaults and
// validates them. It is the only code that reads the environment.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"gqlauth/ratelimit"
)

// DefaultIssuer is the default value of both JWT_ISSUER and JWT_AUDIENCE.
const DefaultIssuer = "gqlauth"

// DefaultMailFrom is the default MAIL_FROM.
const DefaultMailFrom = "gqlauth <no-reply@localhost>"

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

	JWTSecret         []byte        // JWT_SECRET (HS256); never logged
	JWTPrivateKeyFile string        // JWT_PRIVATE_KEY_FILE (EdDSA, PKCS#8 PEM)
	JWTIssuer         string        // JWT_ISSUER
	JWTAudience       string        // JWT_AUDIENCE
	JWTLeeway         time.Duration // JWT_LEEWAY: clock skew allowed on exp, nbf and iat

	RevocationPollInterval time.Duration // REVOCATION_POLL_INTERVAL

	// Abuse defences.
	LoginRateLimit          ratelimit.Rate // LOGIN_RATE_LIMIT: failed logins per account+IP
	LoginIPRateLimit        ratelimit.Rate // LOGIN_IP_RATE_LIMIT: failed logins per IP, all accounts
	LoginSuccessRateLimit   ratelimit.Rate // LOGIN_SUCCESS_RATE_LIMIT: successful logins per IP
	LoginAccountRateLimit   ratelimit.Rate // LOGIN_ACCOUNT_RATE_LIMIT: failures per account, all IPs, before back-off
	RegisterRateLimit       ratelimit.Rate // REGISTER_RATE_LIMIT: registrations per IP
	MaxSessionsPerUser      int            // MAX_SESSIONS_PER_USER: live sessions per user; a login past it ends the oldest
	RedisURL                string         // REDIS_URL: share rate-limit counters between replicas
	TrustedProxies          []netip.Prefix // TRUSTED_PROXIES: peers whose X-Forwarded-For is believed
	MaxQueryDepth           int            // MAX_QUERY_DEPTH
	MaxQueryComplexity      int            // MAX_QUERY_COMPLEXITY
	MaxQueryTokens          int            // MAX_QUERY_TOKENS: lexical tokens of one GraphQL document
	MaxBodyBytes            int64          // MAX_BODY_BYTES
	PasswordHashConcurrency int            // PASSWORD_HASH_CONCURRENCY: argon2id hashes run at once

	// Browser clients.
	RefreshTokenCookie bool     // REFRESH_TOKEN_COOKIE: the refresh token travels in an HttpOnly cookie
	CookieSecure       bool     // COOKIE_SECURE
	CookieSameSite     string   // COOKIE_SAMESITE: strict or lax
	CORSAllowedOrigins []string // CORS_ALLOWED_ORIGINS (comma-separated)

	// Subscriptions (graphql-ws on /graphql).
	WSInitTimeout           time.Duration // WS_INIT_TIMEOUT: connection_init must arrive within this (else close 4408)
	WSKeepAliveInterval     time.Duration // WS_KEEPALIVE_INTERVAL: server pings this often; no pong within twice it drops the socket
	WSMaxSubscriptions      int           // WS_MAX_SUBSCRIPTIONS: active subscriptions per connection (beyond: the subscribe gets RATE_LIMITED)
	WSMaxConnectionsPerUser int           // WS_MAX_CONNECTIONS_PER_USER: open sockets per account on one instance (beyond: close 4429)
	WSMaxMessageBytes       int64         // WS_MAX_MESSAGE_BYTES: largest client message (beyond: close 1009)

	// Operations.
	MetricsOperationNames []string      // METRICS_OPERATION_NAMES: extra GraphQL operation names to count by name
	LogFormat             string        // LOG_FORMAT: text or json
	LogLevel              slog.Level    // LOG_LEVEL: debug, info, warn or error
	ShutdownTimeout       time.Duration // SHUTDOWN_TIMEOUT: how long in-flight requests may finish
	ShutdownDrainDelay    time.Duration // SHUTDOWN_DRAIN_DELAY: serve on (readiness failing) this long before shutting down
	DBWaitTimeout         time.Duration // DB_WAIT_TIMEOUT: how long the server waits for the database at start
	RequestTimeout        time.Duration // REQUEST_TIMEOUT: a GraphQL request's deadline (database work included)
	JanitorInterval       time.Duration // JANITOR_INTERVAL: 0 disables the janitor
	JanitorRetention      time.Duration // JANITOR_RETENTION: keep expired/revoked sessions this long
	JWTKeysDir            string        // JWT_KEYS_DIR: rotating Ed25519 keys shared by replicas
	KeyReloadInterval     time.Duration // KEY_RELOAD_INTERVAL: how often JWT_KEYS_DIR is re-read
	DBMaxOpenConns        int           // DB_MAX_OPEN_CONNS: 0 means the engine's default
	MigrateOnStart        bool          // MIGRATE_ON_START: apply pending migrations at start; false refuses a schema that is behind

	// Mail: account recovery and e-mail verification.
	SMTPURL                  string         // SMTP_URL: smtp://[user:pass@]host:port (STARTTLS when offered) or smtps:// (implicit TLS); "" prints mail to the log (development only); never logged
	MailFrom                 string         // MAIL_FROM: the From address
	PasswordResetURL         string         // PASSWORD_RESET_URL: the reset link, {token} replaced by the token
	EmailVerificationURL     string         // EMAIL_VERIFICATION_URL: the verification (and change-email) link, with {token}
	PasswordResetTTL         time.Duration  // PASSWORD_RESET_TTL: how long a reset link works
	EmailVerificationTTL     time.Duration  // EMAIL_VERIFICATION_TTL: how long a verification or change-email link works
	RequireEmailVerification bool           // REQUIRE_EMAIL_VERIFICATION: login refuses unverified accounts (EMAIL_NOT_VERIFIED)
	ResetEmailRateLimit      ratelimit.Rate // RESET_EMAIL_RATE_LIMIT: reset requests per e-mail address (and links per recipient)
	ResetIPRateLimit         ratelimit.Rate // RESET_IP_RATE_LIMIT: reset requests per client address
	MailTemplatesDir         string         // MAIL_TEMPLATES_DIR: templates overriding the built-in ones

	// Second factors and passkeys.
	TOTPKeys          [][]byte       // TOTP_ENCRYPTION_KEY: base64 32-byte AES keys, comma-separated (the first seals, all open); never logged
	TOTPIssuer        string         // TOTP_ISSUER: the issuer named in otpauth URIs
	MFARateLimit      ratelimit.Rate // MFA_RATE_LIMIT: wrong second-factor codes per account
	ReauthMaxAge      time.Duration  // REAUTH_MAX_AGE: how recent an authentication @auth(fresh: true) fields need
	WebAuthnRPID      string         // WEBAUTHN_RP_ID: the relying party id (a domain)
	WebAuthnRPName    string         // WEBAUTHN_RP_NAME: the name authenticators show
	WebAuthnRPOrigins []string       // WEBAUTHN_RP_ORIGINS: origins allowed to use passkeys (comma-separated)

	// Trusted documents and automatic persisted queries (APQ).
	TrustedDocuments     string        // TRUSTED_DOCUMENTS: off, allow or require
	TrustedDocumentsFile string        // TRUSTED_DOCUMENTS_FILE: the manifest (hash → document) of graphql-codegen's client preset
	APQCacheSize         int           // APQ_CACHE_SIZE: documents registered by APQ kept in memory; 0 turns APQ off
	APQMaxDocumentBytes  int           // APQ_MAX_DOCUMENT_BYTES: the largest document APQ registers
	APQRedisTTL          time.Duration // APQ_REDIS_TTL: how long a registered document stays in Redis (with REDIS_URL)

	// Tracing (OpenTelemetry). Only whether tracing is on, the protocol and the service name are
	// read here; the OTLP exporter and the SDK read their own standard OTEL_* variables (endpoint,
	// headers, timeout, TLS, sampler, resource attributes, batch sizes): see the README's Tracing.
	Tracing        bool   // on when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, unless OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none
	OTelEndpoint   string // OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT (validated only; the exporter reads it itself)
	OTelProtocol   string // OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf (default) or grpc
	OTelService    string // OTEL_SERVICE_NAME: the resource's service.name
	otelExporter   string // OTEL_TRACES_EXPORTER: otlp (default) or none
	otelSDKDisable bool   // OTEL_SDK_DISABLED

	// GoMemLimit is GOMEMLIMIT, which the Go runtime applies itself; when it is set the server sets
	// no memory limit of its own. Read here so that config stays the only code that reads the environment.
	GoMemLimit string
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
	rate := func(key, def string) ratelimit.Rate {
		raw := get(key, def)
		r, err := ratelimit.ParseRate(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: use N/duration such as 10/15m, or off", key, raw))
		}
		return r
	}
	integer := func(key string, def int64) int64 {
		raw := get(key, strconv.FormatInt(def, 10))
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: not a whole number", key, raw))
		}
		return n
	}
	boolean := func(key string, def bool) bool {
		raw := get(key, strconv.FormatBool(def))
		b, err := strconv.ParseBool(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: use true or false", key, raw))
		}
		return b
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
		JWTLeeway:              dur("JWT_LEEWAY", "5s"),
		RevocationPollInterval: dur("REVOCATION_POLL_INTERVAL", "1s"),

		LoginRateLimit:          rate("LOGIN_RATE_LIMIT", "10/15m"),
		LoginIPRateLimit:        rate("LOGIN_IP_RATE_LIMIT", "300/15m"),
		LoginSuccessRateLimit:   rate("LOGIN_SUCCESS_RATE_LIMIT", "300/15m"),
		LoginAccountRateLimit:   rate("LOGIN_ACCOUNT_RATE_LIMIT", "20/1h"),
		MaxSessionsPerUser:      int(integer("MAX_SESSIONS_PER_USER", 50)),
		RegisterRateLimit:       rate("REGISTER_RATE_LIMIT", "1000/1h"),
		RedisURL:                get("REDIS_URL", ""),
		MaxQueryDepth:           int(integer("MAX_QUERY_DEPTH", 15)),
		MaxQueryComplexity:      int(integer("MAX_QUERY_COMPLEXITY", 200)),
		MaxQueryTokens:          int(integer("MAX_QUERY_TOKENS", 2000)),
		MaxBodyBytes:            integer("MAX_BODY_BYTES", 16<<10),
		PasswordHashConcurrency: int(integer("PASSWORD_HASH_CONCURRENCY", int64(runtime.NumCPU()))),
		RefreshTokenCookie:      boolean("REFRESH_TOKEN_COOKIE", false),
		CookieSecure:            boolean("COOKIE_SECURE", true),
		CookieSameSite:          strings.ToLower(get("COOKIE_SAMESITE", "strict")),

		WSInitTimeout:           dur("WS_INIT_TIMEOUT", "5s"),
		WSKeepAliveInterval:     dur("WS_KEEPALIVE_INTERVAL", "25s"),
		WSMaxSubscriptions:      int(integer("WS_MAX_SUBSCRIPTIONS", 10)),
		WSMaxConnectionsPerUser: int(integer("WS_MAX_CONNECTIONS_PER_USER", 20)),
		WSMaxMessageBytes:       integer("WS_MAX_MESSAGE_BYTES", 16<<10),

		LogFormat:         strings.ToLower(get("LOG_FORMAT", "text")),
		ShutdownTimeout:   dur("SHUTDOWN_TIMEOUT", "15s"),
		DBWaitTimeout:     dur("DB_WAIT_TIMEOUT", "60s"),
		RequestTimeout:    dur("REQUEST_TIMEOUT", "10s"),
		JanitorInterval:   dur("JANITOR_INTERVAL", "1h"),
		JanitorRetention:  dur("JANITOR_RETENTION", "168h"),
		JWTKeysDir:        get("JWT_KEYS_DIR", ""),
		KeyReloadInterval: dur("KEY_RELOAD_INTERVAL", "30s"),
		DBMaxOpenConns:    int(integer("DB_MAX_OPEN_CONNS", 0)),
		MigrateOnStart:    boolean("MIGRATE_ON_START", true),
		GoMemLimit:        get("GOMEMLIMIT", ""),

		SMTPURL:                  get("SMTP_URL", ""),
		MailFrom:                 get("MAIL_FROM", DefaultMailFrom),
		PasswordResetURL:         get("PASSWORD_RESET_URL", "http://localhost:5173/reset-password?token={token}"),
		EmailVerificationURL:     get("EMAIL_VERIFICATION_URL", "http://localhost:5173/verify-email?token={token}"),
		PasswordResetTTL:         dur("PASSWORD_RESET_TTL", "1h"),
		EmailVerificationTTL:     dur("EMAIL_VERIFICATION_TTL", "24h"),
		RequireEmailVerification: boolean("REQUIRE_EMAIL_VERIFICATION", false),
		ResetEmailRateLimit:      rate("RESET_EMAIL_RATE_LIMIT", "3/1h"),
		ResetIPRateLimit:         rate("RESET_IP_RATE_LIMIT", "20/1h"),
		MailTemplatesDir:         get("MAIL_TEMPLATES_DIR", ""),

		TOTPIssuer:     get("TOTP_ISSUER", DefaultIssuer),
		MFARateLimit:   rate("MFA_RATE_LIMIT", "10/15m"),
		ReauthMaxAge:   dur("REAUTH_MAX_AGE", "10m"),
		WebAuthnRPID:   get("WEBAUTHN_RP_ID", "localhost"),
		WebAuthnRPName: get("WEBAUTHN_RP_NAME", DefaultIssuer),

		TrustedDocuments:     strings.ToLower(get("TRUSTED_DOCUMENTS", TrustedOff)),
		TrustedDocumentsFile: get("TRUSTED_DOCUMENTS_FILE", ""),
		APQCacheSize:         int(integer("APQ_CACHE_SIZE", 1000)),
		APQMaxDocumentBytes:  int(integer("APQ_MAX_DOCUMENT_BYTES", 8<<10)),
		APQRedisTTL:          dur("APQ_REDIS_TTL", "24h"),
	}
	for _, o := range strings.Split(get("WEBAUTHN_RP_ORIGINS", "http://localhost:8080"), ",") {
		if o = strings.TrimSuffix(strings.TrimSpace(o), "/"); o != "" {
			c.WebAuthnRPOrigins = append(c.WebAuthnRPOrigins, o)
		}
	}
	for i, k := range strings.Split(get("TOTP_ENCRYPTION_KEY", ""), ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(key) != 32 {
			// Never quote the value: it is a secret.
			errs = append(errs, fmt.Errorf("TOTP_ENCRYPTION_KEY: key %d is not 32 bytes in base64; generate one with: head -c 32 /dev/urandom | base64", i+1))
			continue
		}
		c.TOTPKeys = append(c.TOTPKeys, key)
	}
	// Development stops at once on Ctrl-C. In production a replica keeps serving, with /readyz
	// failing, for 5s before it shuts down: long enough for Kubernetes to take it out of its
	// endpoints and for proxies to stop sending it new connections (the usual "preStop sleep 5"),
	// short enough that 5s plus SHUTDOWN_TIMEOUT (15s) stays within Kubernetes' default 30s grace.
	drainDelay := "0s"
	if c.Production() {
		drainDelay = "5s"
	}
	c.ShutdownDrainDelay = dur("SHUTDOWN_DRAIN_DELAY", drainDelay)
	if err := c.LogLevel.UnmarshalText([]byte(get("LOG_LEVEL", "info"))); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL=%q: use debug, info, warn or error", get("LOG_LEVEL", "info")))
	}
	for _, o := range strings.Split(get("CORS_ALLOWED_ORIGINS", ""), ",") {
		if o = strings.TrimSuffix(strings.TrimSpace(o), "/"); o != "" {
			c.CORSAllowedOrigins = append(c.CORSAllowedOrigins, o)
		}
	}
	for _, n := range strings.Split(get("METRICS_OPERATION_NAMES", ""), ",") {
		if n = strings.TrimSpace(n); n != "" {
			c.MetricsOperationNames = append(c.MetricsOperationNames, n)
		}
	}
	for _, p := range strings.Split(get("TRUSTED_PROXIES", ""), ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil {
				errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %q is neither an IP address nor a CIDR prefix", p))
				continue
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		c.TrustedProxies = append(c.TrustedProxies, prefix.Masked())
	}
	// The secret is used as raw bytes, untrimmed: whitespace may be part of it.
	if v, ok := lookup("JWT_SECRET"); ok && v != "" {
		c.JWTSecret = []byte(v)
	}
	c.DatabaseURL = get("DATABASE_URL", filepath.Join(c.DataDir, "gqlauth.db"))
	c.loadTracing(get, boolean)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// graphQLName matches a GraphQL name of at most 64 characters.
var graphQLName = regexp.MustCompile(`^[_A-Za-z][_0-9A-Za-z]{0,63}$`).MatchString

func countSet(flags ...bool) int {
	n := 0
	for _, f := range flags {
		if f {
			n++
		}
	}
	return n
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
	if n := countSet(len(c.JWTSecret) > 0, c.JWTPrivateKeyFile != "", c.JWTKeysDir != ""); n > 1 {
		bad("set only one of JWT_SECRET (HS256), JWT_PRIVATE_KEY_FILE (one EdDSA key) or JWT_KEYS_DIR (rotating EdDSA keys)")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("LOG_FORMAT=%q: must be text or json", c.LogFormat)
	}
	if c.ShutdownTimeout <= 0 {
		bad("SHUTDOWN_TIMEOUT must be positive")
	}
	if c.ShutdownDrainDelay < 0 || c.ShutdownDrainDelay > time.Minute {
		// Longer would hold a terminating replica past any usual orchestrator grace period.
		bad("SHUTDOWN_DRAIN_DELAY must be between 0 and 1m (got %s)", c.ShutdownDrainDelay)
	}
	if c.JWTLeeway < 0 || c.JWTLeeway > time.Minute {
		// The leeway extends every access token's life: it is for clock skew, not for longer tokens.
		bad("JWT_LEEWAY must be between 0 and 1m (got %s)", c.JWTLeeway)
	}
	if c.DBWaitTimeout < 0 {
		bad("DB_WAIT_TIMEOUT must be 0 (do not wait) or positive")
	}
	if c.RequestTimeout < 100*time.Millisecond || c.RequestTimeout > 25*time.Second {
		// The HTTP write timeout is 30s: a request must give up before its response can no longer be sent.
		bad("REQUEST_TIMEOUT must be between 100ms and 25s (got %s)", c.RequestTimeout)
	}
	if c.JanitorInterval < 0 || (c.JanitorInterval > 0 && c.JanitorInterval < time.Second) {
		bad("JANITOR_INTERVAL must be 0 (off) or at least 1s")
	}
	if c.JanitorRetention < c.AccessTokenTTL+time.Minute {
		// Revoked sessions must outlive their access tokens, or another replica's revocation poll could miss them.
		bad("JANITOR_RETENTION (%s) must exceed ACCESS_TOKEN_TTL by at least 1m", c.JanitorRetention)
	}
	if c.KeyReloadInterval < time.Second {
		bad("KEY_RELOAD_INTERVAL must be at least 1s")
	}
	if c.DBMaxOpenConns < 0 {
		bad("DB_MAX_OPEN_CONNS must not be negative")
	}
	if c.JWTIssuer == "" || c.JWTAudience == "" {
		bad("JWT_ISSUER and JWT_AUDIENCE must not be empty")
	}
	if c.MaxQueryDepth < 1 {
		bad("MAX_QUERY_DEPTH must be at least 1")
	}
	if c.MaxQueryComplexity < 1 {
		bad("MAX_QUERY_COMPLEXITY must be at least 1")
	}
	if c.MaxSessionsPerUser < 0 {
		bad("MAX_SESSIONS_PER_USER must be 0 (no cap) or positive")
	}
	if c.MaxQueryTokens < 100 || c.MaxQueryTokens > 100000 {
		bad("MAX_QUERY_TOKENS must be between 100 and 100000 (got %d)", c.MaxQueryTokens)
	}
	if c.MaxBodyBytes < 1<<10 || c.MaxBodyBytes > 16<<20 {
		bad("MAX_BODY_BYTES must be between 1024 and 16777216 (got %d)", c.MaxBodyBytes)
	}
	if c.PasswordHashConcurrency < 1 {
		bad("PASSWORD_HASH_CONCURRENCY must be at least 1")
	}
	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") {
		bad("REDIS_URL must start with redis:// or rediss://")
	}
	if len(c.MetricsOperationNames) > 200 {
		bad("METRICS_OPERATION_NAMES: at most 200 names (each is a label value)")
	}
	for _, n := range c.MetricsOperationNames {
		if !graphQLName(n) {
			bad("METRICS_OPERATION_NAMES: %q is not a GraphQL name of at most 64 characters", n)
		}
	}
	c.validateWebSocket(bad)
	c.validateTracing(bad)
	if c.CookieSameSite != "strict" && c.CookieSameSite != "lax" {
		bad("COOKIE_SAMESITE=%q: must be strict or lax", c.CookieSameSite)
	}
	for _, o := range c.CORSAllowedOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			bad("CORS_ALLOWED_ORIGINS: %q is not an origin such as https://app.example.com", o)
		}
	}
	c.validateMail(bad)
	c.validateFactors(bad)
	c.validateTrusted(bad)
	if c.Production() {
		// Settings that are convenient on a laptop and dangerous on the internet.
		if c.SMTPURL == "" {
			bad("APP_ENV=production: SMTP_URL is not set, so password-reset and verification mail would only be printed to the log; set it to smtp://[user:pass@]host:port or smtps://host:port")
		}
		if len(c.JWTSecret) == 0 && c.JWTPrivateKeyFile == "" && c.JWTKeysDir == "" {
			bad("APP_ENV=production: a signing key would be generated on this machine; set JWT_KEYS_DIR, JWT_PRIVATE_KEY_FILE (Ed25519, PKCS#8 PEM) or JWT_SECRET")
		} else if c.JWTPrivateKeyFile != "" {
			if _, err := os.Stat(c.JWTPrivateKeyFile); err != nil {
				bad("APP_ENV=production: JWT_PRIVATE_KEY_FILE %s cannot be read (a new key would be generated): %v", c.JWTPrivateKeyFile, err)
			}
		}
		if len(c.TOTPKeys) == 0 {
			bad("APP_ENV=production: TOTP_ENCRYPTION_KEY is not set, so TOTP secrets would be sealed with a key generated on this machine; generate one with: head -c 32 /dev/urandom | base64")
		}
		if c.RefreshTokenCookie && !c.CookieSecure {
			bad("APP_ENV=production: COOKIE_SECURE=false would send the refresh-token cookie over plain HTTP")
		}
		for _, o := range c.CORSAllowedOrigins {
			if o == "*" {
				bad("APP_ENV=production: CORS_ALLOWED_ORIGINS must list origins, not *")
			}
		}
	}
	return errors.Join(errs...)
}

// validateMail checks the mail settings. Messages never quote SMTP_URL: it may hold a password.
func (c *Config) validateWebSocket(bad func(format string, args ...any)) {
	if c.WSInitTimeout < 100*time.Millisecond || c.WSInitTimeout > time.Minute {
		bad("WS_INIT_TIMEOUT must be between 100ms and 1m (got %s)", c.WSInitTimeout)
	}
	if c.WSKeepAliveInterval < 100*time.Millisecond || c.WSKeepAliveInterval > 10*time.Minute {
		// Proxies commonly drop a connection idle for 60s: the default 25s stays well under it.
		bad("WS_KEEPALIVE_INTERVAL must be between 100ms and 10m (got %s)", c.WSKeepAliveInterval)
	}
	if c.WSMaxSubscriptions < 1 || c.WSMaxSubscriptions > 1000 {
		bad("WS_MAX_SUBSCRIPTIONS must be between 1 and 1000 (got %d)", c.WSMaxSubscriptions)
	}
	if c.WSMaxConnectionsPerUser < 1 || c.WSMaxConnectionsPerUser > 100000 {
		bad("WS_MAX_CONNECTIONS_PER_USER must be between 1 and 100000 (got %d)", c.WSMaxConnectionsPerUser)
	}
	if c.WSMaxMessageBytes < 1<<10 || c.WSMaxMessageBytes > 16<<20 {
		bad("WS_MAX_MESSAGE_BYTES must be between 1024 and 16777216 (got %d)", c.WSMaxMessageBytes)
	}
}

func (c *Config) validateMail(bad func(format string, args ...any)) {
	if c.SMTPURL != "" {
		u, err := url.Parse(c.SMTPURL)
		if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			bad("SMTP_URL must be smtp://[user:pass@]host:port (STARTTLS when the server offers it) or smtps://[user:pass@]host:port (implicit TLS)")
		} else if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				bad("SMTP_URL: the port must be between 1 and 65535")
			}
		}
	}
	if a, err := mail.ParseAddress(c.MailFrom); err != nil || a.Address == "" {
		bad("MAIL_FROM=%q: not an e-mail address such as \"gqlauth <no-reply@example.com>\"", c.MailFrom)
	}
	for _, l := range []struct{ key, value string }{
		{"PASSWORD_RESET_URL", c.PasswordResetURL}, {"EMAIL_VERIFICATION_URL", c.EmailVerificationURL},
	} {
		u, err := url.Parse(strings.ReplaceAll(l.value, "{token}", "t"))
		if !strings.Contains(l.value, "{token}") || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("%s=%q: must be an http(s) URL containing {token}, such as https://app.example.com/reset-password?token={token}", l.key, l.value)
		}
	}
	if c.PasswordResetTTL < time.Minute || c.PasswordResetTTL > 24*time.Hour {
		bad("PASSWORD_RESET_TTL must be between 1m and 24h (got %s)", c.PasswordResetTTL)
	}
	if c.EmailVerificationTTL < time.Minute || c.EmailVerificationTTL > 30*24*time.Hour {
		bad("EMAIL_VERIFICATION_TTL must be between 1m and 720h (got %s)", c.EmailVerificationTTL)
	}
	if c.MailTemplatesDir != "" {
		if fi, err := os.Stat(c.MailTemplatesDir); err != nil || !fi.IsDir() {
			bad("MAIL_TEMPLATES_DIR %s is not a readable directory", c.MailTemplatesDir)
		}
	}
}

// TOTPKeyFile is where development keeps a generated TOTP key when TOTP_ENCRYPTION_KEY is not set.
func (c *Config) TOTPKeyFile() string { return filepath.Join(c.DataDir, "totp.key") }

// validateFactors checks the second-factor and passkey settings.
func (c *Config) validateFactors(bad func(format string, args ...any)) {
	if c.ReauthMaxAge < time.Minute || c.ReauthMaxAge > 24*time.Hour {
		bad("REAUTH_MAX_AGE must be between 1m and 24h (got %s)", c.ReauthMaxAge)
	}
	if c.TOTPIssuer == "" || strings.ContainsAny(c.TOTPIssuer, ":") || len(c.TOTPIssuer) > 64 {
		bad("TOTP_ISSUER=%q: must be 1 to 64 characters without a colon", c.TOTPIssuer)
	}
	if c.WebAuthnRPID == "" || strings.ContainsAny(c.WebAuthnRPID, ":/ ") {
		bad("WEBAUTHN_RP_ID=%q: must be a domain such as example.com (no scheme or port)", c.WebAuthnRPID)
	}
	if len(c.WebAuthnRPOrigins) == 0 {
		bad("WEBAUTHN_RP_ORIGINS must list at least one origin")
	}
	for _, o := range c.WebAuthnRPOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			bad("WEBAUTHN_RP_ORIGINS: %q is not an origin such as https://app.example.com", o)
			continue
		}
		// WebAuthn §5.1.4.1: the RP id must be the origin's host or a registrable suffix of it.
		if h := u.Hostname(); h != c.WebAuthnRPID && !strings.HasSuffix(h, "."+c.WebAuthnRPID) {
			bad("WEBAUTHN_RP_ORIGINS: the host of %q is not WEBAUTHN_RP_ID (%s) or a subdomain of it", o, c.WebAuthnRPID)
		}
		if c.Production() && u.Scheme != "https" && u.Hostname() != "localhost" {
			bad("APP_ENV=production: WEBAUTHN_RP_ORIGINS: %q must be https (browsers allow passkeys over http only on localhost)", o)
		}
	}
}

// Values of TRUSTED_DOCUMENTS.
const (
	TrustedOff     = "off"     // any operation runs; APQ works
	TrustedAllow   = "allow"   // any operation runs; those not in the manifest are counted
	TrustedRequire = "require" // only the manifest's documents run; APQ cannot register others
)

// validateTrusted checks the trusted-documents and APQ settings. The manifest's content is checked
// when the server starts (graph.ParseManifest): here only that it is named and can be read.
func (c *Config) validateTrusted(bad func(format string, args ...any)) {
	switch c.TrustedDocuments {
	case TrustedOff, TrustedAllow, TrustedRequire:
	default:
		bad("TRUSTED_DOCUMENTS=%q: must be off, allow or require", c.TrustedDocuments)
	}
	if c.TrustedDocuments != TrustedOff && c.TrustedDocuments != "" && c.TrustedDocumentsFile == "" {
		bad("TRUSTED_DOCUMENTS=%s needs TRUSTED_DOCUMENTS_FILE: the persisted-documents.json that graphql-codegen's client preset writes with persistedDocuments: true", c.TrustedDocuments)
	}
	if c.TrustedDocumentsFile != "" {
		if fi, err := os.Stat(c.TrustedDocumentsFile); err != nil || fi.IsDir() {
			bad("TRUSTED_DOCUMENTS_FILE %s is not a readable file", c.TrustedDocumentsFile)
		}
	}
	if c.APQCacheSize < 0 || c.APQCacheSize > 100000 {
		bad("APQ_CACHE_SIZE must be between 0 (APQ off) and 100000 (got %d)", c.APQCacheSize)
	}
	if c.APQMaxDocumentBytes < 256 || c.APQMaxDocumentBytes > 1<<20 {
		bad("APQ_MAX_DOCUMENT_BYTES must be between 256 and 1048576 (got %d)", c.APQMaxDocumentBytes)
	}
	if c.APQRedisTTL < time.Minute || c.APQRedisTTL > 30*24*time.Hour {
		bad("APQ_REDIS_TTL must be between 1m and 720h (got %s)", c.APQRedisTTL)
	}
}

// loadTracing reads the OpenTelemetry switches. Tracing is on only when an OTLP endpoint is named
// (the signal-specific variable wins over the general one, as in the OpenTelemetry specification),
// and OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none turn it off again: with nothing set the server
// builds no tracer, exporter or middleware at all.
func (c *Config) loadTracing(get func(key, def string) string, boolean func(key string, def bool) bool) {
	c.OTelEndpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", get("OTEL_EXPORTER_OTLP_ENDPOINT", ""))
	c.OTelProtocol = strings.ToLower(get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")))
	c.OTelService = get("OTEL_SERVICE_NAME", DefaultIssuer)
	c.otelExporter = strings.ToLower(get("OTEL_TRACES_EXPORTER", "otlp"))
	c.otelSDKDisable = boolean("OTEL_SDK_DISABLED", false)
	c.Tracing = c.OTelEndpoint != "" && !c.otelSDKDisable && c.otelExporter != "none"
}

// validateTracing checks the OpenTelemetry settings when tracing is on. The endpoint is never
// quoted in a message: OTLP endpoints of hosted backends may carry credentials in their URL.
func (c *Config) validateTracing(bad func(format string, args ...any)) {
	if c.otelExporter != "" && c.otelExporter != "otlp" && c.otelExporter != "none" {
		bad("OTEL_TRACES_EXPORTER=%q: only otlp (the default) and none are supported", c.otelExporter)
	}
	if !c.Tracing {
		return
	}
	if c.OTelProtocol != "http/protobuf" && c.OTelProtocol != "grpc" {
		bad("OTEL_EXPORTER_OTLP_PROTOCOL=%q: use http/protobuf (the default) or grpc", c.OTelProtocol)
	}
	if u, err := url.Parse(c.OTelEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) must be an http:// or https:// URL such as http://localhost:4318")
	}
	if c.OTelService == "" || len(c.OTelService) > 128 {
		bad("OTEL_SERVICE_NAME must be 1 to 128 characters")
	}
}
