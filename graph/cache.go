package graph

import (
	"context"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/vektah/gqlparser/v2/ast"
)

// Bounds of the parsed-document cache.
const (
	queryCacheEntries = 1000
	// queryCacheBytes bounds the total length of the cached query texts. A parsed document takes up to
	// about 25 times its text (every field is an AST node with positions), so this holds the cache
	// near 25 MiB whatever clients send; an application's own operations are a few hundred bytes each.
	queryCacheBytes = 1 << 20
)

// queryCache is gqlgen's cache of parsed and validated documents, keyed by their text, bounded by
// both the number of entries and their total length: a count alone let a few thousand large
// documents hold gigabytes. golang-lru keeps the recency order; this type adds only the weights,
// which golang-lru has no notion of.
type queryCache struct {
	maxBytes int

	mu    sync.Mutex
	lru   *simplelru.LRU[string, *ast.QueryDocument]
	bytes int
}

var _ graphql.Cache[*ast.QueryDocument] = (*queryCache)(nil)

func newQueryCache(entries, maxBytes int) *queryCache {
	c := &queryCache{maxBytes: maxBytes}
	c.lru, _ = simplelru.NewLRU(entries, func(key string, _ *ast.QueryDocument) { c.bytes -= len(key) })
	return c
}

// Get implements graphql.Cache.
func (c *queryCache) Get(_ context.Context, key string) (*ast.QueryDocument, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Get(key)
}

// Add implements graphql.Cache. A document longer than the whole budget is not cached.
func (c *queryCache) Add(_ context.Context, key string, doc *ast.QueryDocument) {
	if len(key) > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru.Contains(key) { // two requests raced to parse it: the weight is counted once
		c.lru.Add(key, doc)
		return
	}
	c.lru.Add(key, doc) // may evict the oldest entry, which subtracts its weight
	c.bytes += len(key)
	for c.bytes > c.maxBytes {
		c.lru.RemoveOldest()
	}
}

// size reports the entries and their total length (for tests).
func (c *queryCache) size() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.bytes
}
