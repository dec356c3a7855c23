// Package storetest is the conformance suite of auth.Store: every implementation (store.DB on SQLite
// and Postgres, memstore's in-memory fake) must pass Run, so that the domain tests in auth may run on
// any of them and what they prove holds for all. It checks each contract documented in auth/store.go
// through the interface alone: what each method stores and returns, its not-found and conflict errors,
// that a refused conditional write writes nothing, and the races the real stores are built to win.
package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/models"
)

// Run runs the suite. Every subtest calls newStore for a fresh, empty store of its own (and runs in
// parallel with the others), so newStore must give independent stores and register their cleanup
// with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) auth.Store) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newFixture(t, newStore(t)))
		})
	}
}

// base is the suite's "now": a fixed instant, in microseconds (what Postgres stores) and UTC, so
// that every time written reads back Equal on every engine. No store method reads the real clock.
var base = time.Date(2031, 3, 4, 5, 6, 7, 891011000, time.UTC)

// fixture builds rows through the Store under test.
type fixture struct {
	t   *testing.T
	st  auth.Store
	ctx context.Context
	n   atomic.Int64 // makes token hashes unique within the store
}

func newFixture(t *testing.T, st auth.Store) *fixture {
	return &fixture{t: t, st: st, ctx: t.Context()}
}

// at is base moved by d.
func at(d time.Duration) time.Time { return base.Add(d) }

// clock returns a revocation clock fixed at tm.
func clock(tm time.Time) func() time.Time { return func() time.Time { return tm } }

func (f *fixture) hash() []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "%s/%d", f.t.Name(), f.n.Add(1)))
	return h[:]
}

// newToken returns an unsaved refresh token of session s, created at created and expiring in an hour.
func (f *fixture) newToken(s *models.Session, created time.Time) *models.RefreshToken {
	return &models.RefreshToken{TokenHash: f.hash(), SessionID: s.ID, UserID: s.UserID, CreatedAt: created, ExpiresAt: created.Add(time.Hour)}
}

// user registers name@example.com at base, with a first session expiring in an hour.
func (f *fixture) user(name string) (*models.User, *models.Session, *models.RefreshToken) {
	f.t.Helper()
	u := &models.User{ID: "u-" + name, Email: name + "@example.com", PasswordHash: "hash-" + name, Role: models.RoleUser, CreatedAt: base, UpdatedAt: base}
	s := &models.Session{ID: "s-" + name, UserID: u.ID, CreatedAt: base, LastUsedAt: base, ExpiresAt: at(time.Hour)}
	rt := f.newToken(s, base)
	if err := f.st.CreateUser(f.ctx, u, s, rt); err != nil {
		f.t.Fatalf("CreateUser(%s): %v", name, err)
	}
	return u, s, rt
}

// session opens another session of u, created at created and expiring after ttl, with no cap.
func (f *fixture) session(u *models.User, id string, created time.Time, ttl time.Duration) (*models.Session, *models.RefreshToken) {
	f.t.Helper()
	s := &models.Session{ID: id, UserID: u.ID, CreatedAt: created, LastUsedAt: created, ExpiresAt: created.Add(ttl)}
	rt := f.newToken(s, created)
	if _, _, err := f.st.CreateSession(f.ctx, s, rt, auth.SessionCheck{CredentialsVersion: u.CredentialsVersion, Now: clock(created)}); err != nil {
		f.t.Fatalf("CreateSession(%s): %v", id, err)
	}
	return s, rt
}

// rotate exchanges old (of session s) for a new token at tm, which must succeed.
func (f *fixture) rotate(s *models.Session, old *models.RefreshToken, tm time.Time) *models.RefreshToken {
	f.t.Helper()
	next := f.newToken(s, tm)
	if err := f.st.Rotate(f.ctx, auth.Rotation{SessionID: s.ID, OldID: old.ID, RetireOld: true, New: next, Now: tm, ExpiresAt: tm.Add(time.Hour)}); err != nil {
		f.t.Fatalf("Rotate: %v", err)
	}
	return next
}

// token reads a refresh token back by its hash.
func (f *fixture) token(rt *models.RefreshToken) *models.RefreshToken {
	f.t.Helper()
	got, err := f.st.RefreshTokenByHash(f.ctx, rt.TokenHash)
	if err != nil {
		f.t.Fatalf("RefreshTokenByHash: %v", err)
	}
	return got
}

// absent fails unless the token was never stored.
func (f *fixture) absent(rt *models.RefreshToken, what string) {
	f.t.Helper()
	if _, err := f.st.RefreshTokenByHash(f.ctx, rt.TokenHash); !errors.Is(err, auth.ErrNotFound) {
		f.t.Fatalf("%s: RefreshTokenByHash = %v, want ErrNotFound (the token must not be stored)", what, err)
	}
}

// sess reads a session back.
func (f *fixture) sess(id string) *models.Session {
	f.t.Helper()
	s, err := f.st.SessionByID(f.ctx, id)
	if err != nil {
		f.t.Fatalf("SessionByID(%s): %v", id, err)
	}
	return s
}

// userByID reads a user back.
func (f *fixture) userByID(id string) *models.User {
	f.t.Helper()
	u, err := f.st.UserByID(f.ctx, id)
	if err != nil {
		f.t.Fatalf("UserByID(%s): %v", id, err)
	}
	return u
}

// live lists the ids of u's live sessions at tm, in the order Sessions returns them.
func (f *fixture) live(userID string, tm time.Time) []string {
	f.t.Helper()
	list, err := f.st.Sessions(f.ctx, userID, tm)
	if err != nil {
		f.t.Fatalf("Sessions: %v", err)
	}
	ids := make([]string, len(list))
	for i, s := range list {
		ids[i] = s.ID
	}
	return ids
}

// revoked fails unless the session is revoked at want.
func (f *fixture) revokedAt(id string, want time.Time) {
	f.t.Helper()
	if s := f.sess(id); s.RevokedAt == nil || !s.RevokedAt.Equal(want) {
		f.t.Fatalf("session %s revoked_at = %v, want %v", id, s.RevokedAt, want)
	}
}

// notRevoked fails when the session is revoked.
func (f *fixture) notRevoked(id string) {
	f.t.Helper()
	if s := f.sess(id); s.RevokedAt != nil {
		f.t.Fatalf("session %s was revoked (at %v)", id, s.RevokedAt)
	}
}

// sameIDs compares two id lists as sets.
func sameIDs(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func timeEq(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// race runs fn(i) for i in [0, n) at once (released together) and waits for all.
func race(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}

type testCase struct {
	name string
	fn   func(t *testing.T, f *fixture)
}

// cases is the suite, one entry per contract; the methods' cases are in the files named after them.
var cases = slices.Concat(userCases, sessionCases, rotateCases, revokeCases, passwordCases, factorCases, passkeyCases)
