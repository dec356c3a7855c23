package auth

import (
	"context"
	"time"

	"gqlauth/models"
)

// Store is the persistence the service needs. store.DB implements it on SQLite and Postgres.
// Every method that writes more than one row does so in one transaction.
type Store interface {
	// CreateUser stores a new user together with its first session and refresh token.
	// It returns ErrEmailTaken when the e-mail is already registered.
	CreateUser(ctx context.Context, u *models.User, s *models.Session, t *models.RefreshToken) error
	// UserByEmail and UserByID return ErrNotFound when there is no such user.
	UserByEmail(ctx context.Context, email string) (*models.User, error)
	UserByID(ctx context.Context, id string) (*models.User, error)
	// SetPasswordHash replaces a user's password hash (rehash on login).
	SetPasswordHash(ctx context.Context, userID, hash string, at time.Time) error

	// CreateSession stores a new session and its first refresh token.
	CreateSession(ctx context.Context, s *models.Session, t *models.RefreshToken) error
	// SessionByID returns ErrNotFound when there is no such session.
	SessionByID(ctx context.Context, id string) (*models.Session, error)
	// Sessions lists a user's sessions that are neither revoked nor expired at now, newest first.
	Sessions(ctx context.Context, userID string, now time.Time) ([]models.Session, error)
	// RefreshTokenByHash returns the token with its Session and User loaded, or ErrNotFound.
	RefreshTokenByHash(ctx context.Context, hash []byte) (*models.RefreshToken, error)
	// Rotate extends the session and stores r.New; see Rotation. It returns ErrConflict, writing
	// nothing, when the session is no longer live or (with r.RetireOld) the old token was already retired.
	Rotate(ctx context.Context, r Rotation) error
	// RevokeSessions revokes the live sessions that f selects, and their refresh tokens, and returns
	// the ids of the sessions it revoked (already revoked ones are not returned).
	RevokeSessions(ctx context.Context, f SessionFilter, at time.Time) ([]string, error)
	// ChangePassword stores the new hash, revokes every other session of the user, retires the kept
	// session's refresh tokens and stores c.New for it. It returns the revoked session ids, or
	// ErrConflict, writing nothing, when the kept session is no longer live.
	ChangePassword(ctx context.Context, c PasswordChange) ([]string, error)

	// RevokedSince returns the sessions revoked after since (for the revocation cache).
	RevokedSince(ctx context.Context, since time.Time) ([]Revocation, error)
	// SessionRevoked reports whether a session is revoked or gone.
	SessionRevoked(ctx context.Context, id string) (bool, error)
}

// Broadcaster carries revocations to the other instances at once (Redis pub/sub), so they need not
// wait for their next database poll. Delivery is best effort; polling stays the guarantee.
type Broadcaster interface {
	// Publish announces revoked session ids.
	Publish(ctx context.Context, sessionIDs []string) error
	// Subscribe calls deliver with the ids every instance publishes (this one's included) until ctx
	// ends, reconnecting as needed.
	Subscribe(ctx context.Context, deliver func(sessionIDs []string))
}

// Rotation is one refresh: the session's expiry moves to ExpiresAt and New becomes its latest token.
type Rotation struct {
	SessionID string
	// OldID is the token presented. With RetireOld the store marks it rotated, and only if it was
	// neither rotated nor revoked: that conditional update is what makes concurrent refreshes of one
	// token race-safe without SELECT … FOR UPDATE. Without RetireOld (a retry inside the reuse grace)
	// the old token is left as it is.
	OldID     uint64
	RetireOld bool
	New       *models.RefreshToken
	Now       time.Time
	ExpiresAt time.Time
	UserAgent *string
	IP        *string
}

// SessionFilter selects sessions to revoke; empty fields do not filter. Only live sessions
// (not revoked, not expired at the revocation time) are selected.
type SessionFilter struct {
	UserID          string
	SessionID       string
	ExceptSessionID string
}

// PasswordChange is the input of Store.ChangePassword.
type PasswordChange struct {
	UserID        string
	Hash          string
	KeepSessionID string
	New           *models.RefreshToken
	Now           time.Time
	ExpiresAt     time.Time
}

// Revocation is a revoked session, as the revocation cache sees it.
type Revocation struct {
	ID        string
	RevokedAt time.Time
}
