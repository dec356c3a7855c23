package auth

import (
	"fmt"
	"testing"
	"time"

	"gqlauth/models"
)

// The cache is bounded; a full cache drops its least recently used user, and drop and expiry work on
// the stored entries.
func TestUserCacheBoundAndExpiry(t *testing.T) {
	c := newUserCache()
	now := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	id := func(n int) string { return fmt.Sprintf("user-%d", n) }
	for n := range userCacheMax {
		c.put(&models.User{ID: id(n), PasswordHash: "secret"}, now)
	}
	if u, ok := c.get(id(0), now); !ok || u.ID != id(0) || u.PasswordHash != "" {
		t.Fatalf("get(user-0) = %+v, %v", u, ok)
	}
	c.put(&models.User{ID: id(userCacheMax)}, now)
	if n := c.lru.Len(); n != userCacheMax {
		t.Fatalf("%d entries, want the bound %d", n, userCacheMax)
	}
	if _, ok := c.get(id(1), now); ok {
		t.Fatal("the least recently used user survived an overflow")
	}
	if _, ok := c.get(id(0), now.Add(meCacheTTL-time.Nanosecond)); !ok {
		t.Fatal("an entry expired before meCacheTTL")
	}
	if _, ok := c.get(id(0), now.Add(meCacheTTL)); ok {
		t.Fatal("an entry outlived meCacheTTL")
	}
	c.drop(id(2))
	if _, ok := c.get(id(2), now); ok {
		t.Fatal("a dropped user is still cached")
	}
}
