package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/internal/testdb"
	"gqlauth/models"
	"gqlauth/store"
)

// purgeFixture builds sessions and tokens at chosen times relative to now.
type purgeFixture struct {
	t   *testing.T
	db  *store.DB
	now time.Time
	n   int
}

func (f *purgeFixture) user(id string) *models.User {
	f.t.Helper()
	u := &models.User{ID: "u-" + id, Email: id + "@example.com", PasswordHash: "x", Role: models.RoleUser, CreatedAt: f.now, UpdatedAt: f.now}
	if err := f.db.CreateUserOnly(context.Background(), u); err != nil {
		f.t.Fatalf("CreateUserOnly: %v", err)
	}
	return u
}

func (f *purgeFixture) hash() []byte {
	f.n++
	h := sha256.Sum256(fmt.Appendf(nil, "%s-%d", f.t.Name(), f.n))
	return h[:]
}

// session stores a session expiring at now+expires (revoked at now+revoked when revoked is not nil)
// with one token expiring with it, and returns the session id and the token.
func (f *purgeFixture) session(u *models.User, id string, expires time.Duration, revoked *time.Duration) (string, *models.RefreshToken) {
	f.t.Helper()
	s := &models.Session{ID: id, UserID: u.ID, CreatedAt: f.now.Add(-48 * time.Hour), LastUsedAt: f.now, ExpiresAt: f.now.Add(expires)}
	if revoked != nil {
		at := f.now.Add(*revoked)
		s.RevokedAt = &at
	}
	rt := &models.RefreshToken{TokenHash: f.hash(), SessionID: id, UserID: u.ID, CreatedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt}
	if s.RevokedAt != nil {
		rt.RevokedAt = s.RevokedAt
	}
	if _, _, err := f.db.CreateSession(context.Background(), s, rt, auth.SessionCheck{Now: time.Now}); err != nil {
		f.t.Fatalf("CreateSession: %v", err)
	}
	return id, rt
}

// token adds a token to a session, expiring at now+expires, rotated at now+rotated when not nil.
func (f *purgeFixture) token(u *models.User, sessionID string, expires time.Duration, rotated *time.Duration) *models.RefreshToken {
	f.t.Helper()
	rt := &models.RefreshToken{TokenHash: f.hash(), SessionID: sessionID, UserID: u.ID, CreatedAt: f.now.Add(-48 * time.Hour), ExpiresAt: f.now.Add(expires)}
	if rotated != nil {
		at := f.now.Add(*rotated)
		rt.RotatedAt = &at
	}
	if err := f.db.Gorm().Omit("User", "Session").Create(rt).Error; err != nil {
		f.t.Fatalf("create token: %v", err)
	}
	return rt
}

func dur(d time.Duration) *time.Duration { return &d }

func count(t *testing.T, db *store.DB, model any, where string, args ...any) int64 {
	t.Helper()
	var n int64
	q := db.Gorm().Model(model)
	if where != "" {
		q = q.Where(where, args...)
	}
	if err := q.Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPurge(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		db := mustOpen(t, dsn)
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		f := &purgeFixture{t: t, db: db, now: now}
		u := f.user("alice")
		const retention = time.Hour
		before := now.Add(-retention)

		// Kept: a live session, its current token, a rotated token that has not expired (reuse
		// detection needs it), a session that expired recently, and one revoked recently.
		live, current := f.session(u, "s-live", time.Hour, nil)
		rotated := f.token(u, live, 30*time.Minute, dur(-2*time.Hour))
		rotatedRecentlyExpired := f.token(u, live, -30*time.Minute, dur(-3*time.Hour))
		f.session(u, "s-expired-recently", -30*time.Minute, nil)
		f.session(u, "s-revoked-recently", 10*time.Hour, dur(-10*time.Minute))
		// Deleted: a long-expired session with two tokens, a long-revoked session whose token has
		// not expired, and a long-expired token of the live session.
		f.session(u, "s-expired", -2*time.Hour, nil)
		f.token(u, "s-expired", -3*time.Hour, dur(-4*time.Hour))
		f.session(u, "s-revoked", 10*time.Hour, dur(-2*time.Hour))
		oldToken := f.token(u, live, -2*time.Hour, dur(-3*time.Hour))

		deleted, err := db.Purge(ctx, before, 500)
		if err != nil {
			t.Fatal(err)
		}
		if deleted != 6 { // s-expired + 2 tokens, s-revoked + 1 token, 1 old token of s-live
			t.Fatalf("deleted = %d, want 6", deleted)
		}
		for _, id := range []string{"s-live", "s-expired-recently", "s-revoked-recently"} {
			if _, err := db.SessionByID(ctx, id); err != nil {
				t.Errorf("session %s: %v", id, err)
			}
		}
		for _, id := range []string{"s-expired", "s-revoked"} {
			if _, err := db.SessionByID(ctx, id); !errors.Is(err, auth.ErrNotFound) {
				t.Errorf("session %s not purged (err=%v)", id, err)
			}
			if n := count(t, db, &models.RefreshToken{}, "session_id = ?", id); n != 0 {
				t.Errorf("session %s: %d tokens left", id, n)
			}
		}
		for name, rt := range map[string]*models.RefreshToken{"current": current, "rotated": rotated, "rotated recently expired": rotatedRecentlyExpired} {
			if _, err := db.RefreshTokenByHash(ctx, rt.TokenHash); err != nil {
				t.Errorf("%s token: %v", name, err)
			}
		}
		if _, err := db.RefreshTokenByHash(ctx, oldToken.TokenHash); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("long-expired token not purged (err=%v)", err)
		}
		if n := count(t, db, &models.Session{}, ""); n != 3 {
			t.Errorf("%d sessions left, want 3", n)
		}
		if n := count(t, db, &models.RefreshToken{}, ""); n != 5 {
			t.Errorf("%d tokens left, want 5", n)
		}
		if _, err := db.UserByID(ctx, u.ID); err != nil {
			t.Errorf("user: %v", err)
		}

		// Idempotent: nothing more to do.
		if deleted, err := db.Purge(ctx, before, 500); err != nil || deleted != 0 {
			t.Fatalf("second purge = %d, %v; want 0, nil", deleted, err)
		}
		if _, err := db.Purge(ctx, before, 0); err == nil {
			t.Fatal("batch 0 accepted")
		}
	})
}

func TestPurgeBatches(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		db := mustOpen(t, dsn)
		now := time.Now().UTC().Truncate(time.Microsecond)
		f := &purgeFixture{t: t, db: db, now: now}
		u := f.user("bob")
		live, _ := f.session(u, "s-live", time.Hour, nil)
		for i := range 5 {
			f.session(u, fmt.Sprintf("s-old-%d", i), -2*time.Hour, nil)            // 5 sessions + 5 tokens
			f.session(u, fmt.Sprintf("s-rev-%d", i), time.Hour, dur(-2*time.Hour)) // 5 sessions + 5 tokens
			f.token(u, live, -2*time.Hour, dur(-3*time.Hour))                      // 5 tokens
		}
		deleted, err := db.Purge(context.Background(), now.Add(-time.Hour), 2)
		if err != nil {
			t.Fatal(err)
		}
		if deleted != 25 {
			t.Fatalf("deleted = %d, want 25", deleted)
		}
		if s, rt := count(t, db, &models.Session{}, ""), count(t, db, &models.RefreshToken{}, ""); s != 1 || rt != 1 {
			t.Fatalf("left %d sessions and %d tokens, want 1 and 1", s, rt)
		}
	})
}

// Two replicas purging the same database at once both succeed, and between them delete every row
// once.
func TestPurgeConcurrent(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		a, b := mustOpen(t, dsn), mustOpen(t, dsn)
		now := time.Now().UTC().Truncate(time.Microsecond)
		f := &purgeFixture{t: t, db: a, now: now}
		u := f.user("carol")
		live, _ := f.session(u, "s-live", time.Hour, nil)
		const n = 40
		for i := range n {
			f.session(u, fmt.Sprintf("s-old-%02d", i), -2*time.Hour, dur(-3*time.Hour))
			f.token(u, live, -2*time.Hour, dur(-3*time.Hour))
		}
		var wg sync.WaitGroup
		var counts [2]int64
		var errs [2]error
		for i, db := range []*store.DB{a, b} {
			wg.Go(func() { counts[i], errs[i] = db.Purge(context.Background(), now.Add(-time.Hour), 3) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("purge %d: %v", i, err)
			}
		}
		if total := counts[0] + counts[1]; total != 3*n {
			t.Fatalf("deleted %d + %d = %d, want %d", counts[0], counts[1], total, 3*n)
		}
		if s, rt := count(t, a, &models.Session{}, ""), count(t, a, &models.RefreshToken{}, ""); s != 1 || rt != 1 {
			t.Fatalf("left %d sessions and %d tokens, want 1 and 1", s, rt)
		}
	})
}

// Deleting a session deletes its refresh tokens (ON DELETE CASCADE) on both engines. Purge deletes
// them explicitly anyway, to count them; this checks that nothing else relies on it in vain.
func TestCascadeOnSessionDelete(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		db := mustOpen(t, dsn)
		f := &purgeFixture{t: t, db: db, now: time.Now().UTC()}
		u := f.user("dave")
		id, _ := f.session(u, "s-1", time.Hour, nil)
		f.token(u, id, time.Hour, dur(-time.Minute))
		if err := db.Gorm().Exec("DELETE FROM sessions WHERE id = ?", id).Error; err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, &models.RefreshToken{}, ""); n != 0 {
			t.Fatalf("%d tokens left after deleting their session", n)
		}
	})
}

func TestCreateUserOnlyAndSetRole(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		db := mustOpen(t, dsn)
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		u := &models.User{ID: "u-1", Email: "erin@example.com", PasswordHash: "x", Role: models.RoleUser, CreatedAt: now, UpdatedAt: now}
		if err := db.CreateUserOnly(ctx, u); err != nil {
			t.Fatal(err)
		}
		dup := *u
		dup.ID = "u-2"
		if err := db.CreateUserOnly(ctx, &dup); !errors.Is(err, auth.ErrEmailTaken) {
			t.Fatalf("duplicate e-mail: err = %v, want ErrEmailTaken", err)
		}
		if n := count(t, db, &models.Session{}, ""); n != 0 {
			t.Fatalf("CreateUserOnly made %d sessions", n)
		}
		if err := db.SetRole(ctx, u.ID, models.RoleAdmin); err != nil {
			t.Fatal(err)
		}
		got, err := db.UserByID(ctx, u.ID)
		if err != nil || got.Role != models.RoleAdmin {
			t.Fatalf("role = %v (err %v), want ADMIN", got, err)
		}
		// Setting the role it already has is not "not found".
		if err := db.SetRole(ctx, u.ID, models.RoleAdmin); err != nil {
			t.Fatalf("same role again: %v", err)
		}
		if err := db.SetRole(ctx, "no-such", models.RoleAdmin); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("unknown user: err = %v, want ErrNotFound", err)
		}
		if err := db.SetRole(ctx, u.ID, models.Role("ROOT")); err == nil {
			t.Fatal("invalid role accepted")
		}
	})
}
