package auth

import (
	"errors"
	"time"
)

// The kinds of failure the service reports. graph/errors.go turns each into a GraphQL extensions.code;
// anything not listed here is an internal error whose details stay in the server log.
var (
	// ErrTokenMissing: a protected field was called without an access token.
	ErrTokenMissing = errors.New("auth: access token missing")
	// ErrTokenInvalid: the access token is malformed, forged, or not ours.
	ErrTokenInvalid = errors.New("auth: access token invalid")
	// ErrTokenExpired: the access token is authentic but expired; a refresh can help.
	ErrTokenExpired = errors.New("auth: access token expired")
	// ErrSessionRevoked: the access token's session was revoked; only a new login helps.
	ErrSessionRevoked = errors.New("auth: session revoked")
	// ErrForbidden: the caller's role is too low.
	ErrForbidden = errors.New("auth: forbidden")
	// ErrInvalidCredentials: unknown e-mail or wrong password, deliberately indistinguishable.
	ErrInvalidCredentials = errors.New("auth: invalid credentials")
	// ErrRefreshTokenInvalid: the refresh token is unknown, expired, revoked or reused.
	ErrRefreshTokenInvalid = errors.New("auth: invalid refresh token")
	// ErrEmailTaken: an account with that e-mail already exists.
	ErrEmailTaken = errors.New("auth: email taken")
	// ErrInvalidEmailToken: a password-reset or e-mail-verification token that is unknown, expired,
	// already used, superseded by a newer one, or meant for another purpose (all alike).
	ErrInvalidEmailToken = errors.New("auth: invalid email token")
	// ErrEmailNotVerified: the password is right but the account's address is not verified yet, and
	// the service requires it (Options.RequireEmailVerification).
	ErrEmailNotVerified = errors.New("auth: email not verified")

	// ErrMFARequired matches (errors.Is) every *MFARequiredError: the password was right and the
	// account has TOTP on, so the login continues with VerifyMFA.
	ErrMFARequired = errors.New("auth: second factor required")
	// ErrInvalidMFACode: a TOTP or recovery code that is wrong or already used.
	ErrInvalidMFACode = errors.New("auth: invalid MFA code")
	// ErrInvalidMFAChallenge: an MFA challenge that is unknown, expired, used, or spent by five wrong codes.
	ErrInvalidMFAChallenge = errors.New("auth: invalid MFA challenge")
	// ErrInvalidPasskey: any refused passkey ceremony (replay, wrong origin or challenge, bad
	// signature, unknown, deleted or cloned credential, user verification missing), all alike.
	ErrInvalidPasskey = errors.New("auth: invalid passkey")
	// ErrReauthenticationRequired matches every *ReauthenticationRequiredError.
	ErrReauthenticationRequired = errors.New("auth: reauthentication required")

	// ErrUnavailable: a dependency (the database) could not be reached or broke off; the operation
	// was not carried out, or its outcome is unknown to the server, and a retry is the remedy. A Store
	// wraps such errors with it (errors.Is matches; the driver's error stays in the chain for logs).
	ErrUnavailable = errors.New("auth: service unavailable")

	// ErrNotFound is returned by a Store when no row matches.
	ErrNotFound = errors.New("auth: not found")
	// ErrConflict is returned by a Store when a conditional write matched no row: another request
	// rotated the token or revoked the session first.
	ErrConflict = errors.New("auth: conflict")
)

// ErrRateLimited matches (errors.Is) every *RateLimitedError.
var ErrRateLimited = errors.New("auth: rate limited")

// RateLimitedError reports too many attempts for an account or from an address; RetryAfter says when
// the window ends.
type RateLimitedError struct {
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	return "auth: rate limited, retry after " + e.RetryAfter.String()
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitedError) Is(target error) bool { return target == ErrRateLimited }

// ValidationError reports an invalid argument; Field names it as the client sent it.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return "auth: invalid " + e.Field + ": " + e.Message }

// MFARequiredError is a login whose password was right for an account with a second factor:
// Challenge (opaque, single use, valid MFAChallengeTTL) and a code finish it through VerifyMFA.
type MFARequiredError struct {
	Challenge string
}

func (e *MFARequiredError) Error() string { return "auth: second factor required" }

// Is makes errors.Is(err, ErrMFARequired) true.
func (e *MFARequiredError) Is(target error) bool { return target == ErrMFARequired }

// ReauthenticationRequiredError is a field that needs an authentication no older than MaxAge.
type ReauthenticationRequiredError struct {
	MaxAge time.Duration
}

func (e *ReauthenticationRequiredError) Error() string {
	return "auth: reauthentication required (older than " + e.MaxAge.String() + ")"
}

// Is makes errors.Is(err, ErrReauthenticationRequired) true.
func (e *ReauthenticationRequiredError) Is(target error) bool {
	return target == ErrReauthenticationRequired
}
