package memstore

import (
	"context"
	"errors"
	"time"

	"gqlauth/models"
)

var errTODOPasskeys = errors.New("memstore: not implemented yet")

// CreatePasskey implements auth.FactorStore.
func (st *Store) CreatePasskey(ctx context.Context, p *models.Passkey) error { return errTODOPasskeys }

// Passkeys implements auth.FactorStore.
func (st *Store) Passkeys(ctx context.Context, userID string) ([]models.Passkey, error) {
	return nil, errTODOPasskeys
}

// PasskeyByCredentialID implements auth.FactorStore.
func (st *Store) PasskeyByCredentialID(ctx context.Context, credentialID []byte) (*models.Passkey, error) {
	return nil, errTODOPasskeys
}

// UsePasskey implements auth.FactorStore.
func (st *Store) UsePasskey(ctx context.Context, id string, oldCount, newCount int64, credential string, at time.Time) error {
	return errTODOPasskeys
}

// DeletePasskey implements auth.FactorStore.
func (st *Store) DeletePasskey(ctx context.Context, userID, id string) (bool, error) {
	return false, errTODOPasskeys
}
