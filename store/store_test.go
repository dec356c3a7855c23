package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/internal/testdb"
	"gqlauth/models"
	"gqlauth/store"
)

func mustOpen(t *testing.T, dsn string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

type fixture struct {
	user    *models.User
	session *models.Session
	token   *models.RefreshToken
}

func seed(t *testing.T, db *store.DB, id string, now time.Time) fixture {
	t.Helper()
	u := &models.User{ID: "u-" + id, Email: id + "@example.com", PasswordHash: "x", Role: models.RoleUser, CreatedAt: now, UpdatedAt: now}
	s := &models.Session{ID: "s-" + id, UserID: u.ID, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(time.Hour)}
	rt := &models.RefreshToken{TokenHash: []byte("hash-" + id + "-0123456789abcdefghijk")[:32], SessionID: s.ID, UserID: u.ID, CreatedAt: now, ExpiresAt: s.ExpiresAt}
	if err := db.CreateUser(context.Background(), u, s, rt); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return fixture{u, s, rt}
}

func TestCreateUserIsAtomic(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		db := mustOpen(t, dsn)
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		f := seed(t, db, "alice", now)
		// Same e-mail: EMAIL_TAKEN, and nothing of the second registration is stored.
		u := &models.User{ID: "u-2", Email: f.user.Email, PasswordHash: "x", Role: models.RoleUser, CreatedAt: now, UpdatedAt: now}
		s := &models.Session{ID: "s-2", UserID: u.ID, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(time.Hour)}
		rt := &models.RefreshToken{TokenHash: make([]byte, 32), SessionID: s.ID, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := db.CreateUser(ctx, u, s, rt); !errors.Is(err, auth.ErrEmailTaken) {
			t.Fatalf("err = %v, want ErrEmailTaken", err)
		}
		// A failure after the user row (duplicate token hash) rolls the user back too.
		u.Email, rt.TokenHash = "bob@example.com", f.token.TokenHash
		if err := db.CreateUser(ctx, u, s, rt); err == nil {
			t.Fatal("duplicate token hash accepted")
		}
		if _, err := db.UserByEmail(ctx, "bob@example.com"); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("half-written registration: user found (err=%v)", err)
		}
		if _, err := db.SessionByID(ctx, "s-2"); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("half-written registration: session found (err=%v)", err)
		}
	})
}

// Rotation is all or nothing: when storing the new token fails, the old token is not retired and
// the session is not extended, so the client can retry with the same token.
func TestRotateIsAtomic(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		db := mustOpen(t, dsn)
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		a := seed(t, db, "alice", now)
		b := seed(t, db, "bob", now)

		later := now.Add(time.Minute)
		bad := &models.RefreshToken{TokenHash: b.token.TokenHash, SessionID: a.session.ID, UserID: a.user.ID, CreatedAt: later, ExpiresAt: later.Add(time.Hour)}
		err := db.Rotate(ctx, auth.Rotation{SessionID: a.session.ID, OldID: a.token.ID, RetireOld: true, New: bad, Now: later, ExpiresAt: later.Add(time.Hour)})
		if err == nil {
			t.Fatal("rotation with a duplicate hash succeeded")
		}
		got, err := db.RefreshTokenByHash(ctx, a.token.TokenHash)
		if err != nil {
			t.Fatal(err)
		}
		if got.RotatedAt != nil || !got.Session.ExpiresAt.Equal(a.session.ExpiresAt) {
			t.Fatalf("failed rotation left changes: rotated_at=%v expires=%v", got.RotatedAt, got.Session.ExpiresAt)
		}
		if got.User == nil || got.User.Email != "alice@example.com" {
			t.Fatalf("user not joined: %+v", got.User)
		}

		// The real rotation works once; the same old token again is a conflict.
		next := &models.RefreshToken{TokenHash: []byte("next-0123456789abcdefghijklmnopqr")[:32], SessionID: a.session.ID, UserID: a.user.ID, CreatedAt: later, ExpiresAt: later.Add(time.Hour)}
		rot := auth.Rotation{SessionID: a.session.ID, OldID: a.token.ID, RetireOld: true, New: next, Now: later, ExpiresAt: later.Add(time.Hour)}
		if err := db.Rotate(ctx, rot); err != nil {
			t.Fatal(err)
		}
		rot.New = &models.RefreshToken{TokenHash: []byte("nex2-0123456789abcdefghijklmnopqr")[:32], SessionID: a.session.ID, UserID: a.user.ID, CreatedAt: later, ExpiresAt: later.Add(time.Hour)}
		if err := db.Rotate(ctx, rot); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("second rotation err = %v, want ErrConflict", err)
		}
		// A revoked session cannot be rotated.
		ids, _, err := db.RevokeSessions(ctx, auth.SessionFilter{SessionID: a.session.ID}, func() time.Time { return later })
		if err != nil || len(ids) != 1 {
			t.Fatalf("revoke: %v %v", ids, err)
		}
		rot.RetireOld = false
		if err := db.Rotate(ctx, rot); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("rotation of revoked session err = %v, want ErrConflict", err)
		}
		revoked, err := db.SessionRevoked(ctx, a.session.ID)
		if err != nil || !revoked {
			t.Fatalf("SessionRevoked = %v %v", revoked, err)
		}
		revs, err := db.RevokedSince(ctx, now)
		if err != nil || len(revs) != 1 || revs[0].ID != a.session.ID {
			t.Fatalf("RevokedSince = %v %v", revs, err)
		}
		if gone, _ := db.SessionRevoked(ctx, "no-such"); !gone {
			t.Fatal("a missing session must count as revoked")
		}
	})
}

// Deleting a user removes its sessions and tokens (foreign keys with ON DELETE CASCADE, which on
// SQLite needs the foreign_keys pragma).
func TestCascadeOnUserDelete(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		db := mustOpen(t, dsn)
		f := seed(t, db, "alice", time.Now().UTC())
		if err := db.Gorm().Exec("DELETE FROM users WHERE id = ?", f.user.ID).Error; err != nil {
			t.Fatal(err)
		}
		var n int64
		db.Gorm().Model(&models.RefreshToken{}).Count(&n)
		var m int64
		db.Gorm().Model(&models.Session{}).Count(&m)
		if n != 0 || m != 0 {
			t.Fatalf("after deleting the user: %d tokens, %d sessions remain", n, m)
		}
	})
}

// With the connection to Postgres cut, store calls fail fast with auth.ErrUnavailable (reads, the
// one-statement rotation, and transactions alike), and work again once it is back, with no reopen.
func TestPostgresOutageIsUnavailable(t *testing.T) {
	t.Parallel()
	dsn, proxy := testdb.Proxied(t, testdb.Postgres(t))
	db := mustOpen(t, dsn)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	a := seed(t, db, "alice", now)

	proxy.Cut()
	later := now.Add(time.Minute)
	next := &models.RefreshToken{TokenHash: []byte("next-0123456789abcdefghijklmnopqr")[:32], SessionID: a.session.ID, UserID: a.user.ID, CreatedAt: later, ExpiresAt: later.Add(time.Hour)}
	calls := []struct {
		name string
		call func() error
	}{
		{"read", func() error { _, err := db.UserByEmail(ctx, a.user.Email); return err }},
		{"rotate", func() error {
			return db.Rotate(ctx, auth.Rotation{SessionID: a.session.ID, OldID: a.token.ID, RetireOld: true, New: next, Now: later, ExpiresAt: later.Add(time.Hour)})
		}},
		{"transaction", func() error {
			_, _, err := db.RevokeSessions(ctx, auth.SessionFilter{SessionID: a.session.ID}, func() time.Time { return later })
			return err
		}},
	}
	for _, c := range calls {
		start := time.Now()
		if err := c.call(); !errors.Is(err, auth.ErrUnavailable) {
			t.Errorf("%s during the outage: %v, want auth.ErrUnavailable", c.name, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s took %s to fail", c.name, d)
		}
	}
	if err := db.Ping(ctx); err == nil {
		t.Error("Ping succeeded during the outage")
	}

	if err := proxy.Restore(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := db.UserByEmail(ctx, a.user.Email)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing 5s after Postgres came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The failed rotation and revocation changed nothing: the old token is still the live one.
	got, err := db.RefreshTokenByHash(ctx, a.token.TokenHash)
	if err != nil || got.RotatedAt != nil || got.RevokedAt != nil || got.Session.RevokedAt != nil {
		t.Fatalf("old token after the failed writes: %+v, %v", got, err)
	}
	if err := db.Rotate(ctx, auth.Rotation{SessionID: a.session.ID, OldID: a.token.ID, RetireOld: true, New: next, Now: later, ExpiresAt: later.Add(time.Hour)}); err != nil {
		t.Fatalf("rotation after the outage: %v", err)
	}
}
