package memstore

import (
	"context"
	"errors"
	"slices"
	"time"

	"gqlauth/auth"
	"gqlauth/models"
)

var _ auth.FactorStore = (*Store)(nil)

func cloneChallenge(c *models.AuthChallenge) *models.AuthChallenge {
	d := *c
	d.User = nil
	d.UserID = cloneString(c.UserID)
	d.TokenHash = slices.Clone(c.TokenHash)
	d.UsedAt = cloneTime(c.UsedAt)
	return &d
}

// CreateChallenge implements auth.FactorStore.
func (st *Store) CreateChallenge(ctx context.Context, c *models.AuthChallenge) error {
	if err := st.lock(ctx); err != nil {
		return err
	}
	defer st.mu.Unlock()
	if _, taken := st.challenges[c.ID]; taken {
		return errors.New("memstore: duplicate challenge id")
	}
	for _, o := range st.challenges {
		if c.TokenHash != nil && string(o.TokenHash) == string(c.TokenHash) {
			return errors.New("memstore: duplicate challenge token hash")
		}
	}
	if c.UserID != nil && st.users[*c.UserID] == nil {
		return errors.New("memstore: challenge of an unknown user")
	}
	st.challenges[c.ID] = cloneChallenge(c)
	return nil
}

// ChallengeByTokenHash implements auth.FactorStore.
func (st *Store) ChallengeByTokenHash(ctx context.Context, hash []byte) (*models.AuthChallenge, error) {
	if err := st.lock(ctx); err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	for _, c := range st.challenges {
		if c.TokenHash != nil && string(c.TokenHash) == string(hash) {
			return cloneChallenge(c), nil
		}
	}
	return nil, auth.ErrNotFound
}

// ChallengeByID implements auth.FactorStore.
func (st *Store) ChallengeByID(ctx context.Context, id string) (*models.AuthChallenge, error) {
	if err := st.lock(ctx); err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	if c := st.challenges[id]; c != nil {
		return cloneChallenge(c), nil
	}
	return nil, auth.ErrNotFound
}

// LatestChallenge implements auth.FactorStore.
func (st *Store) LatestChallenge(ctx context.Context, userID string, kind models.ChallengeKind, at time.Time) (*models.AuthChallenge, error) {
	if err := st.lock(ctx); err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	var best *models.AuthChallenge
	for _, c := range st.challenges {
		if c.UserID == nil || *c.UserID != userID || c.Kind != kind || c.UsedAt != nil || !c.ExpiresAt.After(at) {
			continue
		}
		if best == nil || c.CreatedAt.After(best.CreatedAt) || (c.CreatedAt.Equal(best.CreatedAt) && c.ID > best.ID) {
			best = c
		}
	}
	if best == nil {
		return nil, auth.ErrNotFound
	}
	return cloneChallenge(best), nil
}

// ConsumeChallenge implements auth.FactorStore.
func (st *Store) ConsumeChallenge(ctx context.Context, id string, at time.Time) error {
	if err := st.lock(ctx); err != nil {
		return err
	}
	defer st.mu.Unlock()
	c := st.challenges[id]
	if c == nil || c.UsedAt != nil || !c.ExpiresAt.After(at) {
		return auth.ErrConflict
	}
	c.UsedAt = &at
	return nil
}

// FailChallenge implements auth.FactorStore.
func (st *Store) FailChallenge(ctx context.Context, id string, maxAttempts int, at time.Time) (int, error) {
	if err := st.lock(ctx); err != nil {
		return 0, err
	}
	defer st.mu.Unlock()
	c := st.challenges[id]
	if c == nil || c.UsedAt != nil {
		return maxAttempts, nil
	}
	c.Attempts++
	if c.Attempts >= maxAttempts {
		c.UsedAt = &at
	}
	return c.Attempts, nil
}

// Reauthenticate implements auth.FactorStore.
func (st *Store) Reauthenticate(ctx context.Context, r auth.Reauthentication) error {
	if err := st.lock(ctx); err != nil {
		return err
	}
	defer st.mu.Unlock()
	s := st.sessions[r.SessionID]
	if s == nil || s.UserID != r.UserID || s.RevokedAt != nil || !s.ExpiresAt.After(r.Now) {
		return auth.ErrConflict
	}
	if err := st.checkToken(r.New); err != nil {
		return err
	}
	at := r.AuthTime
	s.AMR, s.AuthTime, s.LastUsedAt, s.ExpiresAt = r.AMR, &at, r.Now, r.ExpiresAt
	for _, t := range st.tokens {
		if t.SessionID == r.SessionID && t.RevokedAt == nil {
			now := r.Now
			t.RevokedAt = &now
		}
	}
	st.insertToken(r.New)
	return nil
}
