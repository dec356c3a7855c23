package store

import (
	"context"
	"errors"
	"time"

	"gqlauth/models"
)

var errTODOPasskeys = errors.New("store: not implemented yet")

// CreatePasskey implements auth.FactorStore.
func (db *DB) CreatePasskey(ctx context.Context, p *models.Passkey) error { return errTODOPasskeys }

// Passkeys implements auth.FactorStore.
func (db *DB) Passkeys(ctx context.Context, userID string) ([]models.Passkey, error) {
	return nil, errTODOPasskeys
}

// PasskeyByCredentialID implements auth.FactorStore.
func (db *DB) PasskeyByCredentialID(ctx context.Context, credentialID []byte) (*models.Passkey, error) {
	return nil, errTODOPasskeys
}

// UsePasskey implements auth.FactorStore.
func (db *DB) UsePasskey(ctx context.Context, id string, oldCount, newCount int64, credential string, at time.Time) error {
	return errTODOPasskeys
}

// DeletePasskey implements auth.FactorStore.
func (db *DB) DeletePasskey(ctx context.Context, userID, id string) (bool, error) {
	return false, errTODOPasskeys
}
