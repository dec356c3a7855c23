// Package apq keeps the documents that clients register with Apollo's automatic persisted queries
// (graph.DocumentCache): a bounded in-memory LRU, and the same in front of Redis, so that replicas
// share what any of them registered. Keys are the lower-case hex SHA-256 of the document (graph
// checks them and the document's size before anything is added).
package apq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/redis/go-redis/v9"

	"gqlauth/graph"
)

// Memory is an LRU of at most its size in documents; with graph's cap on a registered document's
// size (APQ_MAX_DOCUMENT_BYTES), its memory is bounded by size × that cap.
type Memory struct{ lru *lru.Cache[string, string] }

var _ graph.DocumentCache = (*Memory)(nil)

// NewMemory returns an LRU of size documents (size ≥ 1).
func NewMemory(size int) (*Memory, error) {
	c, err := lru.New[string, string](size)
	if err != nil {
		return nil, err
	}
	return &Memory{lru: c}, nil
}

// Get implements graph.DocumentCache.
func (m *Memory) Get(_ context.Context, hash string) (string, bool) { return m.lru.Get(hash) }

// Add implements graph.DocumentCache.
func (m *Memory) Add(_ context.Context, hash, doc string) { m.lru.Add(hash, doc) }

// Len is the number of documents held.
func (m *Memory) Len() int { return m.lru.Len() }

// Prefix is the prefix of the Redis keys of registered documents.
const Prefix = "gqlauth:apq:"

// redisTimeout bounds one Redis call: a slow Redis must not hold up an operation, which then only
// misses (the client sends the query again).
const redisTimeout = 300 * time.Millisecond

// Redis is Memory in front of Redis: a document is looked up locally first, then in Redis (and kept
// locally when found there); an added one goes to both, in Redis for a TTL. When Redis fails, Get
// misses and Add keeps the document locally: no request fails because of Redis.
type Redis struct {
	client redis.UniversalClient
	local  *Memory
	ttl    time.Duration
	log    *slog.Logger
	// OnChange, if set, is told when Redis starts failing (true) and answers again (false).
	OnChange func(degraded bool)

	degraded atomic.Bool
}

var _ graph.DocumentCache = (*Redis)(nil)

// NewRedis returns local in front of client; documents stay in Redis for ttl.
func NewRedis(client redis.UniversalClient, local *Memory, ttl time.Duration, log *slog.Logger) *Redis {
	if log == nil {
		log = slog.Default()
	}
	return &Redis{client: client, local: local, ttl: ttl, log: log}
}

// Get implements graph.DocumentCache. What Redis returns is checked against the hash: a document
// changed in Redis is a miss, never run under another document's hash.
func (r *Redis) Get(ctx context.Context, hash string) (string, bool) {
	if doc, ok := r.local.Get(ctx, hash); ok {
		return doc, true
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
	defer cancel()
	doc, err := r.client.Get(ctx, Prefix+hash).Result()
	if errors.Is(err, redis.Nil) {
		r.state(nil)
		return "", false
	}
	r.state(err)
	if err != nil {
		return "", false
	}
	if sum := sha256.Sum256([]byte(doc)); hex.EncodeToString(sum[:]) != hash {
		r.log.WarnContext(ctx, "APQ: a document in Redis does not match its key; ignored", "key", Prefix+hash)
		return "", false
	}
	r.local.Add(ctx, hash, doc)
	return doc, true
}

// Add implements graph.DocumentCache.
func (r *Redis) Add(ctx context.Context, hash, doc string) {
	r.local.Add(ctx, hash, doc)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
	defer cancel()
	r.state(r.client.Set(ctx, Prefix+hash, doc, r.ttl).Err())
}

// state records whether the last Redis call failed, logging and reporting changes only.
func (r *Redis) state(err error) {
	failing := err != nil
	if r.degraded.Swap(failing) == failing {
		return
	}
	if failing {
		r.log.Warn("APQ: Redis failed; registered documents are kept in this instance's memory only", "err", err)
	} else {
		r.log.Info("APQ: Redis answers again")
	}
	if r.OnChange != nil {
		r.OnChange(failing)
	}
}
