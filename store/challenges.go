package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"gqlauth/auth"
	"gqlauth/models"
)

var _ auth.FactorStore = (*DB)(nil)

// CreateChallenge implements auth.FactorStore. A challenge without a token (a passkey ceremony,
// found by its id) leaves token_hash NULL: the SQLite driver would store a nil []byte as an empty
// blob, and a second one would then collide with the first in the unique index.
func (db *DB) CreateChallenge(ctx context.Context, c *models.AuthChallenge) error {
	if c.TokenHash == nil {
		return db.ctx(ctx).Omit("User", "TokenHash").Create(c).Error
	}
	return db.ctx(ctx).Omit("User").Create(c).Error
}

// ChallengeByTokenHash implements auth.FactorStore.
func (db *DB) ChallengeByTokenHash(ctx context.Context, hash []byte) (*models.AuthChallenge, error) {
	var c models.AuthChallenge
	if err := db.ctx(ctx).Where("token_hash = ?", hash).Take(&c).Error; err != nil {
		return nil, notFound(err)
	}
	return &c, nil
}

// ChallengeByID implements auth.FactorStore.
func (db *DB) ChallengeByID(ctx context.Context, id string) (*models.AuthChallenge, error) {
	var c models.AuthChallenge
	if err := db.ctx(ctx).Where("id = ?", id).Take(&c).Error; err != nil {
		return nil, notFound(err)
	}
	return &c, nil
}

// LatestChallenge implements auth.FactorStore.
func (db *DB) LatestChallenge(ctx context.Context, userID string, kind models.ChallengeKind, at time.Time) (*models.AuthChallenge, error) {
	var c models.AuthChallenge
	err := db.ctx(ctx).Where("user_id = ? AND kind = ? AND used_at IS NULL AND expires_at > ?", userID, kind, at).
		Order("created_at DESC, id DESC").Take(&c).Error
	if err != nil {
		return nil, notFound(err)
	}
	return &c, nil
}

// ConsumeChallenge implements auth.FactorStore with one conditional update.
func (db *DB) ConsumeChallenge(ctx context.Context, id string, at time.Time) error {
	res := db.ctx(ctx).Model(&models.AuthChallenge{}).Where("id = ? AND used_at IS NULL AND expires_at > ?", id, at).
		Update("used_at", at)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return auth.ErrConflict
	}
	return nil
}

// FailChallenge implements auth.FactorStore: the attempt is counted with one conditional update (so
// concurrent wrong codes are all counted), then the challenge is ended if that was the last allowed.
func (db *DB) FailChallenge(ctx context.Context, id string, maxAttempts int, at time.Time) (int, error) {
	var attempts int
	err := db.ctx(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&models.AuthChallenge{}).Where("id = ? AND used_at IS NULL", id).
			Update("attempts", gorm.Expr("attempts + 1"))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			attempts = maxAttempts // already ended
			return nil
		}
		if err := tx.Model(&models.AuthChallenge{}).Where("id = ?", id).Select("attempts").Scan(&attempts).Error; err != nil {
			return err
		}
		if attempts >= maxAttempts {
			return tx.Model(&models.AuthChallenge{}).Where("id = ? AND used_at IS NULL", id).Update("used_at", at).Error
		}
		return nil
	})
	return attempts, err
}

// Reauthenticate implements auth.FactorStore, in the order of ChangePassword (the session row, then
// its tokens), so that it queues behind a concurrent rotation or revocation instead of deadlocking.
func (db *DB) Reauthenticate(ctx context.Context, r auth.Reauthentication) error {
	return db.ctx(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&models.Session{}).
			Where("id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?", r.SessionID, r.UserID, r.Now).
			Updates(map[string]any{"amr": r.AMR, "auth_time": r.AuthTime, "last_used_at": r.Now, "expires_at": r.ExpiresAt})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrConflict
		}
		if err := tx.Model(&models.RefreshToken{}).Where("session_id = ? AND revoked_at IS NULL", r.SessionID).
			Update("revoked_at", r.Now).Error; err != nil {
			return err
		}
		return tx.Omit("User", "Session").Create(r.New).Error
	})
}
