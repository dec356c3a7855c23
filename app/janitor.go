package app

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"gqlauth/store"
)

// janitorBatch is how many rows one janitor statement deletes at most, so that no statement holds
// locks for long.
const janitorBatch = 500

// runJanitor deletes expired and long-revoked sessions and expired refresh tokens every interval
// (JANITOR_INTERVAL) until ctx ends; rows are kept for retention (JANITOR_RETENTION) after they expire
// or are revoked. Each wait adds a random jitter of up to a tenth of the interval (at most a minute),
// so replicas started together do not purge at the same instant; running together is safe anyway.
// An interval of 0 disables it.
func runJanitor(ctx context.Context, db *store.DB, interval, retention time.Duration, log *slog.Logger) {
	if interval <= 0 {
		return
	}
	timer := time.NewTimer(interval + jitter(interval))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		janitorPass(ctx, db, retention, log)
		timer.Reset(interval + jitter(interval))
	}
}

// janitorPass runs one purge and logs what it did.
func janitorPass(ctx context.Context, db *store.DB, retention time.Duration, log *slog.Logger) {
	start := time.Now()
	n, err := db.Purge(ctx, start.Add(-retention), janitorBatch)
	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down: the purge was interrupted, not broken. The next start carries on.
	case err != nil:
		log.Warn("janitor: purge failed", "err", err, "deleted", n)
	case n > 0:
		log.Info("janitor: purged expired and revoked sessions, refresh tokens, e-mail tokens and sent mail", "deleted", n,
			"retention", retention.String(), "took", time.Since(start).Round(time.Millisecond).String())
	}
}

func jitter(interval time.Duration) time.Duration {
	span := min(interval/10, time.Minute)
	if span <= 0 {
		return 0
	}
	return rand.N(span)
}
