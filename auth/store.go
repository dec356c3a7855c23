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
	// UserByEmail and UserByID return ErrNotFound when there is no such user (a deleted user is none).
	UserByEmail(ctx context.Context, email string) (*models.User, error)
	UserByID(ctx context.Context, id string) (*models.User, error)
	// SetPasswordHash replaces a user's password hash with newHash only while it is still oldHash
	// (rehash on login), so that it can never put back a password that a concurrent change replaced.
	// It returns ErrConflict, writing nothing, otherwise.
	SetPasswordHash(ctx context.Context, userID, oldHash, newHash string, at time.Time) error

	// CreateSession stores a new session and its first refresh token, in one transaction that first
	// checks that the user's credentials are still those the login verified (c.CredentialsVersion) and
	// holds them (a shared row lock on Postgres) until it commits, so that a password change either
	// commits first (and the session is not created: ErrConflict) or sees the session and revokes it.
	// Then it revokes the user's oldest live sessions beyond c.MaxSessions (0: no cap) at a time read
	// from c.Now inside the transaction, and returns their ids and that time.
	CreateSession(ctx context.Context, s *models.Session, t *models.RefreshToken, c SessionCheck) ([]string, time.Time, error)
	// SessionByID returns ErrNotFound when there is no such session.
	SessionByID(ctx context.Context, id string) (*models.Session, error)
	// Sessions lists a user's sessions that are neither revoked nor expired at now, newest first.
	Sessions(ctx context.Context, userID string, now time.Time) ([]models.Session, error)
	// RefreshTokenByHash returns the token with its Session and User loaded, or ErrNotFound.
	RefreshTokenByHash(ctx context.Context, hash []byte) (*models.RefreshToken, error)
	// Rotate extends the session and stores r.New as its only live refresh token; see Rotation. It
	// returns ErrConflict, writing nothing, when the session is no longer live, (with r.RetireOld) the
	// old token was already retired, or (without) the old token has been revoked.
	Rotate(ctx context.Context, r Rotation) error
	// RevokeSessions revokes the live sessions that f selects, and their refresh tokens, at a time read
	// from now inside the transaction (see RevocationCommitBudget), and returns the ids of the sessions
	// it revoked (already revoked ones are not returned) and that time.
	RevokeSessions(ctx context.Context, f SessionFilter, now func() time.Time) ([]string, time.Time, error)
	// ChangePassword stores the new hash if the credentials are still c.CredentialsVersion (and moves
	// the version on), revokes every other session of the user and every refresh token of the kept
	// session (no grace applies to them), and stores c.New as the kept session's only live token. It
	// returns the revoked session ids and the revocation time (read from c.Clock inside the
	// transaction), or ErrConflict, writing nothing, when the credentials changed meanwhile or the
	// kept session is no longer live.
	ChangePassword(ctx context.Context, c PasswordChange) ([]string, time.Time, error)

	// RevokedSince returns the sessions revoked after since, with their users (for the revocation
	// cache and the live session events).
	RevokedSince(ctx context.Context, since time.Time) ([]Revocation, error)
	// SessionsCreatedSince returns the sessions of the given users created after since, revoked or
	// not (the live session events' poll: sessions.user_id is indexed). Callers batch userIDs.
	SessionsCreatedSince(ctx context.Context, userIDs []string, since time.Time) ([]SessionStart, error)
	// CredentialsVersions returns users.credentials_version of the given users that exist and are
	// not deleted (the live session events' poll, for PASSWORD_CHANGED). Callers batch userIDs.
	CredentialsVersions(ctx context.Context, userIDs []string) (map[string]int64, error)
	// SessionRevoked reports whether a session is revoked or gone.
	SessionRevoked(ctx context.Context, id string) (bool, error)
}

// Broadcaster carries revocations and live session events to the other instances at once (Redis
// pub/sub), so they need not wait for their next database poll. Delivery is best effort; polling
// stays the guarantee.
type Broadcaster interface {
	// Publish announces one message to every instance.
	Publish(ctx context.Context, m Broadcast) error
	// Subscribe calls deliver with the messages every instance publishes (this one's included) until
	// ctx ends, reconnecting as needed.
	Subscribe(ctx context.Context, deliver func(Broadcast))
}

// Broadcast is one fan-out message: sessions revoked (SessionIDs, all of the account UserID), or a
// live session event other than a revocation (Event: SESSION_CREATED or PASSWORD_CHANGED).
type Broadcast struct {
	// UserID is the account of SessionIDs; "" when the message came from an instance of a version
	// that did not send it (a rollout), in which case the receiver learns the account by polling.
	UserID     string
	SessionIDs []string
	Event      *SessionEvent
}

// RevocationCommitBudget bounds how long a transaction that revokes sessions may run after reading
// its revocation time: the store rolls it back otherwise. Other instances poll for revocations by
// that time, re-reading the last pollOverlap (which covers this budget plus clock skew), so a
// revocation can never commit so late that their polls have already moved past its timestamp.
const RevocationCommitBudget = 3 * time.Second

// SessionCheck is what Store.CreateSession checks and enforces when a login opens a session.
type SessionCheck struct {
	CredentialsVersion int64            // the users.credentials_version whose password was verified
	MaxSessions        int              // live sessions kept per user, the new one included; 0: no cap
	Now                func() time.Time // the revocation time of evicted sessions, read in the transaction
}

// Rotation is one refresh: the session's expiry moves to ExpiresAt and New becomes its only live
// token, so that a session never has two chains that reuse detection would have to follow.
type Rotation struct {
	SessionID string
	// OldID is the token presented. With RetireOld (a normal refresh) the store marks it rotated, and
	// only if it was neither rotated nor revoked: that conditional update is what makes concurrent
	// refreshes of one token race-safe without SELECT … FOR UPDATE. Without RetireOld (a retry inside
	// the reuse grace) the old token must not have been revoked since it was read (changePassword
	// revokes), and every live token of the session is retired before New is stored.
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
	SessionIDs      []string // nil: no filter
}

// PasswordChange is the input of Store.ChangePassword.
type PasswordChange struct {
	UserID             string
	CredentialsVersion int64 // the version whose current password was verified
	Hash               string
	KeepSessionID      string
	New                *models.RefreshToken
	Now                time.Time        // updated_at and the kept session's last use
	ExpiresAt          time.Time        // the kept session's new expiry
	Clock              func() time.Time // the revocation time, read inside the transaction
}

// Revocation is a revoked session, as the revocation cache sees it.
type Revocation struct {
	ID        string
	UserID    string
	RevokedAt time.Time
}

// SessionStart is a session's creation, as the live session events' poll sees it.
type SessionStart struct {
	ID        string
	UserID    string
	CreatedAt time.Time
}
