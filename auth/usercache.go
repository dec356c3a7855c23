package auth

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"gqlauth/models"
)

// meCacheTTL bounds how stale `me` can be. Only the role can change under it (authctl set-role), and
// a role change reaches access tokens only at the next refresh anyway.
const meCacheTTL = 5 * time.Second

// userCacheMax bounds the cache: 65536 users of a few hundred bytes.
const userCacheMax = 1 << 16

// userCache keeps recently read users for `me`, the hottest protected read, so that it needs no
// database round trip (the revocation check is already in memory). Entries live meCacheTTL; this
// instance's own writes to a user drop its entry. The password hash is never cached.
//
// The entries live in a bounded LRU (hashicorp/golang-lru's lru.Cache), each with its own expiry read
// from the Service's clock, which tests move by hand. golang-lru's expirable.LRU reads the wall clock
// instead, and with a TTL it runs a cleanup goroutine per cache that the library (v2.0.7) offers no
// way to stop, which NewService must not start. An expired entry is refused by get and takes a slot
// until it is read again (and replaced) or the LRU pushes it out.
type userCache struct {
	lru *lru.Cache[string, cachedUser]
}

type cachedUser struct {
	u       models.User
	expires time.Time
}

func newUserCache() userCache {
	c, err := lru.New[string, cachedUser](userCacheMax)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	return userCache{lru: c}
}

func (c userCache) get(id string, now time.Time) (*models.User, bool) {
	e, ok := c.lru.Get(id)
	if !ok || !now.Before(e.expires) {
		return nil, false
	}
	u := e.u
	return &u, true
}

func (c userCache) put(u *models.User, now time.Time) {
	e := cachedUser{u: *u, expires: now.Add(meCacheTTL)}
	e.u.PasswordHash = ""
	c.lru.Add(u.ID, e)
}

func (c userCache) drop(id string) {
	c.lru.Remove(id)
}
