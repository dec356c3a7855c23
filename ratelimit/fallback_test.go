package ratelimit

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var errDown = errors.New("primary down")

// flakyLimiter wraps a Limiter and fails every call while fail is set,
// standing in for a Redis outage.
type flakyLimiter struct {
	inner Limiter
	fail  atomic.Bool
	calls atomic.Int64
}

func (f *flakyLimiter) Hit(ctx context.Context, key string, r Rate) (Result, error) {
	f.calls.Add(1)
	if f.fail.Load() {
		return Result{}, errDown
	}
	return f.inner.Hit(ctx, key, r)
}

func (f *flakyLimiter) Undo(ctx context.Context, key string) error {
	f.calls.Add(1)
	if f.fail.Load() {
		return errDown
	}
	return f.inner.Undo(ctx, key)
}

func (f *flakyLimiter) Reset(ctx context.Context, key string) error {
	f.calls.Add(1)
	if f.fail.Load() {
		return errDown
	}
	return f.inner.Reset(ctx, key)
}

func (f *flakyLimiter) Block(ctx context.Context, key string, d time.Duration) error {
	f.calls.Add(1)
	if f.fail.Load() {
		return errDown
	}
	return f.inner.Block(ctx, key, d)
}

func (f *flakyLimiter) Blocked(ctx context.Context, key string) (time.Duration, error) {
	f.calls.Add(1)
	if f.fail.Load() {
		return 0, errDown
	}
	return f.inner.Blocked(ctx, key)
}

// captureHandler records log records for assertions.
type captureHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

func (h *captureHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *captureHandler) WithGroup(string) slog.Handler      { return h }

func (h *captureHandler) count(level slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.records {
		if r.Level == level {
			n++
		}
	}
	return n
}

type fallbackFixture struct {
	f         *Fallback
	primary   *flakyLimiter
	secondary *Memory
	clk       *fakeClock
	logs      *captureHandler
}

func newFallbackFixture() fallbackFixture {
	clk := newFakeClock()
	primary := &flakyLimiter{inner: NewMemory(clk.Now)}
	secondary := NewMemory(clk.Now)
	logs := &captureHandler{}
	f := NewFallback(primary, secondary, slog.New(logs))
	f.now = clk.Now
	return fallbackFixture{f: f, primary: primary, secondary: secondary, clk: clk, logs: logs}
}

var fbRate = Rate{Limit: 100, Window: time.Hour}

func TestFallbackDefaults(t *testing.T) {
	t.Parallel()
	f := NewFallback(NewMemory(nil), NewMemory(nil), nil)
	if f.RetryInterval != 5*time.Second {
		t.Fatalf("RetryInterval = %v, want 5s", f.RetryInterval)
	}
	if f.log == nil {
		t.Fatal("nil log not replaced by slog.Default()")
	}
	if f.Degraded() {
		t.Fatal("new Fallback is degraded")
	}
}

func TestFallbackSwitchAndRecover(t *testing.T) {
	t.Parallel()
	x := newFallbackFixture()
	f, ctx := x.f, t.Context()
	f.RetryInterval = time.Second

	// Healthy: the primary answers.
	wantResult(t, mustHit(t, f, "k", fbRate), 1, true)
	wantResult(t, mustHit(t, f, "k", fbRate), 2, true)
	if x.primary.calls.Load() != 2 || memoryLen(x.secondary) != 0 {
		t.Fatal("healthy calls did not go to the primary only")
	}

	// Outage: the failing call is answered by the secondary, without error.
	x.primary.fail.Store(true)
	wantResult(t, mustHit(t, f, "k", fbRate), 1, true)
	if !f.Degraded() {
		t.Fatal("Degraded() = false after a primary failure")
	}
	calls := x.primary.calls.Load()

	// Within RetryInterval every call goes straight to the secondary.
	x.clk.Advance(f.RetryInterval - time.Millisecond)
	wantResult(t, mustHit(t, f, "k", fbRate), 2, true)
	if err := f.Undo(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := f.Reset(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if got := x.primary.calls.Load(); got != calls {
		t.Fatalf("primary called %d times during RetryInterval", got-calls)
	}

	// After RetryInterval one call probes the still-failing primary and
	// falls back again, restarting the interval.
	x.clk.Advance(time.Millisecond)
	wantResult(t, mustHit(t, f, "k", fbRate), 2, true)
	if got := x.primary.calls.Load(); got != calls+1 {
		t.Fatalf("primary probed %d times, want 1", got-calls)
	}
	if !f.Degraded() {
		t.Fatal("Degraded() = false after a failed probe")
	}
	mustHit(t, f, "k", fbRate)
	if got := x.primary.calls.Load(); got != calls+1 {
		t.Fatal("primary called again right after a failed probe")
	}

	// Recovery: once the primary works and the interval has passed, the
	// next call uses it and degradation ends.
	x.primary.fail.Store(false)
	x.clk.Advance(f.RetryInterval)
	wantResult(t, mustHit(t, f, "k", fbRate), 3, true) // primary's own count
	if f.Degraded() {
		t.Fatal("Degraded() = true after the primary recovered")
	}
	calls = x.primary.calls.Load()
	if err := f.Undo(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := f.Reset(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if got := x.primary.calls.Load(); got != calls+2 {
		t.Fatal("Undo/Reset did not go to the recovered primary")
	}

	if w, i := x.logs.count(slog.LevelWarn), x.logs.count(slog.LevelInfo); w != 1 || i != 1 {
		t.Fatalf("logged %d Warn and %d Info lines, want 1 and 1", w, i)
	}
}

func TestFallbackOpsUseSecondary(t *testing.T) {
	t.Parallel()
	ops := []struct {
		name string
		call func(ctx context.Context, f *Fallback) error
	}{
		{"Hit", func(ctx context.Context, f *Fallback) error { _, err := f.Hit(ctx, "k", fbRate); return err }},
		{"Undo", func(ctx context.Context, f *Fallback) error { return f.Undo(ctx, "k") }},
		{"Reset", func(ctx context.Context, f *Fallback) error { return f.Reset(ctx, "k") }},
		{"Block", func(ctx context.Context, f *Fallback) error { return f.Block(ctx, "k", time.Minute) }},
		{"Blocked", func(ctx context.Context, f *Fallback) error { _, err := f.Blocked(ctx, "k"); return err }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			x := newFallbackFixture()
			x.primary.fail.Store(true)
			if err := op.call(t.Context(), x.f); err != nil {
				t.Fatalf("%s returned the primary's error: %v", op.name, err)
			}
			if !x.f.Degraded() {
				t.Fatalf("%s failure did not degrade", op.name)
			}
		})
	}
}

// Block and Blocked follow the same routing as Hit: the primary while it
// works, the secondary when it fails (on the failing call itself and while
// degraded).
func TestFallbackBlockRouting(t *testing.T) {
	t.Parallel()
	x := newFallbackFixture()
	f, ctx := x.f, t.Context()
	blocked := func(l Limiter, key string) time.Duration {
		t.Helper()
		return mustBlocked(t, l, key)
	}

	// Healthy: the block is set in and read from the primary.
	mustBlock(t, f, "healthy", time.Minute)
	if p, s := blocked(x.primary.inner, "healthy"), blocked(x.secondary, "healthy"); p != time.Minute || s != 0 {
		t.Fatalf("healthy Block: primary %v, secondary %v; want 1m, 0", p, s)
	}
	if d := blocked(f, "healthy"); d != time.Minute {
		t.Fatalf("healthy Blocked = %v, want 1m from the primary", d)
	}

	// Outage: the failing Blocked is answered by the secondary, without
	// error...
	if err := x.secondary.Block(ctx, "k", time.Hour); err != nil {
		t.Fatal(err)
	}
	x.primary.fail.Store(true)
	if d, err := f.Blocked(ctx, "k"); err != nil || d != time.Hour {
		t.Fatalf("Blocked with a failing primary = %v, %v; want 1h from the secondary", d, err)
	}
	if !f.Degraded() {
		t.Fatal("failing Blocked did not degrade")
	}
	// ...and while degraded Block goes straight to the secondary.
	calls := x.primary.calls.Load()
	if err := f.Block(ctx, "new", time.Minute); err != nil {
		t.Fatalf("Block while degraded: %v", err)
	}
	if p, s := blocked(x.primary.inner, "new"), blocked(x.secondary, "new"); p != 0 || s != time.Minute {
		t.Fatalf("degraded Block: primary %v, secondary %v; want 0, 1m", p, s)
	}
	// Blocks are not copied: the primary's block is not seen meanwhile.
	if d := blocked(f, "healthy"); d != 0 {
		t.Fatalf("degraded Blocked = %v, want 0 from the secondary", d)
	}
	if got := x.primary.calls.Load(); got != calls {
		t.Fatalf("primary called %d times while degraded", got-calls)
	}
}

// TestFallbackConformance runs the shared suite through a Fallback, both
// with a working primary and with one that fails every call.
func TestFallbackConformance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		primaryDown bool
	}{
		{"healthy", false},
		{"primary down", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runConformance(t, func(t *testing.T) fixture {
				x := newFallbackFixture()
				x.primary.fail.Store(tc.primaryDown)
				return fixture{
					l:       x.f,
					advance: func(_ *testing.T, _ time.Time, d time.Duration) { x.clk.Advance(d) },
					stored: func(*testing.T) []string {
						return append(memoryKeys(x.primary.inner.(*Memory)), memoryKeys(x.secondary)...)
					},
					shortWindow: time.Second,
				}
			})
		})
	}
}

func TestFallbackOneWarnPerBurst(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		concurrent bool
	}{
		{"sequential", false},
		{"concurrent", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := newFallbackFixture()
			x.primary.fail.Store(true)
			var wg sync.WaitGroup
			var failures atomic.Int64
			for range 100 {
				call := func() {
					if _, err := x.f.Hit(context.Background(), "k", fbRate); err != nil {
						failures.Add(1)
					}
				}
				if tc.concurrent {
					wg.Go(call)
				} else {
					call()
				}
			}
			wg.Wait()
			if n := failures.Load(); n != 0 {
				t.Fatalf("%d calls failed", n)
			}
			if n := x.logs.count(slog.LevelWarn); n != 1 {
				t.Fatalf("%d Warn lines for a burst of 100 failures, want 1", n)
			}
			if !x.f.Degraded() {
				t.Fatal("not degraded")
			}
			// All 100 hits were counted by the secondary.
			if res := mustHit(t, x.f, "k", fbRate); res.Count != 101 {
				t.Fatalf("secondary count = %d, want 101", res.Count)
			}
		})
	}
}

// A caller giving up is not a primary outage.
func TestFallbackCanceledContextDoesNotDegrade(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	primary := limiterFunc(func(ctx context.Context) error { return ctx.Err() })
	logs := &captureHandler{}
	f := NewFallback(primary, NewMemory(clk.Now), slog.New(logs))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res, err := f.Hit(ctx, "k", fbRate)
	if err != nil || !res.Allowed {
		t.Fatalf("Hit = %+v, %v", res, err)
	}
	if f.Degraded() || logs.count(slog.LevelWarn) != 0 {
		t.Fatal("cancelled caller context degraded the Fallback")
	}
}

// limiterFunc is a test Limiter whose every call returns fn(ctx).
type limiterFunc func(ctx context.Context) error

func (fn limiterFunc) Hit(ctx context.Context, _ string, _ Rate) (Result, error) {
	return Result{Allowed: true}, fn(ctx)
}
func (fn limiterFunc) Undo(ctx context.Context, _ string) error  { return fn(ctx) }
func (fn limiterFunc) Reset(ctx context.Context, _ string) error { return fn(ctx) }
func (fn limiterFunc) Block(ctx context.Context, _ string, _ time.Duration) error {
	return fn(ctx)
}
func (fn limiterFunc) Blocked(ctx context.Context, _ string) (time.Duration, error) {
	return 0, fn(ctx)
}

// A call that was in flight when the primary failed and succeeds late must
// not end degradation early; only a probe after RetryInterval may.
func TestFallbackLateSuccessDoesNotRecover(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	release := make(chan struct{})
	started := make(chan struct{})
	var slowOnce sync.Once
	primary := limiterFunc(func(ctx context.Context) error {
		if v, _ := ctx.Value(slowKey{}).(bool); v {
			slowOnce.Do(func() { close(started) })
			<-release
			return nil
		}
		return errDown
	})
	f := NewFallback(primary, NewMemory(clk.Now), slog.New(&captureHandler{}))
	f.now = clk.Now

	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = f.Hit(context.WithValue(context.Background(), slowKey{}, true), "k", fbRate)
	}()
	<-started
	mustHit(t, f, "k", fbRate) // fails on the primary: degraded
	close(release)
	<-done
	if !f.Degraded() {
		t.Fatal("late success of an in-flight call ended degradation")
	}
}

type slowKey struct{}
