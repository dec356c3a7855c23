package auth

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// revocations is this instance's view of which sessions are revoked, so that checking an access
// token costs a map lookup instead of a database round trip. Revocations made here are added as they
// commit (immediate on this instance); revocations made by other instances sharing the database are
// picked up by polling RevokedSince every interval. When the last successful poll is older than
// interval+1s (the database is unreachable, the poller has not started), the cache is not trusted and
// callers ask the database directly, so a stalled poller can never keep a revoked session alive.
type revocations struct {
	store    Store
	fanout   Broadcaster // nil without Redis
	now      func() time.Time
	interval time.Duration
	// keep is how long an entry matters: an access token issued before the revocation expires at
	// most this long after it.
	keep time.Duration

	mu       sync.RWMutex
	revoked  map[string]time.Time // session id → revoked at
	lastSync time.Time            // when the last successful poll started
	cursor   time.Time            // poll from here (minus overlap) next time
	// anonymous holds the revoked sessions whose account is not known yet: broadcast by an instance
	// of an older version, which sends no user id. The poll learns it, and tells onRevoked again.
	anonymous map[string]struct{}

	// onRevoked, if set, is told of sessions seen revoked for the first time (made here, broadcast or
	// polled), all of the account userID ("" when not known yet), outside the lock: the live session
	// events (live.go). It must not block.
	onRevoked func(userID string, ids []string, at time.Time)
}

// pollOverlap re-reads recent revocations on every poll: it covers transactions that committed after
// a poll with a revoked_at earlier than that poll (at most RevocationCommitBudget later: the store
// reads the time inside the transaction and rolls back past the budget), and 5 s of clock skew
// between instances.
const pollOverlap = RevocationCommitBudget + 5*time.Second

func newRevocations(store Store, fanout Broadcaster, now func() time.Time, interval, keep time.Duration) *revocations {
	return &revocations{store: store, fanout: fanout, now: now, interval: interval, keep: keep, revoked: map[string]time.Time{}, anonymous: map[string]struct{}{}}
}

// add records sessions revoked by this instance, and tells the other instances at once when a
// broadcaster is configured. Polling remains the guarantee: a lost broadcast costs only latency.
func (r *revocations) add(ctx context.Context, userID string, ids []string, at time.Time, log *slog.Logger) {
	if len(ids) == 0 {
		return
	}
	r.record(userID, ids, at)
	publish(ctx, r.fanout, userID, ids, log)
}

// publishTimeout bounds how long a revocation waits for its broadcast: the broadcast only saves
// latency, so a slow Redis must not hold up the request (or authctl) that revoked.
const publishTimeout = 250 * time.Millisecond

// publish tells the other instances about revoked sessions at once when b is not nil: the one path
// of every revocation, the Service's and the Admin's. Polling remains the guarantee: a lost broadcast
// costs only latency.
func publish(ctx context.Context, b Broadcaster, userID string, ids []string, log *slog.Logger) {
	if b == nil || len(ids) == 0 {
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if err := b.Publish(pctx, Broadcast{UserID: userID, SessionIDs: ids}); err != nil {
		// Debug: the broadcaster itself logs when it starts and stops failing.
		log.DebugContext(ctx, "revocation broadcast failed; other instances will see it by polling", "err", err)
	}
}

// record marks sessions of the account userID ("" when not known) revoked in the local set.
func (r *revocations) record(userID string, ids []string, at time.Time) {
	var fresh []string
	r.mu.Lock()
	for _, id := range ids {
		_, seen := r.revoked[id]
		r.revoked[id] = at
		if !seen {
			fresh = append(fresh, id)
			if userID == "" {
				r.anonymous[id] = struct{}{}
			}
		} else if _, anon := r.anonymous[id]; anon && userID != "" {
			// Broadcast without its account first, known now: the account's other watches hear of it.
			delete(r.anonymous, id)
			fresh = append(fresh, id)
		}
	}
	r.mu.Unlock()
	r.notify(userID, fresh, at)
}

func (r *revocations) notify(userID string, ids []string, at time.Time) {
	if r.onRevoked != nil && len(ids) > 0 {
		r.onRevoked(userID, ids, at)
	}
}

// isRevoked answers from the cache when it is fresh, and from the database otherwise.
func (r *revocations) isRevoked(ctx context.Context, sessionID string) (bool, error) {
	r.mu.RLock()
	_, revoked := r.revoked[sessionID]
	fresh := r.now().Sub(r.lastSync) <= r.interval+time.Second
	r.mu.RUnlock()
	if revoked || fresh {
		return revoked, nil
	}
	return r.store.SessionRevoked(ctx, sessionID)
}

// sync polls the database once.
func (r *revocations) sync(ctx context.Context) error {
	start := r.now()
	r.mu.RLock()
	since := r.cursor
	r.mu.RUnlock()
	if since.IsZero() {
		since = start.Add(-r.keep)
	} else {
		since = since.Add(-pollOverlap)
	}
	revs, err := r.store.RevokedSince(ctx, since)
	if err != nil {
		return err
	}
	fresh := map[string][]string{} // by account
	r.mu.Lock()
	for _, rv := range revs {
		_, seen := r.revoked[rv.ID]
		_, anon := r.anonymous[rv.ID]
		if !seen || anon {
			fresh[rv.UserID] = append(fresh[rv.UserID], rv.ID)
			delete(r.anonymous, rv.ID)
		}
		r.revoked[rv.ID] = rv.RevokedAt
	}
	for id, at := range r.revoked {
		if start.Sub(at) > r.keep+pollOverlap {
			delete(r.revoked, id)
			delete(r.anonymous, id)
		}
	}
	r.cursor, r.lastSync = start, start
	r.mu.Unlock()
	for userID, ids := range fresh {
		r.notify(userID, ids, start)
	}
	return nil
}

// run polls until ctx ends.
func (r *revocations) run(ctx context.Context, log *slog.Logger) {
	pollEvery(ctx, r.interval, r.sync, log, "revocation poll", "checking sessions in the database until it recovers")
}

// pollEvery calls poll every interval until ctx ends, logging the first failure of an outage (what
// failed, and what that means meanwhile) and the recovery, not every failed poll.
func pollEvery(ctx context.Context, interval time.Duration, poll func(context.Context) error, log *slog.Logger, what, meanwhile string) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := poll(ctx)
			switch {
			case err != nil && ctx.Err() == nil && !failing:
				failing = true
				log.Warn(what+" failed; "+meanwhile, "err", err)
			case err == nil && failing:
				failing = false
				log.Info(what + " works again")
			}
		}
	}
}
