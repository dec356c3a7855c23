package observe

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Kinds of overrun reported by Watch.
const (
	OverrunSlow      = "slow"      // still running after the slow threshold
	OverrunAbandoned = "abandoned" // still running a while after its client went away
)

// abandonGrace is how long a request may keep running after its client went away before Watch
// reports it: handlers notice the cancelled context within milliseconds when they wait on the
// database or the password-hashing queue; only work that ignores it lasts longer.
const abandonGrace = time.Second

// Watch makes a request that runs too long visible while it runs: the access log and the latency
// histogram see a request only when it ends, so one that never ends (a CPU loop, a stuck dependency)
// would otherwise leave no trace. It logs one warning when a request is still running after slow, and
// one when it is still running abandonGrace after its client went away; each also calls onOverrun
// with the kind (OverrunSlow or OverrunAbandoned), for a metric. onOverrun may be nil. The lines carry
// the method, path, client address, elapsed time and (through the context) the request id.
func Watch(log *slog.Logger, slow time.Duration, onOverrun func(kind string), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		start := time.Now()
		// Read now: the mux and handlers may change the request while the timers run.
		attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("ip", peerIP(r.RemoteAddr))}
		var done atomic.Bool
		report := func(kind, msg string) {
			if done.Load() {
				return
			}
			if onOverrun != nil {
				onOverrun(kind)
			}
			log.LogAttrs(ctx, slog.LevelWarn, msg, append(attrs, slog.Duration("elapsed", time.Since(start).Round(time.Millisecond)))...)
		}
		slowTimer := time.AfterFunc(slow, func() { report(OverrunSlow, "request still running") })
		var mu sync.Mutex
		var goneTimer *time.Timer
		stopWatchingClient := context.AfterFunc(ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			if !done.Load() {
				goneTimer = time.AfterFunc(abandonGrace, func() { report(OverrunAbandoned, "request still running after its client went away") })
			}
		})

		next.ServeHTTP(w, r)

		done.Store(true)
		slowTimer.Stop()
		stopWatchingClient()
		mu.Lock()
		if goneTimer != nil {
			goneTimer.Stop()
		}
		mu.Unlock()
	})
}
