package memstore

import (
	"bytes"
	"context"
	"slices"
	"time"

	"gqlauth/auth"
	"gqlauth/models"
)

// SetPendingTOTP implements auth.FactorStore.
func (st *Store) SetPendingTOTP(ctx context.Context, userID string, sealed []byte, at time.Time) error {
	if err := st.lock(ctx); err != nil {
		return err
	}
	defer st.mu.Unlock()
	u := st.liveUser(userID)
	if u == nil {
		return auth.ErrNotFound
	}
	if u.TOTPEnabledAt != nil {
		return auth.ErrConflict
	}
	u.TOTPSecret, u.UpdatedAt = slices.Clone(sealed), at
	return nil
}

// EnableTOTP implements auth.FactorStore.
func (st *Store) EnableTOTP(ctx context.Context, userID string, sealed []byte, step int64, codes []models.RecoveryCode, at time.Time) error {
	if err := st.lock(ctx); err != nil {
		return err
	}
	defer st.mu.Unlock()
	u := st.liveUser(userID)
	if u == nil || u.TOTPEnabledAt != nil || u.TOTPSecret == nil || !bytes.Equal(u.TOTPSecret, sealed) {
		return auth.ErrConflict
	}
	u.TOTPEnabledAt, u.TOTPLastStep, u.UpdatedAt = &at, step, at
	st.replaceCodes(userID, codes)
	return nil
}

// replaceCodes deletes the user's recovery codes and stores codes, assigning ids in order.
func (st *Store) replaceCodes(userID string, codes []models.RecoveryCode) {
	st.deleteCodes(userID)
	for _, c := range codes {
		st.lastCodeID++
		st.recoveryCodes = append(st.recoveryCodes, &models.RecoveryCode{
			ID: st.lastCodeID, UserID: userID, CodeHash: slices.Clone(c.CodeHash), CreatedAt: c.CreatedAt,
		})
	}
}

func (st *Store) deleteCodes(userID string) {
	st.recoveryCodes = slices.DeleteFunc(st.recoveryCodes, func(c *models.RecoveryCode) bool { return c.UserID == userID })
}

// UseTOTPStep implements auth.FactorStore.
func (st *Store) UseTOTPStep(ctx context.Context, userID string, step int64) error {
	if err := st.lock(ctx); err != nil {
		return err
	}
	defer st.mu.Unlock()
	u := st.liveUser(userID)
	if u == nil || u.TOTPEnabledAt == nil || u.TOTPLastStep >= step {
		return auth.ErrConflict
	}
	u.TOTPLastStep = step
	return nil
}

// DisableTOTP implements auth.FactorStore.
func (st *Store) DisableTOTP(ctx context.Context, userID string, at time.Time) error {
	if err := st.lock(ctx); err != nil {
		return err
	}
	defer st.mu.Unlock()
	u := st.liveUser(userID)
	if u == nil || u.TOTPEnabledAt == nil {
		return auth.ErrConflict
	}
	u.TOTPSecret, u.TOTPEnabledAt, u.TOTPLastStep, u.UpdatedAt = nil, nil, 0, at
	st.deleteCodes(userID)
	return nil
}

// UseRecoveryCode implements auth.FactorStore.
func (st *Store) UseRecoveryCode(ctx context.Context, userID string, hash []byte, at time.Time) error {
	if err := st.lock(ctx); err != nil {
		return err
	}
	defer st.mu.Unlock()
	found := false
	for _, c := range st.recoveryCodes {
		if c.UserID == userID && c.UsedAt == nil && bytes.Equal(c.CodeHash, hash) {
			c.UsedAt, found = &at, true
		}
	}
	if !found {
		return auth.ErrNotFound
	}
	return nil
}

// ReplaceRecoveryCodes implements auth.FactorStore.
func (st *Store) ReplaceRecoveryCodes(ctx context.Context, userID string, codes []models.RecoveryCode) error {
	if err := st.lock(ctx); err != nil {
		return err
	}
	defer st.mu.Unlock()
	u := st.liveUser(userID)
	if u == nil || u.TOTPEnabledAt == nil {
		return auth.ErrConflict
	}
	st.replaceCodes(userID, codes)
	return nil
}
