package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"gqlauth/internal/testdb"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// testRedis connects to TEST_REDIS_URL. Without it the test is skipped,
// except in CI (CI=true) or with REQUIRE_REDIS=1, where a silently skipped
// Redis suite would hide a broken shared limiter.
func testRedis(t *testing.T) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(testdb.Redis(t))
	if err != nil {
		t.Fatalf("TEST_REDIS_URL: %v", err)
	}
	client := redis.NewClient(opt)
	t.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("TEST_REDIS_URL set but Redis unreachable: %v", err)
	}
	return client
}

// testPrefix returns a random key prefix and deletes its keys when the test
// ends, so parallel and repeated runs never see each other's counters.
func testPrefix(t *testing.T, client *redis.Client) string {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	prefix := "test:ratelimit:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		// t.Context is already cancelled when cleanups run.
		ctx := context.Background()
		keys := redisKeys(t, client, prefix)
		if len(keys) > 0 {
			if err := client.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return prefix
}

func redisKeys(t *testing.T, client *redis.Client, prefix string) []string {
	t.Helper()
	keys, err := client.Keys(context.Background(), prefix+"*").Result()
	if err != nil {
		t.Fatalf("KEYS %s*: %v", prefix, err)
	}
	return keys
}

func newRedisFixture(t *testing.T) (fixture, *Redis, *redis.Client, string) {
	client := testRedis(t)
	prefix := testPrefix(t, client)
	l := NewRedis(client, prefix)
	return fixture{
		l: l,
		advance: func(_ *testing.T, start time.Time, d time.Duration) {
			time.Sleep(time.Until(start.Add(d)))
		},
		stored:      func(t *testing.T) []string { return redisKeys(t, client, prefix) },
		shortWindow: time.Second,
	}, l, client, prefix
}

func TestRedisConformance(t *testing.T) {
	t.Parallel()
	testRedis(t) // skip or fail once here rather than in every subtest
	runConformance(t, func(t *testing.T) fixture {
		f, _, _, _ := newRedisFixture(t)
		return f
	})
}

func TestRedisKeyFormat(t *testing.T) {
	t.Parallel()
	_, l, client, prefix := newRedisFixture(t)
	const key = "alice@example.com|10.0.0.1"
	r := Rate{Limit: 5, Window: time.Minute}
	mustHit(t, l, key, r)
	mustHit(t, l, key, r)

	d := digest(key)
	want := prefix + hex.EncodeToString(d[:])
	keys := redisKeys(t, client, prefix)
	if !slices.Equal(keys, []string{want}) {
		t.Fatalf("keys = %q, want [%q]", keys, want)
	}
	ctx := t.Context()
	if v, err := client.Get(ctx, want).Int(); err != nil || v != 2 {
		t.Fatalf("GET = %d, %v; want 2", v, err)
	}
	ttl, err := client.PTTL(ctx, want).Result()
	if err != nil || ttl <= 0 || ttl > r.Window {
		t.Fatalf("PTTL = %v, %v; want in (0, %v]", ttl, err, r.Window)
	}

	// A block of the same key lives under "b:" and its TTL is the block.
	mustBlock(t, l, key, 2*time.Minute)
	wantBlock := prefix + "b:" + hex.EncodeToString(d[:])
	keys = redisKeys(t, client, prefix)
	wantKeys := []string{want, wantBlock}
	slices.Sort(keys)
	slices.Sort(wantKeys)
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("keys = %q, want %q", keys, wantKeys)
	}
	ttl, err = client.PTTL(ctx, wantBlock).Result()
	if err != nil || ttl <= r.Window || ttl > 2*time.Minute {
		t.Fatalf("block PTTL = %v, %v; want in (%v, 2m]", ttl, err, r.Window)
	}
	if v, err := client.Get(ctx, want).Int(); err != nil || v != 2 {
		t.Fatalf("counter after Block: GET = %d, %v; want 2", v, err)
	}
}

// PX takes whole milliseconds and rejects 0, so sub-millisecond blocks must
// be rounded up rather than turned into an error.
func TestRedisBlockSubMillisecond(t *testing.T) {
	t.Parallel()
	_, l, _, _ := newRedisFixture(t)
	for _, d := range []time.Duration{time.Nanosecond, 999 * time.Microsecond, 1500 * time.Microsecond} {
		if err := l.Block(t.Context(), "k", d); err != nil {
			t.Fatalf("Block(%v): %v", d, err)
		}
	}
}

// A block key that lost its expiry (e.g. PERSIST) must not block forever:
// Blocked reports it as not blocked and the next Block gives it a TTL.
func TestRedisBlockRepairsMissingExpiry(t *testing.T) {
	t.Parallel()
	_, l, client, prefix := newRedisFixture(t)
	ctx := t.Context()
	mustBlock(t, l, "k", time.Minute)
	d := digest("k")
	bk := prefix + "b:" + hex.EncodeToString(d[:])
	if err := client.Persist(ctx, bk).Err(); err != nil {
		t.Fatal(err)
	}
	if got := mustBlocked(t, l, "k"); got != 0 {
		t.Fatalf("Blocked of a key without expiry = %v, want 0", got)
	}
	mustBlock(t, l, "k", time.Second)
	wantBlocked(t, l, "k", 0, time.Second)
}

// A counter that lost its expiry (e.g. PERSIST by an operator) must not
// lock its key out forever: the next Hit puts the expiry back.
func TestRedisRepairsMissingExpiry(t *testing.T) {
	t.Parallel()
	_, l, client, prefix := newRedisFixture(t)
	r := Rate{Limit: 5, Window: time.Minute}
	mustHit(t, l, "k", r)
	d := digest("k")
	rk := prefix + hex.EncodeToString(d[:])
	ctx := t.Context()
	if err := client.Persist(ctx, rk).Err(); err != nil {
		t.Fatal(err)
	}
	wantResult(t, mustHit(t, l, "k", r), 2, true)
	if ttl, err := client.PTTL(ctx, rk).Result(); err != nil || ttl <= 0 {
		t.Fatalf("PTTL after repair = %v, %v", ttl, err)
	}
}

func TestRedisErrorsAreReturned(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1; every call must fail fast with an error
	// (which Fallback relies on), not panic or report success.
	client := redis.NewClient(&redis.Options{
		Addr:          "127.0.0.1:1",
		DialTimeout:   200 * time.Millisecond,
		MaxRetries:    -1,
		DialerRetries: 1,
	})
	t.Cleanup(func() { _ = client.Close() })
	l := NewRedis(client, "x:")
	ctx := t.Context()
	if _, err := l.Hit(ctx, "k", Rate{Limit: 1, Window: time.Minute}); err == nil {
		t.Error("Hit: want error")
	}
	if err := l.Undo(ctx, "k"); err == nil {
		t.Error("Undo: want error")
	}
	if err := l.Reset(ctx, "k"); err == nil {
		t.Error("Reset: want error")
	}
	if err := l.Block(ctx, "k", time.Minute); err == nil {
		t.Error("Block: want error")
	}
	if _, err := l.Blocked(ctx, "k"); err == nil {
		t.Error("Blocked: want error")
	}
	// A non-positive block is a no-op that needs no round trip.
	if err := l.Block(ctx, "k", 0); err != nil {
		t.Errorf("Block(0) = %v", err)
	}
	// A disabled Rate needs no round trip, so it succeeds even now.
	if res, err := l.Hit(ctx, "k", Rate{}); err != nil || !res.Allowed {
		t.Errorf("disabled Hit = %+v, %v", res, err)
	}
}
