package auth

import (
	"sync"
	"time"

	"gqlauth/models"
)

// meCacheTTL bounds how stale `me` can be. Only the role can change under it (authctl set-role), and
// a role change reaches access tokens only at the next refresh anyway.
const meCacheTTL = 5 * time.Second

// userCache keeps recently read users for `me`, the hottest protected read, so that it needs no
// database round trip (the revocation check is already in memory). Entries live meCacheTTL; this
// instance's own writes to a user drop its entry. The password hash is never cached.
type userCache struct {
	mu sync.RWMutex
	m  map[string]cachedUser
}

type cachedUser struct {
	u       models.User
	expires time.Time
}

const userCacheMax = 1 << 16

func (c *userCache) get(id string, now time.Time) (*models.User, bool) {
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return nil, false
	}
	u := e.u
	return &u, true
}

func (c *userCache) put(u *models.User, now time.Time) {
	e := cachedUser{u: *u, expires: now.Add(meCacheTTL)}
	e.u.PasswordHash = ""
	c.mu.Lock()
	if c.m == nil || len(c.m) >= userCacheMax {
		c.m = make(map[string]cachedUser)
	}
	c.m[u.ID] = e
	c.mu.Unlock()
}

func (c *userCache) drop(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}
