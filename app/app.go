// Package app wires the service together (configuration → store → token issuer → auth service →
// HTTP handler). The server binary and the end-to-end tests both build it here, so tests run the
// same wiring as production.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"gqlauth/auth"
	"gqlauth/config"
	"gqlauth/fanout"
	"gqlauth/graph"
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

	cancel       context.CancelFunc
	closeLimiter func()
}

// New opens the database (migrating it), loads or creates the signing key, and builds the handler.
// Call Close when done.
func New(ctx context.Context, cfg *config.Config, opts Options) (*App, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	params := password.Default
	if opts.Password != nil {
		params = *opts.Password
	}
	db, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	tokens, err := newIssuer(cfg, opts)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	limiter, broadcaster, closeLimiter, err := newRedisParts(cfg, opts)
	if err != nil {
		_ = db.Close()
		return nil, err
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
		RegisterRate:           cfg.RegisterRateLimit,
		HashConcurrency:        cfg.PasswordHashConcurrency,
		Broadcaster:            broadcaster,
	})
	if err != nil {
		closeLimiter()
		_ = db.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	svc.Start(runCtx)
	sameSite := http.SameSiteStrictMode
	if cfg.CookieSameSite == "lax" {
		sameSite = http.SameSiteLaxMode
	}
	h, err := graph.NewHandler(svc, graph.Options{
		Logger:         opts.Logger,
		Development:    !cfg.Production(),
		MaxBodyBytes:   cfg.MaxBodyBytes,
		MaxDepth:       cfg.MaxQueryDepth,
		MaxComplexity:  cfg.MaxQueryComplexity,
		TrustedProxies: cfg.TrustedProxies,
		Cookie:         graph.CookieOptions{Enabled: cfg.RefreshTokenCookie, Secure: cfg.CookieSecure, SameSite: sameSite},
		CORSOrigins:    cfg.CORSAllowedOrigins,
	})
	if err != nil {
		cancel()
		closeLimiter()
		_ = db.Close()
		return nil, fmt.Errorf("CORS_ALLOWED_ORIGINS: %w", err)
	}
	return &App{Handler: h, Auth: svc, Store: db, Tokens: tokens, Limiter: limiter, cancel: cancel, closeLimiter: closeLimiter}, nil
}

// Server returns the HTTP server for the handler, with timeouts that keep slow or idle clients from
// holding connections: a header must arrive within 5s, a whole request within 15s, and a response
// must be written within 30s.
func (a *App) Server(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           a.Handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// Close stops background work and closes the database.
func (a *App) Close() error {
	a.cancel()
	a.closeLimiter()
	return a.Store.Close()
}

// newRedisParts returns the in-memory limiter and no broadcaster or, with REDIS_URL, the Redis
// limiter backed by memory (when Redis fails, counting goes on in memory instead of failing logins)
// and the Redis revocation fan-out (when Redis fails, database polling still spreads revocations).
func newRedisParts(cfg *config.Config, opts Options) (ratelimit.Limiter, auth.Broadcaster, func(), error) {
	mem := ratelimit.NewMemory(opts.Now)
	if cfg.RedisURL == "" {
		return mem, nil, func() {}, nil
	}
	ropts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	ropts.DialTimeout, ropts.ReadTimeout, ropts.WriteTimeout = time.Second, 500*time.Millisecond, 500*time.Millisecond
	client := redis.NewClient(ropts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		opts.Logger.Warn("Redis unreachable at start; rate limits are counted in memory until it answers", "err", err)
	}
	limiter := ratelimit.NewFallback(ratelimit.NewRedis(client, "gqlauth:rl:"), mem, opts.Logger)
	return limiter, fanout.NewRedis(client, "gqlauth:revocations", opts.Logger), func() { _ = client.Close() }, nil
}

func newIssuer(cfg *config.Config, opts Options) (*token.Issuer, error) {
	topts := token.Options{
		Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, TTL: cfg.AccessTokenTTL,
		Leeway: 5 * time.Second, Now: opts.Now,
	}
	if len(cfg.JWTSecret) > 0 {
		return token.NewHS256Issuer(cfg.JWTSecret, topts)
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
