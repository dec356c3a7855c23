// Package ratelimit counts events per key in fixed time windows so the auth
// server can slow down brute-force attacks: failed logins are counted per
// account+IP and per IP, registrations per IP.
//
// Counters live in process memory by default (Memory) or in Redis (Redis) so
// that all replicas of the server share them. Fallback wraps Redis with an
// in-memory limiter so that a Redis outage degrades protection to
// per-replica counting instead of failing logins.
//
// Windows are fixed, not sliding: the first hit of a key starts a window of
// Rate.Window and the count resets when that window ends. This is cheap (one
// counter and one expiry per key) and precise enough for brute-force
// defence, where the limit is an order of magnitude below what an attacker
// needs.
//
// Block and Blocked add exponential back-off on top of the counters: after
// many failed logins the caller blocks an account for a growing time and
// checks Blocked before trying a password. Blocks are kept apart from the
// counters, so the same key string can be used for both.
//
// Keys are chosen by the caller and may contain e-mail addresses and IPs.
// Every implementation stores only the SHA-256 digest of a key, so neither
// Redis nor a memory dump reveals who tried to log in from where.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rate is Limit events per Window. The zero Rate is "unlimited": Enabled
// reports false and limiters neither count nor store anything for it.
type Rate struct {
	Limit  int
	Window time.Duration
}

// minWindow is the shortest window ParseRate accepts. Redis expiries are
// millisecond-based and sub-second windows make no sense for brute-force
// defence; rejecting them catches typos such as "10/15" or "10/15ms".
const minWindow = time.Second

// ParseRate parses "N/duration" where N >= 1 and duration is in Go
// time.ParseDuration syntax and at least one second, e.g. "10/15m",
// "300/15m" or "1000/1h". "off" (in any case) returns the zero Rate, which
// disables limiting. Any other input is an error that quotes the input so a
// misconfigured setting is easy to find.
func ParseRate(s string) (Rate, error) {
	if strings.EqualFold(s, "off") {
		return Rate{}, nil
	}
	bad := func(reason string) (Rate, error) {
		return Rate{}, fmt.Errorf("ratelimit: invalid rate %q: %s (want \"N/duration\" such as \"10/15m\", or \"off\")", s, reason)
	}
	n, d, ok := strings.Cut(s, "/")
	if !ok {
		return bad("missing \"/\"")
	}
	if strings.Contains(d, "/") {
		return bad("more than one \"/\"")
	}
	limit, err := strconv.Atoi(n)
	if err != nil {
		return bad("count is not an integer")
	}
	if limit < 1 {
		return bad("count must be at least 1")
	}
	window, err := time.ParseDuration(d)
	if err != nil {
		return bad("window is not a duration")
	}
	if window < minWindow {
		return bad("window must be at least " + minWindow.String())
	}
	return Rate{Limit: limit, Window: window}, nil
}

// String formats r in the form ParseRate accepts, e.g. "10/15m0s", or "off"
// for a disabled Rate.
func (r Rate) String() string {
	if !r.Enabled() {
		return "off"
	}
	return strconv.Itoa(r.Limit) + "/" + r.Window.String()
}

// Enabled reports whether r limits anything. A Rate with a non-positive
// Limit or Window cannot be enforced meaningfully, so it counts as disabled
// rather than as "deny everything".
func (r Rate) Enabled() bool {
	return r.Limit > 0 && r.Window > 0
}

// Result is the outcome of Limiter.Hit.
type Result struct {
	// Count is the number of events counted in the current window,
	// including this one. It is 0 for a disabled Rate.
	Count int
	// Allowed reports Count <= Limit. It is always true for a disabled Rate.
	Allowed bool
	// RetryAfter is, when !Allowed, the time until the window ends (> 0), so
	// callers can send a Retry-After hint; otherwise it is 0.
	RetryAfter time.Duration
}

// Limiter counts events per key in fixed windows. Implementations are safe
// for concurrent use.
//
// Keys are opaque strings chosen by the caller (they may contain e-mail
// addresses): implementations store only a SHA-256 digest of the key, never
// the key itself, so no e-mail address or IP sits in Redis or memory dumps.
type Limiter interface {
	// Hit atomically counts one event for key under r and reports the
	// result. A disabled r returns Result{Allowed: true} without storing
	// anything. Atomic means: of N concurrent Hits on a fresh key with
	// Limit L, exactly min(N, L) are Allowed.
	Hit(ctx context.Context, key string, r Rate) (Result, error)
	// Undo takes back one event previously counted for key (never below
	// zero); it is a no-op for a missing key. The window is not changed.
	Undo(ctx context.Context, key string) error
	// Reset forgets key.
	Reset(ctx context.Context, key string) error
	// Block makes Blocked(key) report a wait until d from now. A block never shortens: if key is
	// already blocked for longer, it is left as it is. d <= 0 does nothing. Blocks live in their own
	// namespace: Block/Blocked never see or change the counters of Hit/Undo/Reset with the same key
	// (and Reset does not clear a block).
	Block(ctx context.Context, key string, d time.Duration) error
	// Blocked returns how long key stays blocked (> 0), or 0 when it is not blocked.
	Blocked(ctx context.Context, key string) (time.Duration, error)
}

// digest is the only form in which a key is ever stored.
func digest(key string) [sha256.Size]byte {
	return sha256.Sum256([]byte(key))
}

// result builds the Result for a counted event. retry is the remaining
// window; it is only reported when the event is denied.
func result(count int, r Rate, retry time.Duration) Result {
	if count <= r.Limit {
		return Result{Count: count, Allowed: true}
	}
	if retry <= 0 {
		// The window is ending right now; a zero RetryAfter on a denial
		// would tell clients to retry immediately in a tight loop.
		retry = time.Millisecond
	}
	return Result{Count: count, Allowed: false, RetryAfter: retry}
}
