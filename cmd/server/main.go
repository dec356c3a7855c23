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
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"gqlauth/app"
	"gqlauth/auth"
	"gqlauth/config"
	"gqlauth/observe"
	"gqlauth/password"
)

func main() {
	// The first SIGINT or SIGTERM starts a graceful shutdown; a second one kills the process. The
	// signals' default action is restored *before* the shutdown begins (signal.NotifyContext would
	// restore it only after cancelling, from another goroutine): whoever sees the shutdown start,
	// /readyz turning 503 say, can rely on a second signal killing the process.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		signal.Stop(sigs)
		cancel()
	}()
	if err := run(ctx, os.Getenv, os.Stdout, os.Stderr); err != nil {
		slog.New(slog.NewTextHandler(os.Stderr, nil)).Error("server stopped", "err", err)
		os.Exit(1)
	}
}

// run is the server: configuration (through getenv) → logger (on stderr) → app.New, waiting up to
// DB_WAIT_TIMEOUT for the database → app.Run until ctx ends, then a graceful shutdown (see
// app.App.Serve) → Close. The server writes nothing to stdout: its only output is its log.
func run(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.LoadFrom(func(key string) (string, bool) { v := getenv(key); return v, v != "" })
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := observe.NewLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	// go-redis has one logger per process: set it here, in the process's entry point, beside the
	// memory limit, rather than in app.New, which must not change process-wide state (and whose
	// first caller in a test binary would otherwise win).
	redis.SetLogger(redisLog{log})
	onSockets := setMemoryLimit(cfg)

	a, err := openApp(ctx, cfg, log, onSockets)
	if err != nil {
		return err
	}
	defer a.Close()
	// Start-up computed one argon2id hash (the dummy for unknown e-mails): hand its 19 MiB back to the
	// OS now rather than whenever the scavenger gets to it, so an idle server stays small.
	debug.FreeOSMemory()
	return a.Run(ctx)
}

// redisLog sends go-redis's own messages (one per failed dial while Redis is down) to the debug level:
// the limiter and the fan-out each log an outage once, at warn, and again when it ends.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

// openApp builds the app, waiting up to DB_WAIT_TIMEOUT for a database that cannot be reached yet
// (started at the same time, or restarting), with one warning and retries every 0.25 s growing to
// 2 s; a signal ends the wait. Other errors (bad credentials, a broken schema) fail at once.
func openApp(ctx context.Context, cfg *config.Config, log *slog.Logger, onSockets func(int)) (*app.App, error) {
	deadline := time.Now().Add(cfg.DBWaitTimeout)
	backoff := 250 * time.Millisecond
	for waited := false; ; waited = true {
		a, err := app.New(ctx, cfg, app.Options{Logger: log, OnSockets: onSockets})
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
//
// Open WebSockets are live memory that stays (about 10 KiB each: docs/BENCHMARKS.md), so the limit
// grows with them: a fixed limit that the sockets' live heap reached would make the collector run
// without pause (measured: 90 % of a core at idle with 10,000 sockets under the fixed 118 MiB limit).
// The returned function, given to app.Options.OnSockets, moves the limit in steps of 256 sockets; it
// is nil when GOMEMLIMIT is set (the operator's limit stands).
func setMemoryLimit(cfg *config.Config) func(open int) {
	if cfg.GoMemLimit != "" {
		return nil
	}
	// High enough that the collector stays out of the way at the default concurrency (a lower limit
	// measurably slows logins), low enough to cap a flood: 80 MiB plus one hash per hashing slot.
	perHash := int64(password.Default.Memory) << 10
	m := &memoryLimit{base: 80<<20 + int64(cfg.PasswordHashConcurrency)*perHash, step: -1}
	m.set(0)
	return m.set
}

// memoryLimit is the soft memory limit: a base, plus socketBudget per open WebSocket counted in steps
// of socketStep (so that sockets opening and closing near a step do not call the runtime each time).
type memoryLimit struct {
	base int64
	mu   sync.Mutex
	step int64 // the step the limit was last set for; -1 before the first set
}

const (
	socketStep = 256
	// socketBudget is about twice a socket's live memory (heap and stacks): the collector's own target
	// (GOGC=100) is twice the live heap, so the limit stays above it and the collector paces as usual.
	socketBudget = 24 << 10
)

func (m *memoryLimit) set(open int) {
	step := (int64(open) + socketStep - 1) / socketStep
	m.mu.Lock()
	defer m.mu.Unlock()
	if step == m.step {
		return
	}
	m.step = step
	debug.SetMemoryLimit(m.base + step*socketStep*socketBudget)
}
