package auth

import (
	"context"
	"time"

	"gqlauth/models"
)

// PasskeyChallengeTTL is how long a passkey ceremony (registration or login) may take.
const PasskeyChallengeTTL = 5 * time.Minute

// Passkeys lists the caller's passkeys, oldest first.
func (s *Service) Passkeys(ctx context.Context, p *Principal) ([]models.Passkey, error) {
	return nil, errNotImplemented
}

// BeginPasskeyRegistration returns the PublicKeyCredentialCreationOptions (JSON) of a new passkey
// for the caller.
func (s *Service) BeginPasskeyRegistration(ctx context.Context, p *Principal) ([]byte, error) {
	return nil, errNotImplemented
}

// FinishPasskeyRegistration verifies the new credential (JSON) against the caller's latest
// registration ceremony and stores it.
func (s *Service) FinishPasskeyRegistration(ctx context.Context, p *Principal, credential []byte, name string) (*models.Passkey, error) {
	return nil, errNotImplemented
}

// BeginPasskeyLogin starts a discoverable passkey login: the ceremony's id and its
// PublicKeyCredentialRequestOptions (JSON).
func (s *Service) BeginPasskeyLogin(ctx context.Context, c Client) (challengeID string, options []byte, err error) {
	return "", nil, errNotImplemented
}

// FinishPasskeyLogin verifies an assertion (JSON) for the ceremony challengeID and opens a session.
func (s *Service) FinishPasskeyLogin(ctx context.Context, challengeID string, credential []byte, c Client) (*Pair, error) {
	return nil, errNotImplemented
}

// DeletePasskey deletes one of the caller's passkeys; false when the caller has none with this id.
func (s *Service) DeletePasskey(ctx context.Context, p *Principal, id string) (bool, error) {
	return false, errNotImplemented
}

// verifyPasskey checks an assertion (JSON) for the passkey ceremony challengeID, consumes the
// ceremony, moves the passkey's sign counter on and returns its user. Every failure is
// ErrInvalidPasskey (or an internal/unavailable error of the store). Used by FinishPasskeyLogin and
// Reauthenticate.
func (s *Service) verifyPasskey(ctx context.Context, challengeID string, credential []byte) (*models.User, error) {
	return nil, ErrInvalidPasskey
}
