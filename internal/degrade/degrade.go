// Package degrade follows whether a component runs on its fallback because a dependency fails, and
// reports only the changes: one warning when the component degrades, one info line when it recovers,
// and a callback for each (the gqlauth_dependency_degraded metric). A burst of failures during an
// outage therefore makes one log line, not one per request.
//
// ratelimit.Fallback (Redis counting → in-memory counting) and fanout.Redis (Redis pub/sub →
// database polling) share it. It lives under internal/ because it is a detail of those adapters, and
// imports nothing of ours, so any package can use it without an import cycle.
package degrade

import (
	"log/slog"
	"sync"
)

// Tracker is the healthy/degraded state of one component. It starts healthy. It is safe for
// concurrent use.
type Tracker struct {
	log                       *slog.Logger
	degradedMsg, recoveredMsg string

	mu       sync.Mutex
	degraded bool
}

// NewTracker returns a healthy Tracker that logs degradedMsg at warn when the component degrades and
// recoveredMsg at info when it recovers. A nil log means slog.Default().
func NewTracker(log *slog.Logger, degradedMsg, recoveredMsg string) *Tracker {
	if log == nil {
		log = slog.Default()
	}
	return &Tracker{log: log, degradedMsg: degradedMsg, recoveredMsg: recoveredMsg}
}

// Degraded reports whether the component is degraded.
func (t *Tracker) Degraded() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.degraded
}

// Fail records that the dependency failed. When that degrades a healthy component, and only then, it
// calls onChange(true) (when not nil), logs the degraded message at warn with args (slog key-value
// pairs, such as "err", err) and returns true.
func (t *Tracker) Fail(onChange func(degraded bool), args ...any) bool {
	return t.set(true, onChange, args)
}

// Recover records that the dependency works. When that ends a degradation, and only then, it calls
// onChange(false) (when not nil), logs the recovered message at info with args and returns true.
func (t *Tracker) Recover(onChange func(degraded bool), args ...any) bool {
	return t.set(false, onChange, args)
}

// set records the state and reports only its changes. The callback takes the caller's function rather
// than one fixed at construction because the components expose it as a field (OnChange) that is set
// after they are built.
func (t *Tracker) set(degraded bool, onChange func(bool), args []any) bool {
	t.mu.Lock()
	changed := t.degraded != degraded
	t.degraded = degraded
	if changed && onChange != nil {
		onChange(degraded) // under the lock, so two reports cannot overtake each other
	}
	t.mu.Unlock()
	if !changed {
		return false
	}
	// Logged outside the lock: a slow log writer must not hold up the component's callers.
	if degraded {
		t.log.Warn(t.degradedMsg, args...)
	} else {
		t.log.Info(t.recoveredMsg, args...)
	}
	return true
}
