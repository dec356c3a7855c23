package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"gqlauth/auth"
	"gqlauth/models"
)

// The TOTP columns live on the users row, and every write below that touches recovery codes updates
// that row first: on Postgres the row lock then orders EnableTOTP, DisableTOTP and
// ReplaceRecoveryCodes of one user (no two can interleave their deletes and inserts), and on SQLite
// the transaction holds the only write lock anyway. Each "only if" is part of the UPDATE's WHERE, so
// that of two concurrent requests exactly one sees its row change.

// SetPendingTOTP implements auth.FactorStore. It returns auth.ErrNotFound when there is no live user.
func (db *DB) SetPendingTOTP(ctx context.Context, userID string, sealed []byte, at time.Time) error {
	res := db.ctx(ctx).Model(&models.User{}).
		Where("id = ? AND deleted_at IS NULL AND totp_enabled_at IS NULL", userID).
		Updates(map[string]any{"totp_secret": sealed, "updated_at": at})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return db.conflictOrNotFound(ctx, userID)
	}
	return nil
}

// conflictOrNotFound tells why a conditional update of a users row matched nothing: no live user
// (auth.ErrNotFound) or a condition that did not hold (auth.ErrConflict).
func (db *DB) conflictOrNotFound(ctx context.Context, userID string) error {
	var n int64
	if err := db.ctx(ctx).Model(&models.User{}).Where("id = ? AND deleted_at IS NULL", userID).Count(&n).Error; err != nil {
		return err
	}
	if n == 0 {
		return auth.ErrNotFound
	}
	return auth.ErrConflict
}

// EnableTOTP implements auth.FactorStore.
func (db *DB) EnableTOTP(ctx context.Context, userID string, sealed []byte, step int64, codes []models.RecoveryCode, at time.Time) error {
	return db.ctx(ctx).Transaction(func(tx *gorm.DB) error {
		// Comparing the sealed bytes makes "the enrolment that was confirmed" exact: a new
		// startTotpEnrollment in between sealed a new secret (with a new nonce), so it never matches.
		res := tx.Model(&models.User{}).
			Where("id = ? AND deleted_at IS NULL AND totp_enabled_at IS NULL AND totp_secret = ?", userID, sealed).
			Updates(map[string]any{"totp_enabled_at": at, "totp_last_step": step, "updated_at": at})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrConflict
		}
		return replaceCodes(tx, userID, codes)
	})
}

// replaceCodes deletes the user's recovery codes and inserts codes.
func replaceCodes(tx *gorm.DB, userID string, codes []models.RecoveryCode) error {
	if err := tx.Where("user_id = ?", userID).Delete(&models.RecoveryCode{}).Error; err != nil {
		return err
	}
	if len(codes) == 0 {
		return nil
	}
	rows := make([]models.RecoveryCode, len(codes))
	for i, c := range codes {
		c.ID, c.UserID, c.User, c.UsedAt = 0, userID, nil, nil
		rows[i] = c
	}
	return tx.Omit("User").Create(&rows).Error
}

// UseTOTPStep implements auth.FactorStore with one conditional update.
func (db *DB) UseTOTPStep(ctx context.Context, userID string, step int64) error {
	res := db.ctx(ctx).Model(&models.User{}).
		Where("id = ? AND deleted_at IS NULL AND totp_enabled_at IS NOT NULL AND totp_last_step < ?", userID, step).
		Update("totp_last_step", step)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return auth.ErrConflict
	}
	return nil
}

// DisableTOTP implements auth.FactorStore.
func (db *DB) DisableTOTP(ctx context.Context, userID string, at time.Time) error {
	return db.ctx(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&models.User{}).
			Where("id = ? AND deleted_at IS NULL AND totp_enabled_at IS NOT NULL", userID).
			Updates(map[string]any{"totp_secret": nil, "totp_enabled_at": nil, "totp_last_step": 0, "updated_at": at})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrConflict
		}
		return tx.Where("user_id = ?", userID).Delete(&models.RecoveryCode{}).Error
	})
}

// UseRecoveryCode implements auth.FactorStore with one conditional update: of two concurrent uses of
// a code, the second finds used_at set (on Postgres it waits for the first's row lock and then
// re-checks the condition) and changes nothing.
func (db *DB) UseRecoveryCode(ctx context.Context, userID string, hash []byte, at time.Time) error {
	res := db.ctx(ctx).Model(&models.RecoveryCode{}).
		Where("user_id = ? AND code_hash = ? AND used_at IS NULL", userID, hash).
		Update("used_at", at)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return auth.ErrNotFound
	}
	return nil
}

// ReplaceRecoveryCodes implements auth.FactorStore.
func (db *DB) ReplaceRecoveryCodes(ctx context.Context, userID string, codes []models.RecoveryCode) error {
	return db.ctx(ctx).Transaction(func(tx *gorm.DB) error {
		// A no-op update as the condition: it checks that TOTP is on and takes the users row's lock,
		// so a concurrent DisableTOTP cannot delete the codes between this check and the insert.
		res := tx.Model(&models.User{}).
			Where("id = ? AND deleted_at IS NULL AND totp_enabled_at IS NOT NULL", userID).
			Update("totp_last_step", gorm.Expr("totp_last_step"))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrConflict
		}
		return replaceCodes(tx, userID, codes)
	})
}
