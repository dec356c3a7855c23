package apq_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gqlauth/apq"
	"gqlauth/internal/testdb"
)

func sha(doc string) string {
	sum := sha256.Sum256([]byte(doc))
	return hex.EncodeToString(sum[:])
}

// The memory cache holds at most its size: an attacker registering documents evicts old ones, it
// does not grow the process.
func TestMemoryIsBounded(t *testing.T) {
	t.Parallel()
	m, err := apq.NewMemory(10)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 100 {
		doc := fmt.Sprintf("query Q%d { __typename }", i)
		m.Add(ctx, sha(doc), doc)
	}
	if m.Len() != 10 {
		t.Fatalf("len %d, want 10", m.Len())
	}
	if _, ok := m.Get(ctx, sha("query Q99 { __typename }")); !ok {
		t.Fatal("the newest document was evicted")
	}
}

// What Redis returns is checked against its key, and found documents are kept locally; a document
// added lands in Redis with the TTL.
func TestRedis(t *testing.T) {
	t.Parallel()
	opts, err := redis.ParseURL(testdb.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()
	mem, _ := apq.NewMemory(10)
	r := apq.NewRedis(client, mem, time.Minute, slog.New(slog.DiscardHandler))

	doc := fmt.Sprintf("query R%d { __typename }", time.Now().UnixNano())
	r.Add(ctx, sha(doc), doc)
	if ttl := client.TTL(ctx, apq.Prefix+sha(doc)).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL %s, want up to 1m", ttl)
	}
	other, _ := apq.NewMemory(10)
	r2 := apq.NewRedis(client, other, time.Minute, slog.New(slog.DiscardHandler))
	if got, ok := r2.Get(ctx, sha(doc)); !ok || got != doc {
		t.Fatalf("Get from Redis = %q %v", got, ok)
	}
	if other.Len() != 1 {
		t.Fatal("a document found in Redis is not kept locally")
	}

	// A document changed in Redis is not served under the old hash.
	forged := fmt.Sprintf("query F%d { __typename }", time.Now().UnixNano())
	key := sha(forged)
	if err := client.Set(ctx, apq.Prefix+key, "mutation { logoutAll }", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if got, ok := r2.Get(ctx, key); ok {
		t.Fatalf("served a forged document: %q", got)
	}
}
