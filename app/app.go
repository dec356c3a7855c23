// Package app wires the service together (configuration → store → token issuer → auth service →
// HTTP handler). The server binary and the end-to-end tests both build it here, so tests run the
// same wiring as production.
package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"gqlauth/auth"
	"gqlauth/config"
	"gqlauth/fanout"
	"gqlauth/graph"
	"gqlauth/httpapi"
	"gqlauth/observe"
	"gqlauth/password"
	"gqlauth/ratelimit"
	"gqlauth/store"
	"gqlauth/token"
)

// Options are the knobs that are not configuration: tests use cheap hashing and a fake clock.
type Options struct {
	Logger   *slog.Logger     // nil means slog.Default()
	Password *password.Params // nil means password.Default
	Now      func() time.Time // nil means time.Now
}

// App is a wired service.
type App struct {
	Handler http.Handler
	Auth    *auth.Service
	Store   *store.DB
	Tokens  *token.Issuer
	Limiter ratelimit.Limiter
	Metrics *observe.Metrics // served at GET /metrics

	cancel       context.CancelFunc
	closeLimiter func()
}

// New opens the database (migrating it), loads or creates the signing key, and builds the handler.
// Call Close when done.
func New(ctx context.Context, cfg *config.Config, opts Options) (*App, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	// Records logged with a request's context carry its request_id (a no-op for observe.NewLogger's).
	opts.Logger = slog.New(observe.RequestIDHandler(opts.Logger.Handler()))
	params := password.Default
	if opts.Password != nil {
		params = *opts.Password
	}
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{Migrate: cfg.MigrateOnStart})
	if err != nil {
		return nil, err
	}
	if err := db.SetPoolSize(cfg.DBMaxOpenConns); err != nil {
		_ = db.Close()
		return nil, err
	}
	tokens, err := newIssuer(cfg, opts)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	metrics := observe.NewMetrics(prometheus.NewRegistry())
	metrics.KnowOperations(append(graph.OperationNames(), cfg.MetricsOperationNames...)...)
	limiter, broadcaster, closeLimiter, err := newRedisParts(cfg, opts, metrics)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	if pool, err := db.SQL(); err == nil {
		metrics.RegisterDB(pool, "gqlauth")
	}
	svc, err := auth.NewService(db, tokens, auth.Options{
		RefreshTokenTTL:        cfg.RefreshTokenTTL,
		RefreshReuseGrace:      cfg.RefreshReuseGrace,
		Password:               params,
		RevocationPollInterval: cfg.RevocationPollInterval,
		Now:                    opts.Now,
		Logger:                 opts.Logger,
		Limiter:                limiter,
		LoginRate:              cfg.LoginRateLimit,
		LoginIPRate:            cfg.LoginIPRateLimit,
		LoginSuccessRate:       cfg.LoginSuccessRateLimit,
		LoginAccountRate:       cfg.LoginAccountRateLimit,
		RegisterRate:           cfg.RegisterRateLimit,
		MaxSessionsPerUser:     cfg.MaxSessionsPerUser,
		HashConcurrency:        cfg.PasswordHashConcurrency,
		OnEvent:                metrics.AuthEvent,
		Broadcaster:            broadcaster,
	})
	if err != nil {
		closeLimiter()
		_ = db.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	svc.Start(runCtx)
	if cfg.JWTKeysDir != "" {
		go watchKeyDir(runCtx, tokens, cfg.JWTKeysDir, cfg.KeyReloadInterval, opts.Logger)
	}
	go runJanitor(runCtx, db, cfg.JanitorInterval, cfg.JanitorRetention, opts.Logger)
	sameSite := http.SameSiteStrictMode
	if cfg.CookieSameSite == "lax" {
		sameSite = http.SameSiteLaxMode
	}
	h, err := httpapi.New(svc, httpapi.Options{
		Logger:         opts.Logger,
		Development:    !cfg.Production(),
		MaxBodyBytes:   cfg.MaxBodyBytes,
		MaxDepth:       cfg.MaxQueryDepth,
		MaxComplexity:  cfg.MaxQueryComplexity,
		MaxTokens:      cfg.MaxQueryTokens,
		TrustedProxies: cfg.TrustedProxies,
		RequestTimeout: cfg.RequestTimeout,
		Cookie:         httpapi.CookieOptions{Enabled: cfg.RefreshTokenCookie, Secure: cfg.CookieSecure, SameSite: sameSite},
		CORSOrigins:    cfg.CORSAllowedOrigins,
		Ready:          db.Ping,
		Metrics:        metrics,
	})
	if err != nil {
		cancel()
		closeLimiter()
		_ = db.Close()
		return nil, fmt.Errorf("CORS_ALLOWED_ORIGINS: %w", err)
	}
	return &App{Handler: h, Auth: svc, Store: db, Tokens: tokens, Limiter: limiter, Metrics: metrics, cancel: cancel, closeLimiter: closeLimiter}, nil
}

// Server returns the HTTP server for the handler (see httpapi.NewServer for its timeouts).
func (a *App) Server(addr string) *http.Server { return httpapi.NewServer(addr, a.Handler) }

// Close stops background work and closes the database.
func (a *App) Close() error {
	a.cancel()
	a.closeLimiter()
	return a.Store.Close()
}

// newRedisParts returns the in-memory limiter and no broadcaster or, with REDIS_URL, the Redis
// limiter backed by memory (when Redis fails, counting goes on in memory instead of failing logins)
// and the Redis revocation fan-out (when Redis fails, database polling still spreads revocations).
func newRedisParts(cfg *config.Config, opts Options, metrics *observe.Metrics) (ratelimit.Limiter, auth.Broadcaster, func(), error) {
	mem := ratelimit.NewMemory(opts.Now)
	metrics.LimiterOverflows(mem.Overflows)
	if cfg.RedisURL == "" {
		return mem, nil, func() {}, nil
	}
	ropts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	ropts.DialTimeout, ropts.ReadTimeout, ropts.WriteTimeout = time.Second, 500*time.Millisecond, 500*time.Millisecond
	redis.SetLogger(redisLog{opts.Logger}) // process-wide in go-redis
	client := redis.NewClient(ropts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		opts.Logger.Warn("Redis unreachable at start; rate limits are counted in memory until it answers", "err", err)
	}
	limiter := ratelimit.NewFallback(ratelimit.NewRedis(client, "gqlauth:rl:"), mem, opts.Logger)
	limiter.OnChange = metrics.Dependency("redis", "ratelimit")
	broadcaster := fanout.NewRedis(client, fanout.Channel, opts.Logger)
	broadcaster.OnChange = metrics.Dependency("redis", "revocation_fanout")
	return limiter, broadcaster, func() { _ = client.Close() }, nil
}

// redisLog sends go-redis's own messages (one per failed dial while Redis is down) to the debug level:
// the limiter and the fan-out each log an outage once, at warn, and again when it ends.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

func newIssuer(cfg *config.Config, opts Options) (*token.Issuer, error) {
	topts := token.Options{
		Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, TTL: cfg.AccessTokenTTL,
		Leeway: token.DefaultLeeway, Now: opts.Now,
	}
	if len(cfg.JWTSecret) > 0 {
		return token.NewHS256Issuer(cfg.JWTSecret, topts)
	}
	if cfg.JWTKeysDir != "" {
		return newKeySetIssuer(cfg, topts, opts.Logger)
	}
	key, created, err := token.LoadOrCreateEd25519Key(cfg.KeyFile())
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", cfg.KeyFile(), err)
	}
	if created {
		opts.Logger.Info("generated a new Ed25519 signing key", "path", cfg.KeyFile())
	}
	return token.NewEdDSAIssuer(key, topts)
}

// newKeySetIssuer builds the issuer over the rotating keys in JWT_KEYS_DIR (see token.LoadKeyDir). In
// development a missing or empty directory gets a first key, active at once; in production that is an
// error, because every replica would then sign with a key of its own.
func newKeySetIssuer(cfg *config.Config, topts token.Options, logger *slog.Logger) (*token.Issuer, error) {
	dir := cfg.JWTKeysDir
	keys, err := token.LoadKeyDir(dir)
	noKeys := errors.Is(err, token.ErrNoKeys) || errors.Is(err, fs.ErrNotExist)
	if noKeys && !cfg.Production() {
		now := time.Now
		if topts.Now != nil {
			now = topts.Now
		}
		path, kid, gerr := token.GenerateKeyFile(dir, now())
		if gerr != nil {
			return nil, fmt.Errorf("JWT_KEYS_DIR: %w", gerr)
		}
		logger.Info("generated a first Ed25519 signing key in JWT_KEYS_DIR", "path", path, "kid", kid)
		keys, err = token.LoadKeyDir(dir)
	} else if noKeys {
		return nil, fmt.Errorf("JWT_KEYS_DIR: %w; create the first key with: authctl keys rotate", err)
	}
	if err != nil {
		return nil, fmt.Errorf("JWT_KEYS_DIR: %w", err)
	}
	tokens, err := token.NewEdDSAKeySetIssuer(keys, topts)
	if err != nil {
		return nil, fmt.Errorf("JWT_KEYS_DIR: %w", err)
	}
	logger.Info("signing keys loaded", "dir", dir, "kids", keyIDs(keys), "signer", tokens.KeyID())
	return tokens, nil
}

// watchKeyDir re-reads JWT_KEYS_DIR every interval until ctx ends, so a key added by "authctl keys
// rotate" (or delivered by a secret store) is published in the JWKS and, from its activation time,
// signs, with no restart; a deleted key file stops verifying. A directory that fails to load leaves
// the current keys in place.
func watchKeyDir(ctx context.Context, tokens *token.Issuer, dir string, interval time.Duration, logger *slog.Logger) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		keys, changed, err := tokens.ReloadKeyDir(dir)
		switch {
		case err != nil:
			logger.Warn("signing keys not reloaded; keeping the current keys", "dir", dir, "err", err)
		case changed:
			logger.Info("signing keys reloaded", "dir", dir, "kids", keyIDs(keys), "signer", tokens.KeyID())
		}
	}
}

func keyIDs(keys []token.Key) []string {
	ids := make([]string, len(keys))
	for n, k := range keys {
		ids[n] = k.Kid
	}
	return ids
}
