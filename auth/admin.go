package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"gqlauth/models"
	"gqlauth/password"
)

// AdminStore is the persistence the Admin needs. store.DB implements it on SQLite and Postgres.
type AdminStore interface {
	// UserByEmail returns ErrNotFound when there is no such user (a deleted user is none).
	UserByEmail(ctx context.Context, email string) (*models.User, error)
	// CreateUserOnly stores a user without a session. It returns ErrEmailTaken when the e-mail is
	// already registered.
	CreateUserOnly(ctx context.Context, u *models.User) error
	// SetRole changes a user's role. It returns ErrNotFound when there is no such user.
	SetRole(ctx context.Context, userID string, role models.Role) error
	// RevokeSessions is Store.RevokeSessions.
	RevokeSessions(ctx context.Context, f SessionFilter, now func() time.Time) ([]string, time.Time, error)
	// DeleteUser revokes every live session of the user and marks the account deleted (its e-mail
	// freed, its password hash erased), in one transaction, at a time read from now inside it. It
	// returns the revoked session ids, or ErrNotFound when there is no such (undeleted) user.
	DeleteUser(ctx context.Context, userID string, now func() time.Time) ([]string, error)
	// Purge deletes sessions and refresh tokens that expired or were revoked before before, and users
	// deleted before before, at most batch rows per statement. It returns the rows deleted, also when
	// it fails part-way.
	Purge(ctx context.Context, before time.Time, batch int) (int64, error)
	// DisableTOTP is FactorStore.DisableTOTP.
	DisableTOTP(ctx context.Context, userID string, at time.Time) error
}

// AdminOptions configure an Admin. Give it the server's settings: the same password parameters, and
// the same Broadcaster (the Redis fan-out when REDIS_URL is set) so that its revocations reach the
// running instances at once.
type AdminOptions struct {
	Password password.Params  // the argon2id parameters of new passwords
	Now      func() time.Time // nil means time.Now
	Logger   *slog.Logger     // the audit lines; nil means slog.Default()
	// OnEvent, if set, is called after every admin event, like Options.OnEvent.
	OnEvent func(context.Context, Event)
	// Broadcaster, if set, announces every revocation to the running instances, like the Service's.
	Broadcaster Broadcaster
}

// Admin carries out administrators' changes (authctl's user commands) under the same rules as the
// Service: e-mail and password normalisation and validation, NFC password hashing, an audit event for
// every change, and every revocation published through the Broadcaster. Nothing it does is rate
// limited: its caller is trusted.
//
// It is a type of its own rather than methods on Service because it needs none of the Service's
// machinery (a token issuer and its signing keys, the dummy hash computed at start, the revocation
// poller), which authctl would otherwise have to load or start for a one-shot command. It is safe for
// concurrent use.
type Admin struct {
	store AdminStore
	opts  AdminOptions
	now   func() time.Time
	log   *slog.Logger
}

// NewAdmin returns an Admin over store.
func NewAdmin(store AdminStore, opts AdminOptions) *Admin {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	clock := opts.Now
	return &Admin{
		store: store,
		opts:  opts,
		// Microseconds, as the Service: what Postgres stores, so a time read back equals the one written.
		now: func() time.Time { return clock().UTC().Truncate(time.Microsecond) },
		log: opts.Logger,
	}
}

// UserByEmail finds the account of an e-mail address as a login does: under its canonical form or,
// failing that, under the form it was stored in before addresses were canonicalised. It returns a
// *ValidationError for an address that is not one and ErrNotFound when there is no such user.
func (a *Admin) UserByEmail(ctx context.Context, email string) (*models.User, error) {
	canonical, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	u, err := a.store.UserByEmail(ctx, canonical)
	if legacy := LegacyEmail(email); errors.Is(err, ErrNotFound) && legacy != canonical {
		u, err = a.store.UserByEmail(ctx, legacy)
	}
	return u, err
}

// CreateUser creates an account without a session, with the checks of Register but no rate limit. It
// returns the new user (without its password hash), a *ValidationError for a bad e-mail, password or
// role, or ErrEmailTaken when the e-mail is registered.
func (a *Admin) CreateUser(ctx context.Context, email, pw string, role models.Role) (*models.User, error) {
	raw := email
	email, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if !role.IsValid() {
		return nil, &ValidationError{Field: "role", Message: fmt.Sprintf("must be %s or %s", models.RoleUser, models.RoleAdmin)}
	}
	pw = NormalizePassword(pw) // hashed in NFC, as logins verify
	if err := ValidatePassword("password", pw); err != nil {
		return nil, err
	}
	if legacy := LegacyEmail(raw); legacy != email {
		// An account stored before addresses were canonicalised may hold this address in another form.
		if _, err := a.store.UserByEmail(ctx, legacy); err == nil {
			return nil, ErrEmailTaken
		}
	}
	hash, err := password.Hash(pw, a.opts.Password)
	if err != nil {
		return nil, err
	}
	now := a.now()
	u := &models.User{ID: uuid.NewString(), Email: email, PasswordHash: hash, Role: role, CreatedAt: now, UpdatedAt: now}
	if err := a.store.CreateUserOnly(ctx, u); err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	u.PasswordHash = ""
	a.emit(ctx, Event{Kind: EventAdminCreateUser, Outcome: OutcomeOK, UserID: u.ID, Role: role})
	return u, nil
}

// SetRole changes a user's role. Access tokens already issued keep the old role until they are
// refreshed; RevokeSessions forces a new login. It returns a *ValidationError for a bad role and
// ErrNotFound when there is no such user.
func (a *Admin) SetRole(ctx context.Context, userID string, role models.Role) error {
	if !role.IsValid() {
		return &ValidationError{Field: "role", Message: fmt.Sprintf("must be %s or %s", models.RoleUser, models.RoleAdmin)}
	}
	if err := a.store.SetRole(ctx, userID, role); err != nil {
		return fmt.Errorf("set role: %w", err)
	}
	a.emit(ctx, Event{Kind: EventAdminSetRole, Outcome: OutcomeOK, UserID: userID, Role: role})
	return nil
}

// RevokeSessions revokes every live session of a user and returns how many it revoked. Running
// instances refuse the sessions' access tokens at once through the Broadcaster, or at their next
// revocation poll without one.
func (a *Admin) RevokeSessions(ctx context.Context, userID string) (int, error) {
	ids, _, err := a.store.RevokeSessions(ctx, SessionFilter{UserID: userID}, a.now)
	if err != nil {
		return 0, fmt.Errorf("revoke sessions: %w", err)
	}
	publish(ctx, a.opts.Broadcaster, userID, ids, a.log)
	a.emit(ctx, Event{Kind: EventAdminRevokeSessions, Outcome: OutcomeOK, UserID: userID, Revoked: len(ids)})
	return len(ids), nil
}

// DeleteUser deletes an account: in one transaction it revokes every live session of the user, frees
// the e-mail and erases the password hash (see AdminStore.DeleteUser); the revocations are published
// like RevokeSessions'. The row and its revoked sessions stay until Purge removes them after the
// retention, so that instances keep refusing the user's access tokens. It returns how many sessions
// it revoked, or ErrNotFound when there is no such user.
func (a *Admin) DeleteUser(ctx context.Context, userID string) (int, error) {
	ids, err := a.store.DeleteUser(ctx, userID, a.now)
	if err != nil {
		return 0, fmt.Errorf("delete user: %w", err)
	}
	publish(ctx, a.opts.Broadcaster, userID, ids, a.log)
	a.emit(ctx, Event{Kind: EventAdminDeleteUser, Outcome: OutcomeOK, UserID: userID, Revoked: len(ids)})
	return len(ids), nil
}

// Purge deletes what nothing needs any more (see AdminStore.Purge), at most batch rows per statement,
// and returns the number of rows deleted, also when it fails part-way. before must be in the past by
// more than the access-token lifetime plus a revocation poll (JANITOR_RETENTION's floor): a revoked
// session must outlive its access tokens. Rows deleted by a purge that failed part-way are reported
// in a failed event.
func (a *Admin) Purge(ctx context.Context, before time.Time, batch int) (int64, error) {
	n, err := a.store.Purge(ctx, before, batch)
	switch {
	case err == nil:
		a.emit(ctx, Event{Kind: EventAdminPurge, Outcome: OutcomeOK, Deleted: n})
	case n > 0:
		a.emit(ctx, Event{Kind: EventAdminPurge, Outcome: OutcomeFailed, Deleted: n})
	}
	return n, err // the store's error names the step that failed
}

// DisableTOTP turns a user's TOTP off and deletes their recovery codes, for a user who lost both the
// authenticator and the recovery codes (after the operator has verified who is asking, out of band).
// Their sessions are left alone; their next login needs the password only. It returns ErrConflict
// when TOTP is not on.
func (a *Admin) DisableTOTP(ctx context.Context, userID string) error {
	if err := a.store.DisableTOTP(ctx, userID, a.now()); err != nil {
		return fmt.Errorf("disable TOTP: %w", err)
	}
	a.emit(ctx, Event{Kind: EventAdminDisableTOTP, Outcome: OutcomeOK, UserID: userID})
	return nil
}

func (a *Admin) emit(ctx context.Context, e Event) { emit(ctx, a.log, a.opts.OnEvent, e) }
