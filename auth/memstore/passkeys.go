package memstore

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"gqlauth/auth"
	"gqlauth/models"
)

func clonePasskey(p *models.Passkey) *models.Passkey {
	c := *p
	c.User = nil
	c.CredentialID = slices.Clone(p.CredentialID)
	c.LastUsedAt = cloneTime(p.LastUsedAt)
	return &c
}

// CreatePasskey implements auth.FactorStore.
func (st *Store) CreatePasskey(ctx context.Context, p *models.Passkey) error {
	if err := st.lock(ctx); err != nil {
		return err
	}
	defer st.mu.Unlock()
	if st.users[p.UserID] == nil {
		return errors.New("memstore: passkey of an unknown user")
	}
	if _, taken := st.passkeys[p.ID]; taken {
		return errors.New("memstore: duplicate passkey id")
	}
	for _, o := range st.passkeys {
		if string(o.CredentialID) == string(p.CredentialID) {
			return auth.ErrConflict
		}
	}
	st.passkeys[p.ID] = clonePasskey(p)
	return nil
}

// Passkeys implements auth.FactorStore.
func (st *Store) Passkeys(ctx context.Context, userID string) ([]models.Passkey, error) {
	if err := st.lock(ctx); err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	list := []models.Passkey{}
	for _, p := range st.passkeys {
		if p.UserID == userID {
			list = append(list, *clonePasskey(p))
		}
	}
	slices.SortFunc(list, func(a, b models.Passkey) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return list, nil
}

// PasskeyByCredentialID implements auth.FactorStore.
func (st *Store) PasskeyByCredentialID(ctx context.Context, credentialID []byte) (*models.Passkey, error) {
	if err := st.lock(ctx); err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	for _, p := range st.passkeys {
		if string(p.CredentialID) != string(credentialID) {
			continue
		}
		u := st.liveUser(p.UserID)
		if u == nil {
			return nil, auth.ErrNotFound
		}
		c := clonePasskey(p)
		c.User = cloneUser(u)
		return c, nil
	}
	return nil, auth.ErrNotFound
}

// UsePasskey implements auth.FactorStore.
func (st *Store) UsePasskey(ctx context.Context, id string, oldCount, newCount int64, credential string, at time.Time) error {
	if err := st.lock(ctx); err != nil {
		return err
	}
	defer st.mu.Unlock()
	p := st.passkeys[id]
	if p == nil || p.SignCount != oldCount {
		return auth.ErrConflict
	}
	p.SignCount, p.Credential, p.LastUsedAt = newCount, credential, &at
	return nil
}

// DeletePasskey implements auth.FactorStore.
func (st *Store) DeletePasskey(ctx context.Context, userID, id string) (bool, error) {
	if err := st.lock(ctx); err != nil {
		return false, err
	}
	defer st.mu.Unlock()
	p := st.passkeys[id]
	if p == nil || p.UserID != userID {
		return false, nil
	}
	delete(st.passkeys, id)
	return true, nil
}
