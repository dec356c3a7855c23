package auth

import (
	"context"
	"errors"
	"time"
)

// MFAChallengeTTL is how long the challenge of a login waiting for its second factor works.
// MFAMaxAttempts wrong codes end a challenge.
const (
	MFAChallengeTTL = 5 * time.Minute
	MFAMaxAttempts  = 5
)

// TOTPEnrollment is a pending TOTP secret, for the authenticator app.
type TOTPEnrollment struct {
	Secret string // base32, no padding
	URI    string // otpauth://totp/...
}

// ReauthInput is what reauthenticate presents: the password (with Code when TOTP is on), or a
// passkey assertion (ChallengeID from BeginPasskeyLogin and Credential, the assertion's JSON).
type ReauthInput struct {
	Password    *string
	Code        *string
	ChallengeID *string
	Credential  []byte
}

var errNotImplemented = errors.New("auth: not implemented yet")

// StartTOTPEnrollment makes a new pending TOTP secret for the caller.
func (s *Service) StartTOTPEnrollment(ctx context.Context, p *Principal) (*TOTPEnrollment, error) {
	return nil, errNotImplemented
}

// ConfirmTOTPEnrollment turns TOTP on with a code of the pending secret and returns the recovery codes.
func (s *Service) ConfirmTOTPEnrollment(ctx context.Context, p *Principal, code string) ([]string, error) {
	return nil, errNotImplemented
}

// DisableTOTP turns TOTP off with a TOTP or recovery code.
func (s *Service) DisableTOTP(ctx context.Context, p *Principal, code string) error {
	return errNotImplemented
}

// RegenerateRecoveryCodes replaces the caller's recovery codes.
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, p *Principal, code string) ([]string, error) {
	return nil, errNotImplemented
}

// VerifyMFA finishes a login that returned an *MFARequiredError.
func (s *Service) VerifyMFA(ctx context.Context, challenge, code string, c Client) (*Pair, error) {
	return nil, errNotImplemented
}

// Reauthenticate renews the authentication of the caller's session and returns a fresh pair.
func (s *Service) Reauthenticate(ctx context.Context, p *Principal, in ReauthInput, c Client) (*Pair, error) {
	return nil, errNotImplemented
}
