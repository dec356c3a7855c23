package ratelimit

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"gqlauth/internal/degrade"
)

// Compile-time checks that every implementation satisfies Limiter.
var (
	_ Limiter = (*Memory)(nil)
	_ Limiter = (*Redis)(nil)
	_ Limiter = (*Fallback)(nil)
)

// defaultRetryInterval is how long Fallback waits after a primary failure
// before trying the primary again.
const defaultRetryInterval = 5 * time.Second

// Fallback uses primary (normally Redis) and, when a primary call fails,
// answers that call from secondary (normally Memory) instead of returning
// the error, so a Redis outage never fails a login; protection merely
// degrades to per-replica counting.
//
// It logs one Warn line when it switches to the secondary and one Info line
// when the primary works again, not one per request, so an outage does not
// flood the logs. After a failure it does not try the primary again for
// RetryInterval; meanwhile calls go straight to the secondary, so requests
// do not each pay a connection timeout against a dead Redis. Once the
// interval has passed a single call probes the primary while the others keep
// using the secondary.
//
// Counts are not copied between the two limiters: an event counted in one
// and undone or reset while the other is in use is not taken back, and an
// attacker gets at most one fresh window's worth of attempts per switch.
// Blocks are not copied either: a block set in one limiter is not seen while
// the other is in use.
type Fallback struct {
	// RetryInterval is how long to use only the secondary after a primary
	// failure; NewFallback sets 5s and <= 0 also means 5s. Set it before
	// first use.
	RetryInterval time.Duration
	// OnChange, if set, is called with true when calls switch to the secondary and with false when
	// the primary works again (for a metric). Set it before first use.
	OnChange func(degraded bool)

	primary, secondary Limiter
	log                *slog.Logger
	now                func() time.Time // replaced in tests
	health             *degrade.Tracker // degraded: calls go to the secondary

	mu      sync.Mutex
	lastTry time.Time // when the primary last failed or was last probed
}

// NewFallback returns a Fallback over primary and secondary that logs state
// changes to log; a nil log means slog.Default().
func NewFallback(primary, secondary Limiter, log *slog.Logger) *Fallback {
	if log == nil {
		log = slog.Default()
	}
	return &Fallback{
		RetryInterval: defaultRetryInterval,
		primary:       primary,
		secondary:     secondary,
		log:           log,
		now:           time.Now,
		health: degrade.NewTracker(log,
			"ratelimit: primary limiter failed; using in-memory fallback",
			"ratelimit: primary limiter recovered; no longer using in-memory fallback"),
	}
}

// Degraded reports whether calls are currently answered by the secondary
// because the primary failed, e.g. for a health or metrics endpoint.
func (f *Fallback) Degraded() bool { return f.health.Degraded() }

// Hit implements Limiter.
func (f *Fallback) Hit(ctx context.Context, key string, r Rate) (Result, error) {
	return call(ctx, f, "hit", func(l Limiter) (Result, error) { return l.Hit(ctx, key, r) })
}

// Undo implements Limiter.
func (f *Fallback) Undo(ctx context.Context, key string) error {
	_, err := call(ctx, f, "undo", func(l Limiter) (struct{}, error) { return struct{}{}, l.Undo(ctx, key) })
	return err
}

// Reset implements Limiter.
func (f *Fallback) Reset(ctx context.Context, key string) error {
	_, err := call(ctx, f, "reset", func(l Limiter) (struct{}, error) { return struct{}{}, l.Reset(ctx, key) })
	return err
}

// Block implements Limiter.
func (f *Fallback) Block(ctx context.Context, key string, d time.Duration) error {
	_, err := call(ctx, f, "block", func(l Limiter) (struct{}, error) { return struct{}{}, l.Block(ctx, key, d) })
	return err
}

// Blocked implements Limiter.
func (f *Fallback) Blocked(ctx context.Context, key string) (time.Duration, error) {
	return call(ctx, f, "blocked", func(l Limiter) (time.Duration, error) { return l.Blocked(ctx, key) })
}

// call runs op on the primary when it is healthy or due for a probe, and on
// the secondary otherwise or when the primary fails.
func call[T any](ctx context.Context, f *Fallback, name string, op func(Limiter) (T, error)) (T, error) {
	usePrimary, probe := f.route()
	if !usePrimary {
		return op(f.secondary)
	}
	v, err := op(f.primary)
	if err == nil {
		f.succeeded(probe)
		return v, nil
	}
	// A caller that gave up (client disconnected) says nothing about the
	// primary's health. Deadlines still count: a hanging Redis shows up as
	// exactly that.
	if !(errors.Is(err, context.Canceled) && ctx.Err() != nil) {
		f.failed(name, err)
	}
	return op(f.secondary)
}

func (f *Fallback) retryInterval() time.Duration {
	if f.RetryInterval <= 0 {
		return defaultRetryInterval
	}
	return f.RetryInterval
}

// route decides where the next call goes. While degraded, the first call
// after RetryInterval claims the probe by moving lastTry forward, so
// concurrent calls do not all pile onto a primary that may still be down.
func (f *Fallback) route() (usePrimary, probe bool) {
	if !f.health.Degraded() {
		return true, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if now.Sub(f.lastTry) < f.retryInterval() {
		return false, false
	}
	f.lastTry = now
	return true, true
}

// succeeded records a primary success. Only a probe may end degradation: a
// call that was already in flight when the primary failed can succeed late,
// and must not make the next calls skip the retry interval.
func (f *Fallback) succeeded(probe bool) {
	if probe {
		f.health.Recover(f.OnChange)
	}
}

// failed records a primary failure; the tracker logs only the
// healthy->degraded transition, so a burst of failing calls produces one line.
// lastTry is set before the state changes, so a call that sees the
// degradation also sees the retry interval start.
func (f *Fallback) failed(op string, err error) {
	f.mu.Lock()
	f.lastTry = f.now()
	f.mu.Unlock()
	f.health.Fail(f.OnChange, "op", op, "error", err, "retry_interval", f.retryInterval())
}
