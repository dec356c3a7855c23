package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"gqlauth/models"
	"gqlauth/token"
)

// Second factors: TOTP (RFC 6238) with recovery codes, the MFA step of a login, and reauthenticate.
//
// The TOTP secret is sealed at rest (seal.go) and pending until a code of it confirms it. A code is
// accepted for the steps now-1, now and now+1 (30 s each), and only once: the store records the last
// accepted step and accepts a later one only (FactorStore.UseTOTPStep, a conditional write), so a
// code seen over a shoulder or replayed by a phishing proxy does not work a second time.
//
// A login with the right password of an account with TOTP on opens no session: it returns an
// *MFARequiredError with an opaque challenge (single use, MFAChallengeTTL, stored hashed), which
// VerifyMFA exchanges, with a TOTP or recovery code, for the session. Every second-factor check counts
// against Options.MFARate for the account (across challenges and clients) before the code is looked
// at; a right code takes its count back. Five wrong codes also end the challenge.

// RecoveryCodeCount is how many recovery codes an account gets.
const RecoveryCodeCount = 10

// The TOTP parameters: what every authenticator app supports (and the otpauth URI says).
const (
	totpPeriod = 30
	totpSkew   = 1 // steps accepted either side of now
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// maxCodeInput bounds a code before any work is done on it: a recovery code with its hyphens and
// some spaces is far shorter.
const maxCodeInput = 64

// errTOTPReplayed is a right TOTP code of a step already used: replayed, or used by a concurrent
// request (a double submit). It is an ErrInvalidMFACode, but not a guess, so it does not count
// against the challenge: otherwise a burst of identical submits could end the challenge before the
// one that won the code consumed it. It still counts against the account's MFARate.
var errTOTPReplayed = fmt.Errorf("%w (a used step)", ErrInvalidMFACode)

// errNoFactorStore is what the second-factor operations fail with without Options.Factors.
var errNoFactorStore = errors.New("auth: no factor store configured")

// recoveryEncoding writes recovery codes: base32 (RFC 4648: a-z and 2-7, so no 0/o or 1/l pairs)
// without padding, lower-cased.
var recoveryEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

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

// factors returns the FactorStore, or errNoFactorStore.
func (s *Service) factors() (FactorStore, error) {
	if s.opts.Factors == nil {
		return nil, errNoFactorStore
	}
	return s.opts.Factors, nil
}

// callerAccount returns the caller's account (ErrSessionRevoked when it is gone) and the FactorStore.
func (s *Service) callerAccount(ctx context.Context, op string, p *Principal) (*models.User, FactorStore, error) {
	fs, err := s.factors()
	if err != nil {
		return nil, nil, err
	}
	u, err := s.store.UserByID(ctx, p.UserID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, ErrSessionRevoked
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	return u, fs, nil
}

// mfaKey is the limiter key of an account's second-factor attempts (see limits.go).
func mfaKey(userID string) string { return "mfa:acct:" + userID }

var (
	errTOTPEnabled    = &ValidationError{Field: "totp", Message: "is already enabled; disable it first"}
	errTOTPNotEnabled = &ValidationError{Field: "totp", Message: "is not enabled"}
	errNoEnrollment   = &ValidationError{Field: "code", Message: "no TOTP enrolment is pending: call startTotpEnrollment"}
)

// StartTOTPEnrollment makes a new pending TOTP secret for the caller (replacing a pending one) and
// returns it with its otpauth URI. It returns a *ValidationError (field "totp") when TOTP is already
// on, and ErrSessionRevoked when the account is gone.
func (s *Service) StartTOTPEnrollment(ctx context.Context, p *Principal) (*TOTPEnrollment, error) {
	u, fs, err := s.callerAccount(ctx, "startTotpEnrollment", p)
	if err != nil {
		return nil, err
	}
	if u.TOTPEnabledAt != nil {
		return nil, errTOTPEnabled
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: s.opts.TOTPIssuer, AccountName: u.Email,
		Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1, SecretSize: 20,
	})
	if err != nil {
		return nil, fmt.Errorf("startTotpEnrollment: %w", err)
	}
	sealed, err := sealSecret(s.opts.TOTPKeys, u.ID, []byte(key.Secret()))
	if err != nil {
		return nil, fmt.Errorf("startTotpEnrollment: %w", err)
	}
	err = fs.SetPendingTOTP(ctx, u.ID, sealed, s.now())
	switch {
	case errors.Is(err, ErrConflict):
		return nil, errTOTPEnabled // turned on meanwhile
	case errors.Is(err, ErrNotFound):
		return nil, ErrSessionRevoked
	case err != nil:
		return nil, fmt.Errorf("startTotpEnrollment: %w", err)
	}
	s.emit(ctx, Event{Kind: EventTOTPEnrollment, Outcome: OutcomeOK, UserID: u.ID, SessionID: p.SessionID})
	return &TOTPEnrollment{Secret: key.Secret(), URI: key.URL()}, nil
}

// ConfirmTOTPEnrollment turns TOTP on with a code of the pending secret and returns the recovery
// codes, in clear this once. It returns ErrInvalidMFACode for a wrong code (or one of an enrolment
// replaced meanwhile), a *ValidationError (field "code") when no enrolment is pending and (field
// "totp") when TOTP is already on, and ErrSessionRevoked when the account is gone.
//
// Wrong codes here are not counted against MFARate: the caller holds the secret it is confirming, so
// there is nothing to guess, and a user fumbling the set-up must not lock their own logins.
func (s *Service) ConfirmTOTPEnrollment(ctx context.Context, p *Principal, code string) ([]string, error) {
	u, fs, err := s.callerAccount(ctx, "confirmTotpEnrollment", p)
	if err != nil {
		return nil, err
	}
	if u.TOTPEnabledAt != nil {
		return nil, errTOTPEnabled
	}
	if u.TOTPSecret == nil {
		return nil, errNoEnrollment
	}
	secret, err := openSecret(s.opts.TOTPKeys, u.ID, u.TOTPSecret)
	if err != nil {
		return nil, fmt.Errorf("confirmTotpEnrollment: user %s: %w", u.ID, err)
	}
	now := s.now()
	step, ok := matchTOTP(string(secret), code, now)
	if !ok {
		s.emit(ctx, Event{Kind: EventTOTPEnable, Outcome: OutcomeFailed, UserID: u.ID, SessionID: p.SessionID})
		return nil, ErrInvalidMFACode
	}
	plain, rows, err := newRecoveryCodes(u.ID, now)
	if err != nil {
		return nil, err
	}
	// Enabled with the secret as it was read: if another startTotpEnrollment replaced it meanwhile,
	// the code proved the old secret, not the one that would be enabled.
	if err := fs.EnableTOTP(ctx, u.ID, u.TOTPSecret, step, rows, now); errors.Is(err, ErrConflict) {
		return nil, ErrInvalidMFACode
	} else if err != nil {
		return nil, fmt.Errorf("confirmTotpEnrollment: %w", err)
	}
	s.users.drop(u.ID)
	s.emit(ctx, Event{Kind: EventTOTPEnable, Outcome: OutcomeOK, UserID: u.ID, SessionID: p.SessionID})
	return plain, nil
}

// DisableTOTP turns TOTP off with a TOTP or recovery code and deletes the recovery codes. It returns
// ErrInvalidMFACode for a wrong or used code, a *RateLimitedError past MFARate, a *ValidationError
// (field "totp") when TOTP is off, and ErrSessionRevoked when the account is gone.
func (s *Service) DisableTOTP(ctx context.Context, p *Principal, code string) error {
	u, fs, err := s.callerAccount(ctx, "disableTotp", p)
	if err != nil {
		return err
	}
	if u.TOTPEnabledAt == nil {
		return errTOTPNotEnabled
	}
	if err := s.secondFactor(ctx, fs, u, code, EventTOTPDisable, p.SessionID, ""); err != nil {
		return err
	}
	if err := fs.DisableTOTP(ctx, u.ID, s.now()); errors.Is(err, ErrConflict) {
		return errTOTPNotEnabled // turned off meanwhile
	} else if err != nil {
		return fmt.Errorf("disableTotp: %w", err)
	}
	s.users.drop(u.ID)
	s.emit(ctx, Event{Kind: EventTOTPDisable, Outcome: OutcomeOK, UserID: u.ID, SessionID: p.SessionID})
	return nil
}

// RegenerateRecoveryCodes replaces the caller's recovery codes (every old one stops working) with
// new ones, returned in clear this once. It returns what DisableTOTP does for the code and the state.
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, p *Principal, code string) ([]string, error) {
	u, fs, err := s.callerAccount(ctx, "regenerateRecoveryCodes", p)
	if err != nil {
		return nil, err
	}
	if u.TOTPEnabledAt == nil {
		return nil, errTOTPNotEnabled
	}
	if err := s.secondFactor(ctx, fs, u, code, EventRecoveryCodes, p.SessionID, ""); err != nil {
		return nil, err
	}
	now := s.now()
	plain, rows, err := newRecoveryCodes(u.ID, now)
	if err != nil {
		return nil, err
	}
	if err := fs.ReplaceRecoveryCodes(ctx, u.ID, rows); errors.Is(err, ErrConflict) {
		return nil, errTOTPNotEnabled
	} else if err != nil {
		return nil, fmt.Errorf("regenerateRecoveryCodes: %w", err)
	}
	s.users.drop(u.ID)
	s.emit(ctx, Event{Kind: EventRecoveryCodes, Outcome: OutcomeOK, UserID: u.ID, SessionID: p.SessionID})
	return plain, nil
}

// newMFAChallenge stores the challenge of a login (or password reset) of u waiting for its second
// factor and returns its raw token. credentialsVersion is the password version it proves: the
// session VerifyMFA opens is refused if the password changed since.
func (s *Service) newMFAChallenge(ctx context.Context, u *models.User, credentialsVersion int64, now time.Time) (string, error) {
	fs, err := s.factors()
	if err != nil {
		return "", err
	}
	raw, c, err := mfaChallenge(u, credentialsVersion, now)
	if err != nil {
		return "", err
	}
	if err := fs.CreateChallenge(ctx, c); err != nil {
		return "", fmt.Errorf("mfa challenge: %w", err)
	}
	return raw, nil
}

// mfaChallenge makes an unsaved MFA challenge of u and its raw token: 32 random bytes, base64url, of
// which only the SHA-256 is stored (the refresh tokens' shape).
func mfaChallenge(u *models.User, credentialsVersion int64, now time.Time) (string, *models.AuthChallenge, error) {
	raw, hash, err := token.NewRefreshToken()
	if err != nil {
		return "", nil, err
	}
	id := u.ID
	return raw, &models.AuthChallenge{
		ID: uuid.NewString(), Kind: models.ChallengeMFA, UserID: &id, TokenHash: hash,
		CredentialsVersion: credentialsVersion, CreatedAt: now, ExpiresAt: now.Add(MFAChallengeTTL),
	}, nil
}

// VerifyMFA finishes a login that returned an *MFARequiredError: the challenge and a TOTP or recovery
// code open a session (amr "pwd", "otp"). It returns ErrInvalidMFAChallenge for a challenge that is
// unknown, expired, used, ended by MFAMaxAttempts wrong codes, or whose password changed since,
// ErrInvalidMFACode for a wrong or used code, and a *RateLimitedError past MFARate for the account.
func (s *Service) VerifyMFA(ctx context.Context, challenge, code string, c Client) (*Pair, error) {
	fs, err := s.factors()
	if err != nil {
		return nil, err
	}
	// The shape is checked before hashing, so an oversized input costs nothing.
	hash, ok := token.HashRefreshToken(challenge)
	if !ok {
		return nil, ErrInvalidMFAChallenge
	}
	ch, err := fs.ChallengeByTokenHash(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrInvalidMFAChallenge
	}
	if err != nil {
		return nil, fmt.Errorf("verifyMfa: %w", err)
	}
	now := s.now()
	if ch.Kind != models.ChallengeMFA || ch.UserID == nil || ch.UsedAt != nil || !now.Before(ch.ExpiresAt) {
		return nil, ErrInvalidMFAChallenge
	}
	u, err := s.store.UserByID(ctx, *ch.UserID)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrInvalidMFAChallenge // the account went
	}
	if err != nil {
		return nil, fmt.Errorf("verifyMfa: %w", err)
	}
	if u.TOTPEnabledAt == nil {
		return nil, ErrInvalidMFAChallenge // turned off since: a new login needs no second factor
	}
	if err := s.secondFactor(ctx, fs, u, code, EventVerifyMFA, "", c.IP); err != nil {
		if errors.Is(err, ErrInvalidMFACode) && !errors.Is(err, errTOTPReplayed) {
			// The challenge ends at its fifth wrong code, whatever the account limit says.
			if _, ferr := fs.FailChallenge(ctx, ch.ID, MFAMaxAttempts, now); ferr != nil {
				return nil, fmt.Errorf("verifyMfa: %w", ferr)
			}
		}
		return nil, err
	}
	// Conditional: of two requests with the same challenge, one opens the session. (Two with the same
	// code cannot both get here: the code is single use too.)
	if err := fs.ConsumeChallenge(ctx, ch.ID, now); errors.Is(err, ErrConflict) {
		return nil, ErrInvalidMFAChallenge
	} else if err != nil {
		return nil, fmt.Errorf("verifyMfa: %w", err)
	}
	sess, rt, rawToken, err := s.newSession(u, c, now, AMRPassword, AMROTP)
	if err != nil {
		return nil, err
	}
	evicted, at, err := s.store.CreateSession(ctx, sess, rt, SessionCheck{
		CredentialsVersion: ch.CredentialsVersion, MaxSessions: s.opts.MaxSessionsPerUser, Now: s.now,
	})
	if errors.Is(err, ErrConflict) {
		return nil, ErrInvalidMFAChallenge // the password changed (or the account went) since the login
	}
	if err != nil {
		return nil, fmt.Errorf("verifyMfa: %w", err)
	}
	s.revs.add(ctx, u.ID, evicted, at, s.log)
	s.emit(ctx, Event{Kind: EventVerifyMFA, Outcome: OutcomeOK, UserID: u.ID, SessionID: sess.ID, IP: c.IP, Revoked: len(evicted)})
	return s.pair(u, sess.ID, rawToken, sess.ExpiresAt, sessionAuth(sess))
}

// secondFactor checks code (a TOTP code or a recovery code) for u, whose TOTP is on, and uses it up.
// The attempt is counted against MFARate for the account before the code is looked at, and taken
// back when it is right. It returns ErrInvalidMFACode or a *RateLimitedError, emitting kind's event
// for either.
func (s *Service) secondFactor(ctx context.Context, fs FactorStore, u *models.User, code string, kind EventKind, sessionID, ip string) error {
	t := s.tally()
	key := mfaKey(u.ID)
	if _, err := t.hit(ctx, key, s.opts.MFARate); err != nil {
		s.emit(ctx, Event{Kind: kind, Outcome: OutcomeRateLimited, UserID: u.ID, SessionID: sessionID, IP: ip})
		return err
	}
	err := s.checkCode(ctx, fs, u, code)
	if errors.Is(err, ErrInvalidMFACode) {
		s.emit(ctx, Event{Kind: kind, Outcome: OutcomeFailed, UserID: u.ID, SessionID: sessionID, IP: ip})
		return err
	}
	if err != nil {
		t.takeBack(ctx, err)
		return fmt.Errorf("%s: %w", kind, err)
	}
	t.undo(ctx, key)
	return nil
}

// checkCode checks and uses up code for u: six digits are a TOTP code, anything else a recovery
// code. It returns ErrInvalidMFACode for a wrong, replayed or used code.
func (s *Service) checkCode(ctx context.Context, fs FactorStore, u *models.User, code string) error {
	if len(code) > maxCodeInput || !utf8.ValidString(code) {
		return ErrInvalidMFACode
	}
	now := s.now()
	if digits := strings.Join(strings.Fields(code), ""); isTOTPCode(digits) {
		secret, err := openSecret(s.opts.TOTPKeys, u.ID, u.TOTPSecret)
		if err != nil {
			return fmt.Errorf("user %s: %w", u.ID, err)
		}
		step, ok := matchTOTP(string(secret), digits, now)
		if !ok {
			return ErrInvalidMFACode
		}
		if err := fs.UseTOTPStep(ctx, u.ID, step); errors.Is(err, ErrConflict) {
			return errTOTPReplayed
		} else if err != nil {
			return err
		}
		return nil
	}
	norm, ok := normalizeRecoveryCode(code)
	if !ok {
		return ErrInvalidMFACode
	}
	if err := fs.UseRecoveryCode(ctx, u.ID, recoveryCodeHash(u.ID, norm), now); errors.Is(err, ErrNotFound) {
		return ErrInvalidMFACode
	} else if err != nil {
		return err
	}
	return nil
}

// isTOTPCode reports whether code is six ASCII digits.
func isTOTPCode(code string) bool {
	if len(code) != 6 {
		return false
	}
	for _, r := range code {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// matchTOTP returns the step (of now-1, now, now+1) whose code is code. Every candidate is computed
// and compared in constant time, so the timing does not tell which step (or digit) was close.
func matchTOTP(secret, code string, now time.Time) (int64, bool) {
	if !isTOTPCode(code) {
		return 0, false
	}
	current := now.Unix() / totpPeriod
	var step int64
	found := 0
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix((current+d)*totpPeriod, 0), totpOpts)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			// Two steps with the same code (one chance in a million): the later one, so that an
			// accepted code is never followed by the acceptance of an earlier step's code.
			step, found = current+d, 1
		}
	}
	return step, found == 1
}

// newRecoveryCodes makes RecoveryCodeCount recovery codes of userID: 10 random bytes each (80 bits),
// shown as xxxx-xxxx-xxxx-xxxx (16 base32 characters, lower case); the rows hold their hashes.
func newRecoveryCodes(userID string, now time.Time) ([]string, []models.RecoveryCode, error) {
	plain := make([]string, RecoveryCodeCount)
	rows := make([]models.RecoveryCode, RecoveryCodeCount)
	b := make([]byte, 10)
	for i := range plain {
		if _, err := rand.Read(b); err != nil {
			return nil, nil, fmt.Errorf("recovery code: %w", err)
		}
		norm := strings.ToLower(recoveryEncoding.EncodeToString(b))
		plain[i] = norm[0:4] + "-" + norm[4:8] + "-" + norm[8:12] + "-" + norm[12:16]
		rows[i] = models.RecoveryCode{UserID: userID, CodeHash: recoveryCodeHash(userID, norm), CreatedAt: now}
	}
	return plain, rows, nil
}

// normalizeRecoveryCode returns code as it is hashed: lower case, without spaces and hyphens; ok is
// false when that cannot be a recovery code (16 base32 characters).
func normalizeRecoveryCode(code string) (string, bool) {
	var b strings.Builder
	for _, r := range strings.ToLower(code) {
		switch {
		case r == '-' || r == ' ' || r == '\t':
		case (r >= 'a' && r <= 'z') || (r >= '2' && r <= '7'):
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	if b.Len() != 16 {
		return "", false
	}
	return b.String(), true
}

// recoveryCodeHash is what is stored of a normalised recovery code: SHA-256 of a label, the user's id
// and the code. A fast hash is enough: the codes are 80 random bits, so even a copy of the table
// cannot be searched (a slow hash protects low-entropy secrets such as passwords, and would only add
// cost here). The user id keeps equal codes of two users (never expected) apart.
func recoveryCodeHash(userID, norm string) []byte {
	sum := sha256.Sum256([]byte("gqlauth-recovery:" + userID + ":" + norm))
	return sum[:]
}

// Reauthenticate renews the authentication of the caller's session: with the password (and, when
// TOTP is on, a TOTP or recovery code: amr "pwd", "otp"; else "pwd") or with a passkey of the
// caller's (amr "webauthn"). Every refresh token of the session is replaced by the returned one. It
// returns ErrInvalidCredentials for a wrong password (counted like a failed login), an
// *MFARequiredError without a challenge when the code is missing, ErrInvalidMFACode, ErrInvalidPasskey
// (also for another account's passkey), a *RateLimitedError, a *ValidationError (field "password")
// unless exactly one of the password and a passkey is given, and ErrSessionRevoked when the session
// has ended.
func (s *Service) Reauthenticate(ctx context.Context, p *Principal, in ReauthInput, c Client) (*Pair, error) {
	withPasskey := in.ChallengeID != nil || in.Credential != nil
	if (in.Password != nil) == withPasskey {
		return nil, &ValidationError{Field: "password", Message: "give either the password or a passkey (challengeId and credential)"}
	}
	if withPasskey && (in.ChallengeID == nil || len(in.Credential) == 0) {
		return nil, &ValidationError{Field: "credential", Message: "a passkey needs both challengeId and credential"}
	}
	u, fs, err := s.callerAccount(ctx, "reauthenticate", p)
	if err != nil {
		return nil, err
	}
	var amr []string
	if withPasskey {
		pu, err := s.verifyPasskey(ctx, *in.ChallengeID, in.Credential)
		if err != nil {
			s.emit(ctx, Event{Kind: EventReauthenticate, Outcome: OutcomeFailed, UserID: u.ID, SessionID: p.SessionID, IP: c.IP})
			return nil, err
		}
		if pu.ID != p.UserID {
			s.emit(ctx, Event{Kind: EventReauthenticate, Outcome: OutcomeFailed, UserID: u.ID, SessionID: p.SessionID, IP: c.IP})
			return nil, ErrInvalidPasskey
		}
		amr = []string{AMRWebAuthn}
	} else {
		if utf8.RuneCountInString(*in.Password) > MaxPasswordLength {
			return nil, ErrInvalidCredentials
		}
		if err := s.checkCurrentPassword(ctx, "reauthenticate", EventReauthenticate, u, p, *in.Password, c); err != nil {
			return nil, err
		}
		amr = []string{AMRPassword}
		if u.TOTPEnabledAt != nil {
			if in.Code == nil || *in.Code == "" {
				s.emit(ctx, Event{Kind: EventReauthenticate, Outcome: OutcomeMFARequired, UserID: u.ID, SessionID: p.SessionID, IP: c.IP})
				return nil, &MFARequiredError{}
			}
			if err := s.secondFactor(ctx, fs, u, *in.Code, EventReauthenticate, p.SessionID, c.IP); err != nil {
				return nil, err
			}
			amr = append(amr, AMROTP)
		}
	}
	raw, hash, err := token.NewRefreshToken()
	if err != nil {
		return nil, err
	}
	now := s.now()
	expires := now.Add(s.opts.RefreshTokenTTL)
	err = fs.Reauthenticate(ctx, Reauthentication{
		SessionID: p.SessionID, UserID: p.UserID, AMR: strings.Join(amr, ","), AuthTime: now, Now: now, ExpiresAt: expires,
		New: &models.RefreshToken{TokenHash: hash, SessionID: p.SessionID, UserID: p.UserID, CreatedAt: now, ExpiresAt: expires},
	})
	if errors.Is(err, ErrConflict) {
		return nil, ErrSessionRevoked
	}
	if err != nil {
		return nil, fmt.Errorf("reauthenticate: %w", err)
	}
	s.emit(ctx, Event{Kind: EventReauthenticate, Outcome: OutcomeOK, UserID: u.ID, SessionID: p.SessionID, IP: c.IP})
	return s.pair(u, p.SessionID, raw, expires, token.Authentication{AMR: amr, Time: now})
}
