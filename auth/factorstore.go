package auth

import (
	"context"
	"time"

	"gqlauth/models"
)

// The authentication methods recorded on sessions and put in access tokens' amr claim (RFC 8176).
const (
	AMRPassword = "pwd"      // the account's password
	AMROTP      = "otp"      // a TOTP code or a recovery code
	AMRWebAuthn = "webauthn" // a passkey, with user verification
)

// FactorStore is the persistence of second factors and passkeys: the TOTP secret on the users row,
// recovery codes, the short-lived challenges of MFA logins and passkey ceremonies, and passkeys.
// store.DB implements it on SQLite and Postgres; every method that writes more than one row does so
// in one transaction, and every "only if" is one conditional write, so that concurrent requests
// cannot both pass it.
type FactorStore interface {
	// SetPendingTOTP stores sealed as the user's TOTP secret, pending (replacing a pending one).
	// It returns ErrConflict, writing nothing, when TOTP is already enabled.
	SetPendingTOTP(ctx context.Context, userID string, sealed []byte, at time.Time) error
	// EnableTOTP turns TOTP on, only while the pending secret is still sealed (no newer enrolment
	// replaced it) and TOTP is off: it records step as the last accepted step and replaces the user's
	// recovery codes with codes. It returns ErrConflict, writing nothing, otherwise.
	EnableTOTP(ctx context.Context, userID string, sealed []byte, step int64, codes []models.RecoveryCode, at time.Time) error
	// UseTOTPStep records step as the user's last accepted TOTP step, only if TOTP is enabled and step
	// is later than the one recorded: it returns ErrConflict otherwise (a replayed code, or the same
	// code used by a concurrent request).
	UseTOTPStep(ctx context.Context, userID string, step int64) error
	// DisableTOTP clears the user's TOTP secret and deletes their recovery codes. It returns
	// ErrConflict when TOTP is not enabled.
	DisableTOTP(ctx context.Context, userID string, at time.Time) error
	// UseRecoveryCode marks the user's unused recovery code whose hash is hash as used, or returns
	// ErrNotFound (unknown or already used; of two concurrent uses, one gets ErrNotFound).
	UseRecoveryCode(ctx context.Context, userID string, hash []byte, at time.Time) error
	// ReplaceRecoveryCodes deletes every recovery code of the user and stores codes, only while TOTP
	// is enabled (ErrConflict otherwise).
	ReplaceRecoveryCodes(ctx context.Context, userID string, codes []models.RecoveryCode) error

	// CreateChallenge stores a challenge.
	CreateChallenge(ctx context.Context, c *models.AuthChallenge) error
	// ChallengeByTokenHash and ChallengeByID return ErrNotFound when there is no such challenge
	// (used and expired ones are returned: the caller checks).
	ChallengeByTokenHash(ctx context.Context, hash []byte) (*models.AuthChallenge, error)
	ChallengeByID(ctx context.Context, id string) (*models.AuthChallenge, error)
	// LatestChallenge returns the user's newest unused, unexpired (at) challenge of kind, or ErrNotFound.
	LatestChallenge(ctx context.Context, userID string, kind models.ChallengeKind, at time.Time) (*models.AuthChallenge, error)
	// ConsumeChallenge marks the challenge used, only if it is unused and unexpired at at; it returns
	// ErrConflict otherwise (of two concurrent consumers, exactly one succeeds).
	ConsumeChallenge(ctx context.Context, id string, at time.Time) error
	// FailChallenge counts one wrong answer to an unused challenge and returns the attempts so far; at
	// maxAttempts it also marks the challenge used, so that it can never succeed after.
	FailChallenge(ctx context.Context, id string, maxAttempts int, at time.Time) (int, error)

	// CreatePasskey stores a passkey; ErrConflict when its credential id is registered already.
	CreatePasskey(ctx context.Context, p *models.Passkey) error
	// Passkeys lists the user's passkeys, oldest first.
	Passkeys(ctx context.Context, userID string) ([]models.Passkey, error)
	// PasskeyByCredentialID returns the passkey with the User loaded, or ErrNotFound (also for a
	// deleted user's).
	PasskeyByCredentialID(ctx context.Context, credentialID []byte) (*models.Passkey, error)
	// UsePasskey records a use: SignCount becomes newCount, Credential credential and LastUsedAt at,
	// only while SignCount is still oldCount (ErrConflict otherwise: a concurrent use moved it).
	UsePasskey(ctx context.Context, id string, oldCount, newCount int64, credential string, at time.Time) error
	// DeletePasskey deletes the user's passkey id and reports whether there was one.
	DeletePasskey(ctx context.Context, userID, id string) (bool, error)

	// Reauthenticate records a new authentication of a live session (see Reauthentication). It
	// returns ErrConflict, writing nothing, when the session is no longer live.
	Reauthenticate(ctx context.Context, r Reauthentication) error
}

// Reauthentication is the input of FactorStore.Reauthenticate: the session's AMR and AuthTime move
// to the new authentication, every refresh token of the session is revoked (no grace) and New becomes
// its only live token, so the fresh pair returned is the session's one chain.
type Reauthentication struct {
	SessionID string
	UserID    string
	AMR       string
	AuthTime  time.Time
	New       *models.RefreshToken
	Now       time.Time // the session's last use and the revocation time of its old tokens
	ExpiresAt time.Time // the session's new expiry
}
