package memstore

import (
	"context"
	"errors"
	"time"

	"gqlauth/models"
)

var errTODO = errors.New("memstore: not implemented yet")

// SetPendingTOTP implements auth.FactorStore.
func (st *Store) SetPendingTOTP(ctx context.Context, userID string, sealed []byte, at time.Time) error {
	return errTODO
}

// EnableTOTP implements auth.FactorStore.
func (st *Store) EnableTOTP(ctx context.Context, userID string, sealed []byte, step int64, codes []models.RecoveryCode, at time.Time) error {
	return errTODO
}

// UseTOTPStep implements auth.FactorStore.
func (st *Store) UseTOTPStep(ctx context.Context, userID string, step int64) error { return errTODO }

// DisableTOTP implements auth.FactorStore.
func (st *Store) DisableTOTP(ctx context.Context, userID string, at time.Time) error { return errTODO }

// UseRecoveryCode implements auth.FactorStore.
func (st *Store) UseRecoveryCode(ctx context.Context, userID string, hash []byte, at time.Time) error {
	return errTODO
}

// ReplaceRecoveryCodes implements auth.FactorStore.
func (st *Store) ReplaceRecoveryCodes(ctx context.Context, userID string, codes []models.RecoveryCode) error {
	return errTODO
}
