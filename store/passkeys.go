package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

	"gqlauth/auth"
	"gqlauth/models"
)

// CreatePasskey implements auth.FactorStore: the unique index on credential_id turns a credential
// registered already (by anyone) into auth.ErrConflict.
func (db *DB) CreatePasskey(ctx context.Context, p *models.Passkey) error {
	err := db.ctx(ctx).Omit("User").Create(p).Error
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return auth.ErrConflict
	}
	return err
}

// Passkeys implements auth.FactorStore.
func (db *DB) Passkeys(ctx context.Context, userID string) ([]models.Passkey, error) {
	list := []models.Passkey{}
	if err := db.ctx(ctx).Where("user_id = ?", userID).Order("created_at, id").Find(&list).Error; err != nil {
		return nil, err
	}
	return list, nil
}

// PasskeyByCredentialID implements auth.FactorStore. A deleted user's passkeys stay until the user
// row is purged (ON DELETE CASCADE), and are not found meanwhile.
func (db *DB) PasskeyByCredentialID(ctx context.Context, credentialID []byte) (*models.Passkey, error) {
	var p models.Passkey
	if err := db.ctx(ctx).Where("credential_id = ?", credentialID).Take(&p).Error; err != nil {
		return nil, notFound(err)
	}
	var u models.User
	if err := db.ctx(ctx).Where("id = ? AND deleted_at IS NULL", p.UserID).Take(&u).Error; err != nil {
		return nil, notFound(err)
	}
	p.User = &u
	return &p, nil
}

// UsePasskey implements auth.FactorStore with one conditional update on the sign counter.
func (db *DB) UsePasskey(ctx context.Context, id string, oldCount, newCount int64, credential string, at time.Time) error {
	res := db.ctx(ctx).Model(&models.Passkey{}).Where("id = ? AND sign_count = ?", id, oldCount).
		Updates(map[string]any{"sign_count": newCount, "credential": credential, "last_used_at": at})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return auth.ErrConflict
	}
	return nil
}

// DeletePasskey implements auth.FactorStore.
func (db *DB) DeletePasskey(ctx context.Context, userID, id string) (bool, error) {
	res := db.ctx(ctx).Where("id = ? AND user_id = ?", id, userID).Delete(&models.Passkey{})
	if res.Error != nil {
		return false, res.Error
	}
	return res.RowsAffected > 0, nil
}
