// Package app wires the service together (configuration → store → token issuer → auth service →
// HTTP handler). The server binary and the end-to-end tests both build it here, so tests run the
// same wiring as production.
//
// Its lifecycle has three steps: New builds and starts nothing; Run (or Serve, on a given listener)
// starts the background work and the HTTP server, blocks until its context ends and shuts down
// gracefully; Close releases the database and Redis.
package app

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"gqlauth/auth"
	"gqlauth/config"
	"gqlauth/fanout"
	"gqlauth/graph"
	"gqlauth/httpapi"
	"gqlauth/mail"
	"gqlauth/observe"
	"gqlauth/password"
	"gqlauth/ratelimit"
	"gqlauth/store"
	"gqlauth/token"
)

// Options are the knobs that are not configuration: tests use cheap hashing, a fake clock and a
// database of their own.
type Options struct {
	Logger   *slog.Logger     // nil means slog.Default()
	Password *password.Params // nil means password.Default
	Now      func() time.Time // nil means time.Now
	// Store, if set, is an open database used instead of opening DATABASE_URL. It stays the caller's:
	// Close does not close it, and DB_MAX_OPEN_CONNS is not applied to it (size its pool yourself).
	Store *store.DB
	// OnSockets, if set, is told the number of open WebSockets whenever it changes (cmd/server grows
	// the process's memory limit with it).
	OnSockets func(open int)
	// TracerProvider, if set, turns tracing on with this provider instead of the OTLP exporter that
	// OTEL_EXPORTER_OTLP_ENDPOINT would configure (tests use an in-memory one). It stays the caller's:
	// Close does not shut it down.
	TracerProvider trace.TracerProvider
}

// App is a wired service. New builds it and starts nothing; Run (or Serve) starts the background work
// and the HTTP server and blocks until its context ends; Close releases what New opened.
type App struct {
	// Handler is the whole HTTP surface, for tests and benchmarks that call it in-process. Serve
	// serves it.
	Handler http.Handler
	Auth    *auth.Service
	Store   *store.DB
	Tokens  *token.Issuer
	Limiter ratelimit.Limiter
	Metrics *observe.Metrics // served at GET /metrics
	// Sockets are the open graphql-ws sockets; Serve closes them (1001) when its context ends.
	Sockets *httpapi.Sockets
	// TracerProvider is the provider every traced part uses: Options.TracerProvider, or the OTLP one
	// when OTEL_EXPORTER_OTLP_ENDPOINT is set; nil when tracing is off (then nothing is instrumented).
	TracerProvider trace.TracerProvider

	cfg          *config.Config
	log          *slog.Logger
	ownsStore    bool
	closeLimiter func()
	served       atomic.Bool // Serve has been called: an App serves once
	draining     atomic.Bool // shutdown has begun: /readyz answers 503
	// tracing is the OTLP tracer provider (nil unless config turned tracing on and Options gave no
	// provider): Serve attaches its exporter, Close flushes it.
	tracing *observe.Tracing
	// sender delivers the mail outbox; Serve runs it. The auth service wakes it after a commit that
	// queued mail (auth.Options.KickMail), so mail goes out at once instead of at the next poll.
	sender *mail.Sender
}

// errDraining is what /readyz reports once shutdown has begun.
var errDraining = errors.New("shutting down")

// New opens the database (migrating it) unless Options.Store is given, loads or creates the signing
// key, connects to Redis when REDIS_URL is set, and builds the handler. It starts no goroutine and
// changes no process-wide state; ctx bounds only the building (opening and migrating the database),
// so a signal can end a start-up that waits for the database. A database that cannot be reached
// yields an error matching auth.ErrUnavailable. Call Close when done.
func New(ctx context.Context, cfg *config.Config, opts Options) (_ *App, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	// Records logged with a request's context carry its request_id (a no-op for observe.NewLogger's).
	opts.Logger = slog.New(observe.RequestIDHandler(opts.Logger.Handler()))
	params := password.Default
	if opts.Password != nil {
		params = *opts.Password
	}
	a := &App{cfg: cfg, log: opts.Logger, Store: opts.Store, closeLimiter: func() {}}
	defer func() {
		if err != nil {
			_ = a.Close()
		}
	}()
	if a.Store == nil {
		if a.Store, err = store.Open(ctx, cfg.DatabaseURL, store.Options{Migrate: cfg.MigrateOnStart}); err != nil {
			return nil, err
		}
		a.ownsStore = true
		if err := a.Store.SetPoolSize(cfg.DBMaxOpenConns); err != nil {
			return nil, err
		}
	}
	a.Tokens, err = token.OpenIssuer(token.Source{
		Secret: cfg.JWTSecret, KeysDir: cfg.JWTKeysDir, KeyFile: cfg.KeyFile(), Production: cfg.Production(),
	}, token.Options{
		Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, TTL: cfg.AccessTokenTTL, Leeway: cfg.JWTLeeway, Now: opts.Now,
	}, opts.Logger)
	if err != nil {
		return nil, err
	}
	totpKeys, err := openTOTPKeys(cfg, opts.Logger)
	if err != nil {
		return nil, err
	}
	if err := a.newTracing(opts); err != nil {
		return nil, err
	}
	a.Metrics = observe.NewMetrics(prometheus.NewRegistry())
	a.Metrics.KnowOperations(append(graph.OperationNames(), cfg.MetricsOperationNames...)...)
	limiter, broadcaster, redisClient, closeLimiter, err := newRedisParts(cfg, opts, a.Metrics, a.TracerProvider)
	if err != nil {
		return nil, err
	}
	a.Limiter, a.closeLimiter = limiter, closeLimiter
	persisted, err := newPersisted(cfg, redisClient, a.Metrics, opts.Logger)
	if err != nil {
		return nil, err
	}
	if pool, err := a.Store.SQL(); err == nil {
		a.Metrics.RegisterDB(pool, "gqlauth")
	}
	a.Auth, err = auth.NewService(a.Store, a.Tokens, auth.Options{
		RefreshTokenTTL:        cfg.RefreshTokenTTL,
		RefreshReuseGrace:      cfg.RefreshReuseGrace,
		Password:               params,
		RevocationPollInterval: cfg.RevocationPollInterval,
		Now:                    opts.Now,
		Logger:                 opts.Logger,
		Limiter:                a.Limiter,
		LoginRate:              cfg.LoginRateLimit,
		LoginIPRate:            cfg.LoginIPRateLimit,
		LoginSuccessRate:       cfg.LoginSuccessRateLimit,
		LoginAccountRate:       cfg.LoginAccountRateLimit,
		RegisterRate:           cfg.RegisterRateLimit,
		MaxSessionsPerUser:     cfg.MaxSessionsPerUser,
		HashConcurrency:        cfg.PasswordHashConcurrency,
		OnEvent:                a.Metrics.AuthEvent,
		Broadcaster:            broadcaster,

		MailStore:                a.Store,
		PasswordResetURL:         cfg.PasswordResetURL,
		EmailVerificationURL:     cfg.EmailVerificationURL,
		PasswordResetTTL:         cfg.PasswordResetTTL,
		EmailVerificationTTL:     cfg.EmailVerificationTTL,
		RequireEmailVerification: cfg.RequireEmailVerification,
		ResetEmailRate:           cfg.ResetEmailRateLimit,
		ResetIPRate:              cfg.ResetIPRateLimit,
		KickMail:                 a.kickMail,

		Factors:      a.Store,
		TOTPKeys:     totpKeys,
		TOTPIssuer:   cfg.TOTPIssuer,
		MFARate:      cfg.MFARateLimit,
		ReauthMaxAge: cfg.ReauthMaxAge,
		WebAuthn:     auth.WebAuthnOptions{RPID: cfg.WebAuthnRPID, RPDisplayName: cfg.WebAuthnRPName, RPOrigins: cfg.WebAuthnRPOrigins},

		TracerProvider: a.TracerProvider,
	})
	if err != nil {
		return nil, err
	}
	if err := a.newSender(opts); err != nil {
		return nil, err
	}
	// Readiness fails as soon as shutdown begins, so load balancers stop routing here while the
	// server still answers (SHUTDOWN_DRAIN_DELAY); otherwise it is the database's ping.
	ready := func(ctx context.Context) error {
		if a.draining.Load() {
			return errDraining
		}
		return a.Store.Ping(ctx)
	}
	sameSite := http.SameSiteStrictMode
	if cfg.CookieSameSite == "lax" {
		sameSite = http.SameSiteLaxMode
	}
	a.Sockets = httpapi.NewSockets(httpapi.WebSocketOptions{
		InitTimeout:           cfg.WSInitTimeout,
		KeepAliveInterval:     cfg.WSKeepAliveInterval,
		MaxSubscriptions:      cfg.WSMaxSubscriptions,
		MaxConnectionsPerUser: cfg.WSMaxConnectionsPerUser,
		MaxMessageBytes:       cfg.WSMaxMessageBytes,
		Leeway:                cfg.JWTLeeway,
		Now:                   opts.Now,
		OnOpenChange:          opts.OnSockets,
	})
	a.Handler, err = httpapi.New(a.Auth, httpapi.Options{
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
		Ready:          ready,
		Metrics:        a.Metrics,
		Sockets:        a.Sockets,
		Persisted:      persisted,
		TracerProvider: a.TracerProvider,
	})
	if err != nil {
		return nil, fmt.Errorf("CORS_ALLOWED_ORIGINS: %w", err)
	}
	return a, nil
}

// newTracing picks the tracer provider (Options.TracerProvider, else the OTLP one when config turned
// tracing on, else none) and instruments the database with it. With tracing off it does nothing:
// no provider, no GORM callbacks, and (below) no Redis hook, HTTP middleware or gqlgen extension.
func (a *App) newTracing(opts Options) error {
	a.TracerProvider = opts.TracerProvider
	if a.TracerProvider == nil && a.cfg.Tracing {
		t, err := observe.NewTracing(observe.TracingOptions{ServiceName: a.cfg.OTelService, Protocol: a.cfg.OTelProtocol, Logger: opts.Logger})
		if err != nil {
			return err
		}
		a.tracing, a.TracerProvider = t, t.Provider
	}
	if a.TracerProvider == nil {
		return nil
	}
	return a.Store.Trace(a.TracerProvider)
}

// kickMail wakes the mail sender without ever blocking (auth.Options.KickMail).
func (a *App) kickMail() {
	if a.sender != nil {
		a.sender.Kick()
	}
}

// newSender builds the mail sender: SMTP when SMTP_URL is set; otherwise (development only: config
// refuses production without SMTP_URL) mail is printed to the log, so the flows work with nothing
// installed. The templates are loaded now, so a broken override in MAIL_TEMPLATES_DIR stops the start.
func (a *App) newSender(opts Options) error {
	tpl, err := mail.LoadTemplates(a.cfg.MailTemplatesDir)
	if err != nil {
		return fmt.Errorf("MAIL_TEMPLATES_DIR: %w", err)
	}
	var tr mail.Transport = mail.Log{Logger: opts.Logger}
	if a.cfg.SMTPURL != "" {
		if tr, err = mail.NewSMTP(a.cfg.SMTPURL, a.cfg.MailFrom, mail.SMTPOptions{}); err != nil {
			return errors.New("SMTP_URL: not a usable smtp:// or smtps:// URL") // never quote it: it may hold a password
		}
	}
	a.Metrics.MailQueued(func() (int64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return a.Store.PendingMail(ctx)
	})
	a.sender = mail.NewSender(a.Store, tr, tpl, mail.SenderOptions{
		Now: opts.Now, Logger: opts.Logger, Resolve: a.Auth.ResolveResetRequest, OnResult: a.Metrics.MailResult,
	})
	return nil
}

// Run listens on ADDR and serves until ctx ends; see Serve.
func (a *App) Run(ctx context.Context) error {
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", a.cfg.Addr)
	if err != nil {
		return err
	}
	return a.Serve(ctx, ln)
}

// Serve starts the background work (the revocation poller and, with Redis, the revocation fan-out;
// the JWT_KEYS_DIR watcher; the janitor) and serves HTTP on ln until ctx ends. Then it shuts down:
// /readyz answers 503 at once while everything else is still served for SHUTDOWN_DRAIN_DELAY (the
// load balancer's time to stop routing here); then the WebSockets are closed (1001) and the listener
// closes (new connections are refused), in-flight requests get SHUTDOWN_TIMEOUT to finish and idle connections close; then the
// background work stops. It returns nil after a clean shutdown, an error if requests were still
// running at SHUTDOWN_TIMEOUT (they are cut off) or if serving failed. It closes ln. An App serves
// once; call Close after Serve returns.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	if !a.served.CompareAndSwap(false, true) {
		_ = ln.Close()
		return errors.New("app: Serve called twice")
	}
	// Background work outlives ctx until the HTTP server has stopped: in-flight requests still
	// check revocations while they finish.
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var background sync.WaitGroup
	defer func() {
		stopBackground()
		background.Wait()
	}()
	// Start polls revocations once before it returns, so the first request already has the cache.
	background.Go(a.Auth.Start(bg)) // waits for the poller and the fan-out listener to stop
	if dir := a.cfg.JWTKeysDir; dir != "" {
		background.Go(func() { a.Tokens.WatchKeyDir(bg, dir, a.cfg.KeyReloadInterval, a.log) })
	}
	background.Go(func() { runJanitor(bg, a.Store, a.cfg.JanitorInterval, a.cfg.JanitorRetention, a.log) })
	background.Go(func() { _ = a.sender.Run(bg) }) // it returns only when bg ends
	if a.tracing != nil {
		if err := a.tracing.Start(bg); err != nil {
			_ = ln.Close()
			return err
		}
	}

	srv := httpapi.NewServer(a.cfg.Addr, a.Handler)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	a.log.Info("listening", "addr", ln.Addr().String(), "env", a.cfg.Env, "database", a.Store.Dialect(), "alg", a.Tokens.Algorithm())
	if !a.cfg.Production() {
		a.log.Info("GraphQL IDE at http://localhost" + portOf(ln.Addr().String()) + "/")
	}

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	a.draining.Store(true)
	if d := a.cfg.ShutdownDrainDelay; d > 0 {
		a.log.Info("shutting down: /readyz answers 503; still serving for SHUTDOWN_DRAIN_DELAY", "drain_delay", d.String())
		select {
		case <-time.After(d):
		case err := <-served:
			return err
		}
	}
	a.log.Info("shutting down: finishing in-flight requests", "timeout", a.cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	// http.Server.Shutdown does not track hijacked connections: close the WebSockets (1001, going
	// away; clients reconnect to another replica) and refuse new ones, or they would outlive the server.
	if err := a.Sockets.Shutdown(shutdownCtx); err != nil {
		a.log.Warn("shutdown: WebSockets still open", "open", a.Sockets.Open(), "err", err)
	}
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: in-flight requests did not finish within %s: %w", a.cfg.ShutdownTimeout, err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	stopBackground()
	background.Wait()
	a.log.Info("stopped")
	return nil
}

// Close releases what New opened: the Redis client, the OTLP exporter (exporting the spans still
// queued, for up to 5 seconds) and, unless it was given in Options.Store, the database. Call it
// after Run or Serve has returned (or instead of them).
func (a *App) Close() error {
	a.closeLimiter()
	if a.tracing != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := a.tracing.Shutdown(ctx); err != nil {
			a.log.Warn("tracing: spans not exported at shutdown", "err", err)
		}
		cancel()
	}
	if a.ownsStore && a.Store != nil {
		return a.Store.Close()
	}
	return nil
}

func portOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[i:]
		}
	}
	return ""
}

// newRedisParts returns the in-memory limiter and no broadcaster or, with REDIS_URL, the Redis
// limiter backed by memory (when Redis fails, counting goes on in memory instead of failing logins)
// and the Redis revocation fan-out (when Redis fails, database polling still spreads revocations),
// with the Redis client (nil without REDIS_URL) for the APQ cache.
func newRedisParts(cfg *config.Config, opts Options, metrics *observe.Metrics, tp trace.TracerProvider) (ratelimit.Limiter, auth.Broadcaster, *redis.Client, func(), error) {
	mem := ratelimit.NewMemory(opts.Now)
	metrics.LimiterOverflows(mem.Overflows)
	if cfg.RedisURL == "" {
		return mem, nil, nil, func() {}, nil
	}
	ropts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	ropts.DialTimeout, ropts.ReadTimeout, ropts.WriteTimeout = time.Second, 500*time.Millisecond, 500*time.Millisecond
	client := redis.NewClient(ropts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		opts.Logger.Warn("Redis unreachable at start; rate limits are counted in memory until it answers", "err", err)
	}
	if tp != nil {
		// A span per command, named by the command; never its arguments (rate-limit keys name
		// e-mail addresses and client IPs) nor the calling code's location.
		if err := redisotel.InstrumentTracing(client, redisotel.WithTracerProvider(tp),
			redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false)); err != nil {
			_ = client.Close()
			return nil, nil, nil, nil, fmt.Errorf("REDIS_URL: tracing: %w", err)
		}
	}
	limiter := ratelimit.NewFallback(ratelimit.NewRedis(client, "gqlauth:rl:"), mem, opts.Logger)
	limiter.OnChange = metrics.Dependency("redis", "ratelimit")
	broadcaster := fanout.NewRedis(client, fanout.Channel, opts.Logger)
	broadcaster.OnChange = metrics.Dependency("redis", "revocation_fanout")
	return limiter, broadcaster, client, func() { _ = client.Close() }, nil
}

// openTOTPKeys returns TOTP_ENCRYPTION_KEY's keys or, in development without it, a key generated on
// first start and kept in DATA_DIR (0600), so that TOTP keeps working across restarts of a laptop
// server. Production refuses to start without the setting (config.Validate).
func openTOTPKeys(cfg *config.Config, log *slog.Logger) ([][]byte, error) {
	if len(cfg.TOTPKeys) > 0 {
		return cfg.TOTPKeys, nil
	}
	path := cfg.TOTPKeyFile()
	if b, err := os.ReadFile(path); err == nil {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("%s: not a base64 32-byte key; delete it to generate a new one (TOTP secrets sealed with it become unusable)", path)
		}
		return [][]byte{key}, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read TOTP key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return openTOTPKeys(cfg, log) // another process created it first
	}
	if err != nil {
		return nil, fmt.Errorf("write TOTP key: %w", err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err := errors.Join(werr, f.Close()); err != nil {
		return nil, fmt.Errorf("write TOTP key: %w", err)
	}
	log.Warn("generated a TOTP encryption key for development; set TOTP_ENCRYPTION_KEY in production", "file", path)
	return [][]byte{key}, nil
}
