package ratelimit

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// hitScript counts one event and returns {count, pttl} in one round trip.
// Running INCR and PEXPIRE in one script makes them atomic: with separate
// commands a crash or network error between them would leave a counter with
// no expiry, locking the key out forever. The expiry is also (re)set when the
// key somehow has none (PTTL -1), so such a key repairs itself on next use.
var hitScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`)

// undoScript decrements only an existing, positive counter. A plain DECR
// would create a key at -1 without expiry for a missing key, and would go
// negative, granting extra attempts.
var undoScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and tonumber(v) > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
`)

// blockScript sets a block of ARGV[1] ms unless the key is already blocked
// for at least as long, so a block never shortens; reading the TTL and
// setting the key in one script keeps concurrent Blocks from racing. A key
// without expiry (PTTL -1, e.g. after PERSIST) or a missing one (-2) is
// (re)set, so a block key cannot stay forever.
var blockScript = redis.NewScript(`
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], 1, 'PX', ARGV[1])
end
return 0
`)

// Redis is the shared Limiter: all replicas using the same Redis and prefix
// see the same counters. Each Hit is one round trip running a Lua script
// (INCR; PEXPIRE on the first hit; return count and PTTL) so count and
// expiry are set atomically. Counter keys are prefix + hex(sha256(key)); block
// keys are prefix + "b:" + hex(sha256(key)), a separate namespace whose TTL
// is the remaining block.
type Redis struct {
	client redis.UniversalClient
	prefix string
}

// NewRedis returns a Redis limiter storing its counters in client under
// keys starting with prefix (e.g. "gqlauth:rl:"), so they can be told apart
// from other data and removed with one SCAN. It panics on a nil client,
// which is a wiring bug better caught at start-up than on the first login.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	if client == nil {
		panic("ratelimit: NewRedis with nil client")
	}
	return &Redis{client: client, prefix: prefix}
}

// key maps a caller key to the Redis key; only the digest is stored.
func (l *Redis) key(key string) string {
	d := digest(key)
	return l.prefix + hex.EncodeToString(d[:])
}

// blockKey maps a caller key to the Redis key of its block.
func (l *Redis) blockKey(key string) string {
	d := digest(key)
	return l.prefix + "b:" + hex.EncodeToString(d[:])
}

// Hit implements Limiter.
func (l *Redis) Hit(ctx context.Context, key string, r Rate) (Result, error) {
	if !r.Enabled() {
		return Result{Allowed: true}, nil
	}
	// PEXPIRE 0 would delete the key at once, so round sub-millisecond
	// windows up rather than silently disabling the limit.
	window := max(r.Window.Milliseconds(), 1)
	vals, err := hitScript.Run(ctx, l.client, []string{l.key(key)}, window).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("ratelimit: redis hit: %w", err)
	}
	if len(vals) != 2 {
		return Result{}, fmt.Errorf("ratelimit: redis hit: unexpected reply %v", vals)
	}
	return result(int(vals[0]), r, time.Duration(vals[1])*time.Millisecond), nil
}

// Undo implements Limiter.
func (l *Redis) Undo(ctx context.Context, key string) error {
	if err := undoScript.Run(ctx, l.client, []string{l.key(key)}).Err(); err != nil {
		return fmt.Errorf("ratelimit: redis undo: %w", err)
	}
	return nil
}

// Reset implements Limiter.
func (l *Redis) Reset(ctx context.Context, key string) error {
	if err := l.client.Del(ctx, l.key(key)).Err(); err != nil {
		return fmt.Errorf("ratelimit: redis reset: %w", err)
	}
	return nil
}

// Block implements Limiter.
func (l *Redis) Block(ctx context.Context, key string, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	// Round up to whole milliseconds, the unit of PX: a block must not be
	// shorter than asked, and PX 0 is an error.
	ms := d.Milliseconds()
	if d%time.Millisecond != 0 {
		ms++
	}
	if err := blockScript.Run(ctx, l.client, []string{l.blockKey(key)}, ms).Err(); err != nil {
		return fmt.Errorf("ratelimit: redis block: %w", err)
	}
	return nil
}

// Blocked implements Limiter.
func (l *Redis) Blocked(ctx context.Context, key string) (time.Duration, error) {
	ttl, err := l.client.PTTL(ctx, l.blockKey(key)).Result()
	if err != nil {
		return 0, fmt.Errorf("ratelimit: redis blocked: %w", err)
	}
	// -2 (no key) and -1 (no expiry, which blockScript never creates)
	// both mean not blocked.
	return max(ttl, 0), nil
}
