// Command server runs the GraphQL authentication API.
//
// With no environment it listens on :8080 and keeps its data in ./data (an SQLite file and a
// generated Ed25519 signing key); DATABASE_URL=postgres://… selects Postgres. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"gqlauth/app"
	"gqlauth/auth"
	"gqlauth/config"
	"gqlauth/observe"
	"gqlauth/password"
)

func main() {
	if err := run(os.Stderr); err != nil {
		slog.New(slog.NewTextHandler(os.Stderr, nil)).Error("server stopped", "err", err)
		os.Exit(1)
	}
}

// run serves until SIGINT or SIGTERM, then shuts down gracefully: the listener closes at once (new
// connections are refused; those already waiting in its accept queue are still served, see
// drainingListener), in-flight requests get SHUTDOWN_TIMEOUT to finish, then background work stops
// and the database closes.
func run(logOut io.Writer) error {
	cfg, err := config.Load()
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := observe.NewLogger(logOut, cfg.LogFormat, cfg.LogLevel)
	setMemoryLimit(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a, err := openApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	// Start-up computed one argon2id hash (the dummy for unknown e-mails): hand its 19 MiB back to the
	// OS now rather than whenever the scavenger gets to it, so an idle server stays small.
	debug.FreeOSMemory()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := a.Server(cfg.Addr)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(&drainingListener{TCPListener: ln.(*net.TCPListener)}) }()
	log.Info("listening", "addr", ln.Addr().String(), "env", cfg.Env, "database", a.Store.Dialect(), "alg", a.Tokens.Algorithm())
	if !cfg.Production() {
		log.Info("GraphQL IDE at http://localhost" + portOf(ln.Addr().String()) + "/")
	}

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stop() // a second signal now kills the process the default way
	log.Info("shutting down: finishing in-flight requests", "timeout", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if err == nil {
		// Serve returns once it has taken the connections the listener drained from the accept
		// queue; Shutdown again waits for their requests too.
		select {
		case <-errc:
		case <-shutdownCtx.Done():
		}
		err = srv.Shutdown(shutdownCtx)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = srv.Close()
		return fmt.Errorf("shutdown: in-flight requests did not finish within %s: %w", cfg.ShutdownTimeout, err)
	}
	log.Info("stopped")
	return nil
}

// openApp builds the app, waiting up to DB_WAIT_TIMEOUT for a database that cannot be reached yet
// (started at the same time, or restarting), with one warning and retries every 0.25 s growing to
// 2 s; a signal ends the wait. Other errors (bad credentials, a broken schema) fail at once.
func openApp(ctx context.Context, cfg *config.Config, log *slog.Logger) (*app.App, error) {
	deadline := time.Now().Add(cfg.DBWaitTimeout)
	backoff := 250 * time.Millisecond
	for waited := false; ; waited = true {
		a, err := app.New(ctx, cfg, app.Options{Logger: log})
		if err == nil {
			if waited {
				log.Info("database reachable; starting")
			}
			return a, nil
		}
		if !errors.Is(err, auth.ErrUnavailable) || time.Now().Add(backoff).After(deadline) {
			if waited {
				return nil, fmt.Errorf("database still unreachable after DB_WAIT_TIMEOUT=%s: %w", cfg.DBWaitTimeout, err)
			}
			return nil, err
		}
		if !waited {
			log.Warn("database unreachable; waiting for it", "timeout", cfg.DBWaitTimeout.String(), "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stopped while waiting for the database: %w", err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// setMemoryLimit gives the Go runtime a soft memory limit unless GOMEMLIMIT is set. Every argon2id
// hash allocates Memory KiB (19 MiB) that is garbage as soon as it is done; without a limit the
// collector lets the heap grow to twice its live size first, so a login flood would hold far more memory
// than the PASSWORD_HASH_CONCURRENCY hashes in flight need. The limit is soft: past it the collector
// works harder, it never fails an allocation.
func setMemoryLimit(cfg *config.Config) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	// High enough that the collector stays out of the way at the default concurrency (a lower limit
	// measurably slows logins), low enough to cap a flood: 80 MiB plus one hash per hashing slot.
	perHash := int64(password.Default.Memory) << 10
	debug.SetMemoryLimit(80<<20 + int64(cfg.PasswordHashConcurrency)*perHash)
}

func portOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[i:]
		}
	}
	return ""
}
