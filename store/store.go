// Package store persists users, sessions and refresh tokens with GORM, on Postgres or an embedded
// SQLite file. It translates database errors into the auth package's errors at its edge.
package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"gqlauth/auth"
	"gqlauth/models"
)

// DB is the GORM-backed store.
type DB struct {
	gorm     *gorm.DB
	postgres bool
}

var _ auth.Store = (*DB)(nil)

// IsPostgres reports whether dsn selects Postgres (postgres:// or postgresql://); anything else is
// the path of an SQLite file.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Options are Open's settings.
type Options struct {
	// Migrate applies the pending migrations before Open returns (on Postgres under an advisory
	// lock, so instances that start together do not race). When false, Open changes nothing and
	// fails with an error matching ErrSchemaBehind if any migration is pending.
	Migrate bool
}

// Open connects to dsn and brings the schema up to date (Options.Migrate, the default when opts is
// empty) or checks that it is. At most one Options is read. An error that means the database cannot
// be reached matches auth.ErrUnavailable, so a caller can wait and try again; a schema that is behind
// while migrating is off matches ErrSchemaBehind.
func Open(ctx context.Context, dsn string, opts ...Options) (*DB, error) {
	o := Options{Migrate: true}
	if len(opts) > 0 {
		o = opts[0]
	}
	db, err := connect(dsn)
	if err != nil {
		return nil, err
	}
	m, err := db.migrator()
	if err == nil {
		if o.Migrate {
			_, err = m.Up(ctx)
		} else {
			err = m.check(ctx)
		}
	}
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// connect opens the connection pool on dsn without touching the schema.
func connect(dsn string) (*DB, error) {
	cfg := &gorm.Config{
		// Single statements need no transaction of their own; multi-row writes use explicit ones.
		SkipDefaultTransaction: true,
		TranslateError:         true,
		// Silent: GORM's logger prints SQL with its parameters, which include token hashes.
		Logger:  logger.Discard,
		NowFunc: func() time.Time { return time.Now().UTC() },
	}
	pg := IsPostgres(dsn)
	var dial gorm.Dialector
	if pg {
		dial = pgDialector{postgres.Open(dsn).(*postgres.Dialector)}
	} else {
		path := strings.TrimPrefix(dsn, "sqlite://")
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("store: create data directory: %w", err)
			}
		}
		// WAL lets readers run beside the writer; busy_timeout makes writers wait instead of failing
		// with "database is locked"; _txlock=immediate takes the write lock when a transaction begins,
		// so a transaction that reads then writes cannot hit SQLITE_BUSY half-way; foreign_keys makes
		// ON DELETE CASCADE work.
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		dial = sqlite.Open(path + sep + "_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	}
	g, err := gorm.Open(dial, cfg)
	if err != nil {
		return nil, markUnavailable(fmt.Errorf("store: open: %w", err))
	}
	sqlDB, err := g.DB()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if pg {
		sqlDB.SetMaxOpenConns(20)
		sqlDB.SetMaxIdleConns(20)
	} else {
		sqlDB.SetMaxOpenConns(8)
		sqlDB.SetMaxIdleConns(8)
	}
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	return &DB{gorm: g, postgres: pg}, nil
}

// Dialect is "postgres" or "sqlite".
func (db *DB) Dialect() string {
	if db.postgres {
		return "postgres"
	}
	return "sqlite"
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	sqlDB, err := db.gorm.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Close closes the connection pool.
func (db *DB) Close() error {
	sqlDB, err := db.gorm.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Gorm exposes the connection for tests and tools.
func (db *DB) Gorm() *gorm.DB { return db.gorm }

func (db *DB) ctx(ctx context.Context) *gorm.DB { return db.gorm.WithContext(ctx) }

// notFound maps GORM's record-not-found to auth.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return auth.ErrNotFound
	}
	return err
}

// CreateUser implements auth.Store.
func (db *DB) CreateUser(ctx context.Context, u *models.User, s *models.Session, t *models.RefreshToken) error {
	return db.ctx(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(u).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return auth.ErrEmailTaken
			}
			return err
		}
		return createSession(tx, s, t)
	})
}

func createSession(tx *gorm.DB, s *models.Session, t *models.RefreshToken) error {
	if err := tx.Omit("User").Create(s).Error; err != nil {
		return err
	}
	return tx.Omit("User", "Session").Create(t).Error
}

// UserByEmail implements auth.Store.
func (db *DB) UserByEmail(ctx context.Context, email string) (*models.User, error) {
	var u models.User
	if err := db.ctx(ctx).Where("email = ? AND deleted_at IS NULL", email).Take(&u).Error; err != nil {
		return nil, notFound(err)
	}
	return &u, nil
}

// UserByID implements auth.Store.
func (db *DB) UserByID(ctx context.Context, id string) (*models.User, error) {
	var u models.User
	if err := db.ctx(ctx).Where("id = ? AND deleted_at IS NULL", id).Take(&u).Error; err != nil {
		return nil, notFound(err)
	}
	return &u, nil
}

// SetPasswordHash implements auth.Store.
func (db *DB) SetPasswordHash(ctx context.Context, userID, oldHash, newHash string, at time.Time) error {
	res := db.ctx(ctx).Model(&models.User{}).Where("id = ? AND password_hash = ? AND deleted_at IS NULL", userID, oldHash).
		Updates(map[string]any{"password_hash": newHash, "updated_at": at})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return auth.ErrConflict
	}
	return nil
}

// CreateSession implements auth.Store.
func (db *DB) CreateSession(ctx context.Context, s *models.Session, t *models.RefreshToken, c auth.SessionCheck) ([]string, time.Time, error) {
	var evicted []string
	at, err := db.revokingTx(ctx, c.Now, func(tx *gorm.DB, at time.Time) error {
		// FOR SHARE makes a concurrent password change (an UPDATE of this row) wait for this
		// transaction, or this one wait for it and then find the version moved on. SQLite transactions
		// are serialised (BEGIN IMMEDIATE), so the plain read is enough there.
		lock := ""
		if db.postgres {
			lock = " FOR SHARE"
		}
		var ids []string
		if err := scan(tx.Raw("SELECT id FROM users WHERE id = ? AND credentials_version = ? AND deleted_at IS NULL"+lock,
			s.UserID, c.CredentialsVersion), &ids); err != nil {
			return err
		}
		if len(ids) == 0 {
			return auth.ErrConflict
		}
		if err := createSession(tx, s, t); err != nil {
			return err
		}
		if c.MaxSessions <= 0 {
			return nil
		}
		var old []string
		if err := scan(tx.Raw("SELECT id FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? "+
			"ORDER BY created_at DESC, id DESC LIMIT 1000 OFFSET ?", s.UserID, at, c.MaxSessions), &old); err != nil {
			return err
		}
		if len(old) == 0 {
			return nil
		}
		var err error
		evicted, err = revokeSessions(tx, auth.SessionFilter{UserID: s.UserID, SessionIDs: old}, at)
		return err
	})
	return evicted, at, err
}

// revokingTx runs fn in a transaction that revokes sessions. The revocation time is read from now
// inside the transaction, once it has begun (on SQLite: once it holds the write lock, which BEGIN
// IMMEDIATE may wait for), and fn's statements must finish within auth.RevocationCommitBudget of that
// time or the transaction rolls back: other instances poll for revocations by time, with an overlap
// that covers the budget, and a revocation that committed later than that could be missed for good.
func (db *DB) revokingTx(ctx context.Context, now func() time.Time, fn func(tx *gorm.DB, at time.Time) error) (time.Time, error) {
	var at time.Time
	err := db.ctx(ctx).Transaction(func(tx *gorm.DB) error {
		at = now().UTC().Truncate(time.Microsecond)
		bctx, cancel := context.WithTimeout(ctx, auth.RevocationCommitBudget)
		defer cancel()
		return fn(tx.WithContext(bctx), at)
	})
	return at, err
}

// SessionByID implements auth.Store.
func (db *DB) SessionByID(ctx context.Context, id string) (*models.Session, error) {
	var s models.Session
	if err := db.ctx(ctx).Where("id = ?", id).Take(&s).Error; err != nil {
		return nil, notFound(err)
	}
	return &s, nil
}

// Sessions implements auth.Store.
func (db *DB) Sessions(ctx context.Context, userID string, now time.Time) ([]models.Session, error) {
	var list []models.Session
	err := db.ctx(ctx).Where("user_id = ? AND revoked_at IS NULL AND expires_at > ?", userID, now).
		Order("created_at DESC, id").Find(&list).Error
	return list, err
}

// RefreshTokenByHash implements auth.Store with one query that joins the session and the user.
func (db *DB) RefreshTokenByHash(ctx context.Context, hash []byte) (*models.RefreshToken, error) {
	var t models.RefreshToken
	err := db.ctx(ctx).Joins("Session").Joins("User").Where("refresh_tokens.token_hash = ?", hash).Take(&t).Error
	if err != nil {
		return nil, notFound(err)
	}
	return &t, nil
}

// Rotate implements auth.Store. The session row is updated first, then the token rows, the same order
// as RevokeSessions and ChangePassword, so concurrent rotations, revocations and password changes queue
// on the session row instead of deadlocking, and each statement after the first sees what the others
// committed.
func (db *DB) Rotate(ctx context.Context, r auth.Rotation) error {
	if db.postgres && r.RetireOld {
		return db.rotatePostgres(ctx, r)
	}
	return db.ctx(ctx).Transaction(func(tx *gorm.DB) error {
		set := map[string]any{"last_used_at": r.Now, "expires_at": r.ExpiresAt}
		if r.UserAgent != nil {
			set["user_agent"] = *r.UserAgent
		}
		if r.IP != nil {
			set["ip"] = *r.IP
		}
		res := tx.Model(&models.Session{}).
			Where("id = ? AND revoked_at IS NULL AND expires_at > ?", r.SessionID, r.Now).Updates(set)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrConflict
		}
		if r.RetireOld {
			// Conditional: of N requests racing with one token, exactly one sees a row change.
			res = tx.Model(&models.RefreshToken{}).
				Where("id = ? AND rotated_at IS NULL AND revoked_at IS NULL", r.OldID).Update("rotated_at", r.Now)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				return auth.ErrConflict
			}
		} else {
			// A retry inside the grace: refused if a password change revoked the old token since it was
			// read (the session row lock above orders this after any such change), and it retires
			// every live token of the session, so the session keeps exactly one chain.
			var n int64
			if err := tx.Model(&models.RefreshToken{}).Where("id = ? AND revoked_at IS NULL", r.OldID).Count(&n).Error; err != nil {
				return err
			}
			if n == 0 {
				return auth.ErrConflict
			}
			if err := tx.Model(&models.RefreshToken{}).
				Where("session_id = ? AND rotated_at IS NULL AND revoked_at IS NULL", r.SessionID).
				Update("rotated_at", r.Now).Error; err != nil {
				return err
			}
		}
		return tx.Omit("User", "Session").Create(r.New).Error
	})
}

// rotatePostgres is a normal rotation (RetireOld) as one statement: a single round trip instead of
// five (BEGIN, three writes, COMMIT), and atomic as any statement is. The session is updated first
// (the same lock order as RevokeSessions); the old token is retired only if the session update
// matched; the new token is inserted only if the retirement matched. So a dead session writes nothing,
// and the new token exists if and only if the old one was retired. The old token was the session's
// only live one, so New is too. A concurrent writer of the old token's row (another rotation, a grace
// retry, a password change) makes the retirement re-check the row as committed and not match.
// (Under a race with another refresh of the same token, the loser may still bump the session's
// last_used_at/expires_at, as the winner just did.)
func (db *DB) rotatePostgres(ctx context.Context, r auth.Rotation) error {
	q := `WITH s AS (
	UPDATE sessions SET last_used_at = ?, expires_at = ?, user_agent = COALESCE(?, user_agent), ip = COALESCE(?, ip)
	 WHERE id = ? AND revoked_at IS NULL AND expires_at > ?
	RETURNING id
), t AS (
	UPDATE refresh_tokens rt SET rotated_at = ?
	 WHERE rt.id = ? AND rt.rotated_at IS NULL AND rt.revoked_at IS NULL AND EXISTS (SELECT 1 FROM s)
	RETURNING rt.id
)
INSERT INTO refresh_tokens (token_hash, session_id, user_id, parent_id, created_at, expires_at)
SELECT ?, ?, ?, ?, ?, ? FROM t
RETURNING id`
	n := r.New
	var ids []uint64
	err := scan(db.ctx(ctx).Raw(q,
		r.Now, r.ExpiresAt, r.UserAgent, r.IP, r.SessionID, r.Now,
		r.Now, r.OldID,
		n.TokenHash, n.SessionID, n.UserID, n.ParentID, n.CreatedAt, n.ExpiresAt,
	), &ids)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return auth.ErrConflict
	}
	n.ID = ids[0]
	return nil
}

// RevokeSessions implements auth.Store.
func (db *DB) RevokeSessions(ctx context.Context, f auth.SessionFilter, now func() time.Time) ([]string, time.Time, error) {
	var ids []string
	at, err := db.revokingTx(ctx, now, func(tx *gorm.DB, at time.Time) error {
		var err error
		ids, err = revokeSessions(tx, f, at)
		return err
	})
	return ids, at, err
}

func revokeSessions(tx *gorm.DB, f auth.SessionFilter, at time.Time) ([]string, error) {
	q := "UPDATE sessions SET revoked_at = ? WHERE revoked_at IS NULL AND expires_at > ?"
	args := []any{at, at}
	if f.UserID != "" {
		q += " AND user_id = ?"
		args = append(args, f.UserID)
	}
	if f.SessionID != "" {
		q += " AND id = ?"
		args = append(args, f.SessionID)
	}
	if f.ExceptSessionID != "" {
		q += " AND id <> ?"
		args = append(args, f.ExceptSessionID)
	}
	if f.SessionIDs != nil {
		q += " AND id IN ?"
		args = append(args, f.SessionIDs)
	}
	if f.UserID == "" && f.SessionID == "" && f.ExceptSessionID == "" && f.SessionIDs == nil {
		return nil, errors.New("store: refusing to revoke every session")
	}
	var ids []string
	if err := scan(tx.Raw(q+" RETURNING id", args...), &ids); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	err := tx.Exec("UPDATE refresh_tokens SET revoked_at = ? WHERE session_id IN ? AND revoked_at IS NULL", at, ids).Error
	return ids, err
}

// ChangePassword implements auth.Store.
func (db *DB) ChangePassword(ctx context.Context, c auth.PasswordChange) ([]string, time.Time, error) {
	var ids []string
	at, err := db.revokingTx(ctx, c.Clock, func(tx *gorm.DB, at time.Time) error {
		// Conditional on the version whose password was verified: two changes racing with the same
		// current password cannot both win, and a login that verified this version cannot open a
		// session once this commits (see CreateSession).
		res := tx.Model(&models.User{}).
			Where("id = ? AND credentials_version = ? AND deleted_at IS NULL", c.UserID, c.CredentialsVersion).
			Updates(map[string]any{"password_hash": c.Hash, "credentials_version": gorm.Expr("credentials_version + 1"), "updated_at": c.Now})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrConflict
		}
		var err error
		ids, err = revokeSessions(tx, auth.SessionFilter{UserID: c.UserID, ExceptSessionID: c.KeepSessionID}, at)
		if err != nil {
			return err
		}
		res = tx.Model(&models.Session{}).
			Where("id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?", c.KeepSessionID, c.UserID, c.Now).
			Updates(map[string]any{"last_used_at": c.Now, "expires_at": c.ExpiresAt})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrConflict
		}
		// Every earlier token of the kept session is revoked, not retired: the reuse grace applies to
		// rotations only, so a copy taken before the change (also one rotated just before it) is
		// worthless at once. The new pair replaces them.
		if err := tx.Model(&models.RefreshToken{}).
			Where("session_id = ? AND revoked_at IS NULL", c.KeepSessionID).
			Update("revoked_at", at).Error; err != nil {
			return err
		}
		return tx.Omit("User", "Session").Create(c.New).Error
	})
	return ids, at, err
}

// RevokedSince implements auth.Store.
func (db *DB) RevokedSince(ctx context.Context, since time.Time) ([]auth.Revocation, error) {
	var revs []auth.Revocation
	err := scan(db.ctx(ctx).Model(&models.Session{}).Select("id, user_id, revoked_at").
		Where("revoked_at > ?", since), &revs)
	return revs, err
}

// SessionsCreatedSince implements auth.Store.
func (db *DB) SessionsCreatedSince(ctx context.Context, userIDs []string, since time.Time) ([]auth.SessionStart, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	var starts []auth.SessionStart
	err := scan(db.ctx(ctx).Model(&models.Session{}).Select("id, user_id, created_at").
		Where("user_id IN ? AND created_at > ?", userIDs, since), &starts)
	return starts, err
}

// CredentialsVersions implements auth.Store.
func (db *DB) CredentialsVersions(ctx context.Context, userIDs []string) (map[string]int64, error) {
	if len(userIDs) == 0 {
		return map[string]int64{}, nil
	}
	var rows []struct {
		ID                 string
		CredentialsVersion int64
	}
	if err := scan(db.ctx(ctx).Model(&models.User{}).Select("id, credentials_version").
		Where("id IN ? AND deleted_at IS NULL", userIDs), &rows); err != nil {
		return nil, err
	}
	versions := make(map[string]int64, len(rows))
	for _, r := range rows {
		versions[r.ID] = r.CredentialsVersion
	}
	return versions, nil
}

// SessionRevoked implements auth.Store. A session that no longer exists counts as revoked.
func (db *DB) SessionRevoked(ctx context.Context, id string) (bool, error) {
	var s models.Session
	err := db.ctx(ctx).Select("revoked_at").Where("id = ?", id).Take(&s).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return s.RevokedAt != nil, nil
}
