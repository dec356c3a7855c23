package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"gqlauth/models"
)

// Passkeys (discoverable WebAuthn credentials) with go-webauthn:
//
//   - Registration (beginPasskeyRegistration, @auth(fresh: true), then finishPasskeyRegistration): the
//     ceremony's SessionData is kept server-side in an AuthChallenge of the user (kind
//     passkey_register); finish takes the user's newest one and consumes it before looking at the
//     credential, so a ceremony is answered once, right or wrong.
//   - Login (beginPasskeyLogin, @public, then finishPasskeyLogin): discoverable, so no e-mail is asked
//     and none is revealed; the AuthChallenge (kind passkey_login, no user) is found by its id and
//     consumed first too. The authenticator names the credential (rawId) and its user (userHandle,
//     the user's id); both must agree with the stored passkey.
//   - Every refusal of a ceremony is ErrInvalidPasskey: the library's reason is logged, never
//     returned, so a client learns nothing about which check failed.
//
// User verification and resident keys are required; attestation is not asked for (passkeys are
// mostly synced ones whose attestation proves nothing useful). The sign counter is kept in its own
// column and moved on with a conditional update; a counter that does not increase (when either it or
// the stored one is non-zero) means a cloned authenticator and the login is refused.

// PasskeyChallengeTTL is how long a passkey ceremony (registration or login) may take.
const PasskeyChallengeTTL = 5 * time.Minute

// MaxPasskeyNameLength is the longest name a passkey may be given, in characters.
const MaxPasskeyNameLength = 64

// defaultPasskeyName is the name of a passkey registered without one.
const defaultPasskeyName = "Passkey"

// The events of passkeys.
const (
	EventPasskeyRegister EventKind = "passkey_register"
	EventPasskeyLogin    EventKind = "passkey_login"
	EventPasskeyDelete   EventKind = "passkey_delete"
)

// errPasskeysOff is the internal error of a passkey operation on a service built without a relying
// party (Options.WebAuthn.RPID) or a FactorStore.
var errPasskeysOff = errors.New("auth: passkeys are not configured (no WebAuthn relying party or factor store)")

// newWebAuthn builds the relying party, or nil when o has no RPID.
func newWebAuthn(o WebAuthnOptions) (*webauthn.WebAuthn, error) {
	if o.RPID == "" {
		return nil, nil
	}
	name := o.RPDisplayName
	if name == "" {
		name = "gqlauth"
	}
	timeout := webauthn.TimeoutConfig{Timeout: PasskeyChallengeTTL, TimeoutUVD: PasskeyChallengeTTL}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  o.RPID,
		RPDisplayName:         name,
		RPOrigins:             o.RPOrigins,
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification:   protocol.VerificationRequired,
		},
		// The timeouts are what the browser is told. The ceremony's expiry is enforced by the service
		// (the challenge row's ExpiresAt, on the service's clock), not by the library's wall clock.
		Timeouts: webauthn.TimeoutsConfig{Login: timeout, Registration: timeout},
	})
	if err != nil {
		return nil, fmt.Errorf("webauthn relying party: %w", err)
	}
	return wa, nil
}

// passkeyUser is a user as go-webauthn sees it. The user handle is the user's id (a UUID: no
// personal data goes to the authenticator); the names shown by the authenticator are the e-mail.
type passkeyUser struct {
	u     *models.User
	creds []webauthn.Credential
}

func (p passkeyUser) WebAuthnID() []byte                         { return []byte(p.u.ID) }
func (p passkeyUser) WebAuthnName() string                       { return p.u.Email }
func (p passkeyUser) WebAuthnDisplayName() string                { return p.u.Email }
func (p passkeyUser) WebAuthnCredentials() []webauthn.Credential { return p.creds }

// passkeysReady returns errPasskeysOff unless the service can run passkey ceremonies.
func (s *Service) passkeysReady() error {
	if s.webauthn == nil || s.opts.Factors == nil {
		return errPasskeysOff
	}
	return nil
}

// refusePasskey logs why a ceremony was refused (the library's details, at info: they help a
// developer wiring a client, and hold no secret) and returns the one public error.
func (s *Service) refusePasskey(ctx context.Context, step string, err error) error {
	attrs := []any{"step", step}
	var perr *protocol.Error
	if errors.As(err, &perr) {
		attrs = append(attrs, "reason", perr.Details, "info", perr.DevInfo)
	} else if err != nil {
		attrs = append(attrs, "reason", err.Error())
	}
	s.log.InfoContext(ctx, "passkey refused", attrs...)
	return ErrInvalidPasskey
}

// Passkeys lists the caller's passkeys, oldest first.
func (s *Service) Passkeys(ctx context.Context, p *Principal) ([]models.Passkey, error) {
	if s.opts.Factors == nil {
		return nil, errPasskeysOff
	}
	list, err := s.opts.Factors.Passkeys(ctx, p.UserID)
	if err != nil {
		return nil, fmt.Errorf("passkeys: %w", err)
	}
	return list, nil
}

// BeginPasskeyRegistration returns the PublicKeyCredentialCreationOptions (JSON) of a new passkey
// for the caller: a discoverable credential with user verification, excluding the caller's passkeys
// (an authenticator that holds one of them declines). It returns ErrSessionRevoked when the caller's
// account is gone.
func (s *Service) BeginPasskeyRegistration(ctx context.Context, p *Principal) ([]byte, error) {
	if err := s.passkeysReady(); err != nil {
		return nil, err
	}
	u, err := s.store.UserByID(ctx, p.UserID)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrSessionRevoked
	}
	if err != nil {
		return nil, fmt.Errorf("beginPasskeyRegistration: %w", err)
	}
	user, err := s.passkeyUser(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("beginPasskeyRegistration: %w", err)
	}
	creation, session, err := s.webauthn.BeginRegistration(user,
		webauthn.WithExclusions(webauthn.Credentials(user.creds).CredentialDescriptors()),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
	)
	if err != nil {
		return nil, fmt.Errorf("beginPasskeyRegistration: %w", err)
	}
	options, err := json.Marshal(creation.Response)
	if err != nil {
		return nil, fmt.Errorf("beginPasskeyRegistration: %w", err)
	}
	if _, err := s.storeCeremony(ctx, models.ChallengePasskeyRegister, &u.ID, session); err != nil {
		return nil, fmt.Errorf("beginPasskeyRegistration: %w", err)
	}
	return options, nil
}

// FinishPasskeyRegistration verifies the new credential (JSON, as the browser's toJSON() gives it)
// against the caller's latest registration ceremony, which it ends whatever the outcome, and stores
// it. It returns a *ValidationError (field "name") for a name over MaxPasskeyNameLength characters
// (before the ceremony is touched), and ErrInvalidPasskey for any refusal: no ceremony begun, expired
// or used, a credential that does not verify, or one registered already.
func (s *Service) FinishPasskeyRegistration(ctx context.Context, p *Principal, credential []byte, name string) (*models.Passkey, error) {
	if err := s.passkeysReady(); err != nil {
		return nil, err
	}
	name, err := passkeyName(name)
	if err != nil {
		return nil, err
	}
	f := s.opts.Factors
	now := s.now()
	failed := func(step string, err error) (*models.Passkey, error) {
		s.emit(ctx, Event{Kind: EventPasskeyRegister, Outcome: OutcomeFailed, UserID: p.UserID, SessionID: p.SessionID})
		return nil, s.refusePasskey(ctx, step, err)
	}
	ch, err := f.LatestChallenge(ctx, p.UserID, models.ChallengePasskeyRegister, now)
	if errors.Is(err, ErrNotFound) {
		return failed("challenge", err)
	}
	if err != nil {
		return nil, fmt.Errorf("finishPasskeyRegistration: %w", err)
	}
	// Consumed before the credential is looked at: one answer per ceremony, right or wrong.
	if err := f.ConsumeChallenge(ctx, ch.ID, now); errors.Is(err, ErrConflict) {
		return failed("challenge", err)
	} else if err != nil {
		return nil, fmt.Errorf("finishPasskeyRegistration: %w", err)
	}
	session, err := ceremonySession(ch)
	if err != nil {
		return nil, fmt.Errorf("finishPasskeyRegistration: %w", err)
	}
	u, err := s.store.UserByID(ctx, p.UserID)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrSessionRevoked
	}
	if err != nil {
		return nil, fmt.Errorf("finishPasskeyRegistration: %w", err)
	}
	user, err := s.passkeyUser(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("finishPasskeyRegistration: %w", err)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(credential)
	if err != nil {
		return failed("parse", err)
	}
	cred, err := s.webauthn.CreateCredential(user, *session, parsed)
	if err != nil {
		return failed("verify", err)
	}
	data, err := json.Marshal(cred)
	if err != nil {
		return nil, fmt.Errorf("finishPasskeyRegistration: %w", err)
	}
	pk := &models.Passkey{
		ID: uuid.NewString(), UserID: u.ID, CredentialID: cred.ID, Credential: string(data),
		SignCount: int64(cred.Authenticator.SignCount), Name: name, CreatedAt: now,
	}
	if err := f.CreatePasskey(ctx, pk); errors.Is(err, ErrConflict) {
		return failed("store", errors.New("credential id registered already"))
	} else if err != nil {
		return nil, fmt.Errorf("finishPasskeyRegistration: %w", err)
	}
	s.emit(ctx, Event{Kind: EventPasskeyRegister, Outcome: OutcomeOK, UserID: u.ID, SessionID: p.SessionID})
	return pk, nil
}

// passkeyName is the name a passkey is stored under: name trimmed, defaultPasskeyName when empty.
// It returns a *ValidationError (field "name") for one over MaxPasskeyNameLength characters or with
// control characters (or invalid UTF-8).
func passkeyName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return defaultPasskeyName, nil
	}
	if utf8.RuneCountInString(name) > MaxPasskeyNameLength {
		return "", &ValidationError{Field: "name", Message: fmt.Sprintf("must be at most %d characters", MaxPasskeyNameLength)}
	}
	if !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
		return "", &ValidationError{Field: "name", Message: "must not contain control characters"}
	}
	return name, nil
}

// BeginPasskeyLogin starts a discoverable passkey login: the ceremony's id and its
// PublicKeyCredentialRequestOptions (JSON). Anyone may call it and each call stores a ceremony, so it
// is counted per client address (LoginIPRate): past it, a *RateLimitedError.
func (s *Service) BeginPasskeyLogin(ctx context.Context, c Client) (challengeID string, options []byte, err error) {
	if err := s.passkeysReady(); err != nil {
		return "", nil, err
	}
	k, t := keysFor(c.IP), s.tally()
	if err := s.countClient(ctx, t, "passkey", k, s.opts.LoginIPRate); err != nil {
		s.emit(ctx, Event{Kind: EventPasskeyLogin, Outcome: OutcomeRateLimited, IP: c.IP})
		return "", nil, err
	}
	assertion, session, err := s.webauthn.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return "", nil, fmt.Errorf("beginPasskeyLogin: %w", err)
	}
	options, err = json.Marshal(assertion.Response)
	if err != nil {
		return "", nil, fmt.Errorf("beginPasskeyLogin: %w", err)
	}
	id, err := s.storeCeremony(ctx, models.ChallengePasskeyLogin, nil, session)
	if err != nil {
		t.takeBack(ctx, err)
		return "", nil, fmt.Errorf("beginPasskeyLogin: %w", err)
	}
	return id, options, nil
}

// FinishPasskeyLogin verifies an assertion (JSON) for the ceremony challengeID and opens a session
// authenticated by "webauthn": no second factor is asked, even with TOTP on, since the passkey
// verified the user. Failures count per client address like failed logins (LoginIPRate). It returns
// ErrInvalidPasskey for any refusal, ErrEmailNotVerified (after a valid assertion) under
// RequireEmailVerification, and a *RateLimitedError for an address over its budget.
func (s *Service) FinishPasskeyLogin(ctx context.Context, challengeID string, credential []byte, c Client) (*Pair, error) {
	if err := s.passkeysReady(); err != nil {
		return nil, err
	}
	k, t := keysFor(c.IP), s.tally()
	if err := s.countClient(ctx, t, "login", k, s.opts.LoginIPRate); err != nil {
		s.emit(ctx, Event{Kind: EventPasskeyLogin, Outcome: OutcomeRateLimited, IP: c.IP})
		return nil, err
	}
	succeeded := func() {
		t.undo(ctx, "login:ip:"+k.addr)
		t.undo(ctx, "login:net:"+k.net)
	}
	u, err := s.verifyPasskey(ctx, challengeID, credential)
	if errors.Is(err, ErrInvalidPasskey) {
		s.emit(ctx, Event{Kind: EventPasskeyLogin, Outcome: OutcomeFailed, IP: c.IP})
		return nil, err
	}
	if err != nil {
		t.takeBack(ctx, err)
		return nil, fmt.Errorf("finishPasskeyLogin: %w", err)
	}
	if s.opts.RequireEmailVerification && u.EmailVerifiedAt == nil {
		succeeded()
		s.emit(ctx, Event{Kind: EventPasskeyLogin, Outcome: OutcomeEmailNotVerified, UserID: u.ID, IP: c.IP})
		return nil, ErrEmailNotVerified
	}
	now := s.now()
	sess, rt, raw, err := s.newSession(u, c, now, AMRWebAuthn)
	if err != nil {
		return nil, err
	}
	evicted, at, err := s.store.CreateSession(ctx, sess, rt, SessionCheck{
		CredentialsVersion: u.CredentialsVersion, MaxSessions: s.opts.MaxSessionsPerUser, Now: s.now,
	})
	if errors.Is(err, ErrConflict) {
		// The account was deleted, or its password changed, since the passkey was looked up.
		s.emit(ctx, Event{Kind: EventPasskeyLogin, Outcome: OutcomeFailed, UserID: u.ID, IP: c.IP})
		return nil, s.refusePasskey(ctx, "session", err)
	}
	if err != nil {
		t.takeBack(ctx, err)
		return nil, fmt.Errorf("finishPasskeyLogin: %w", err)
	}
	succeeded()
	s.revs.add(ctx, u.ID, evicted, at, s.log)
	s.emit(ctx, Event{Kind: EventPasskeyLogin, Outcome: OutcomeOK, UserID: u.ID, SessionID: sess.ID, IP: c.IP, Revoked: len(evicted)})
	return s.pair(u, sess.ID, raw, sess.ExpiresAt, sessionAuth(sess))
}

// DeletePasskey deletes one of the caller's passkeys; false when the caller has none with this id
// (another user's, or not an id at all). A deleted passkey can no longer log in.
func (s *Service) DeletePasskey(ctx context.Context, p *Principal, id string) (bool, error) {
	if s.opts.Factors == nil {
		return false, errPasskeysOff
	}
	if !validID(id) {
		return false, nil
	}
	ok, err := s.opts.Factors.DeletePasskey(ctx, p.UserID, id)
	if err != nil {
		return false, fmt.Errorf("deletePasskey: %w", err)
	}
	if ok {
		s.emit(ctx, Event{Kind: EventPasskeyDelete, Outcome: OutcomeOK, UserID: p.UserID, SessionID: p.SessionID})
	}
	return ok, nil
}

// verifyPasskey checks an assertion (JSON) for the passkey ceremony challengeID, consumes the
// ceremony, moves the passkey's sign counter on and returns its user. Every failure is
// ErrInvalidPasskey (or an internal/unavailable error of the store). Used by FinishPasskeyLogin and
// Reauthenticate.
func (s *Service) verifyPasskey(ctx context.Context, challengeID string, credential []byte) (*models.User, error) {
	if err := s.passkeysReady(); err != nil {
		return nil, err
	}
	f := s.opts.Factors
	if !validID(challengeID) {
		return nil, s.refusePasskey(ctx, "challenge", errors.New("not a challenge id"))
	}
	ch, err := f.ChallengeByID(ctx, challengeID)
	if errors.Is(err, ErrNotFound) {
		return nil, s.refusePasskey(ctx, "challenge", err)
	}
	if err != nil {
		return nil, fmt.Errorf("verifyPasskey: %w", err)
	}
	if ch.Kind != models.ChallengePasskeyLogin {
		return nil, s.refusePasskey(ctx, "challenge", errors.New("not a passkey login ceremony"))
	}
	now := s.now()
	// Consumed first: a replayed assertion, or a second try at the same ceremony, finds it used (and
	// of two concurrent finishes, one does).
	if err := f.ConsumeChallenge(ctx, ch.ID, now); errors.Is(err, ErrConflict) {
		return nil, s.refusePasskey(ctx, "challenge", errors.New("ceremony used or expired"))
	} else if err != nil {
		return nil, fmt.Errorf("verifyPasskey: %w", err)
	}
	session, err := ceremonySession(ch)
	if err != nil {
		return nil, fmt.Errorf("verifyPasskey: %w", err)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(credential)
	if err != nil {
		return nil, s.refusePasskey(ctx, "parse", err)
	}
	var (
		pk       *models.Passkey
		storeErr error // a failure of the store inside the handler, which the library would hide
	)
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		found, err := f.PasskeyByCredentialID(ctx, rawID)
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				storeErr = err
			}
			return nil, errors.New("unknown credential")
		}
		if string(userHandle) != found.UserID || found.User == nil {
			return nil, errors.New("the user handle is not the credential's user")
		}
		var cred webauthn.Credential
		if err := json.Unmarshal([]byte(found.Credential), &cred); err != nil {
			storeErr = fmt.Errorf("stored credential of passkey %s: %w", found.ID, err)
			return nil, storeErr
		}
		// The column is the counter of record (the conditional update moves it).
		cred.Authenticator.SignCount = uint32(found.SignCount)
		cred.Authenticator.CloneWarning = false
		pk = found
		return passkeyUser{u: found.User, creds: []webauthn.Credential{cred}}, nil
	}
	_, cred, err := s.webauthn.ValidatePasskeyLogin(handler, *session, parsed)
	if storeErr != nil {
		return nil, fmt.Errorf("verifyPasskey: %w", storeErr)
	}
	if err != nil {
		return nil, s.refusePasskey(ctx, "verify", err)
	}
	if cred.Authenticator.CloneWarning {
		s.log.WarnContext(ctx, "passkey sign counter did not increase: possible cloned authenticator",
			"user_id", pk.UserID, "passkey_id", pk.ID, "stored_count", pk.SignCount)
		return nil, ErrInvalidPasskey
	}
	data, err := json.Marshal(cred)
	if err != nil {
		return nil, fmt.Errorf("verifyPasskey: %w", err)
	}
	err = f.UsePasskey(ctx, pk.ID, pk.SignCount, int64(cred.Authenticator.SignCount), string(data), now)
	if errors.Is(err, ErrConflict) {
		// Deleted meanwhile, or a concurrent use of the same passkey moved the counter first.
		return nil, s.refusePasskey(ctx, "counter", err)
	}
	if err != nil {
		return nil, fmt.Errorf("verifyPasskey: %w", err)
	}
	return pk.User, nil
}

// passkeyUser is u with its registered credentials.
func (s *Service) passkeyUser(ctx context.Context, u *models.User) (passkeyUser, error) {
	list, err := s.opts.Factors.Passkeys(ctx, u.ID)
	if err != nil {
		return passkeyUser{}, err
	}
	user := passkeyUser{u: u, creds: make([]webauthn.Credential, 0, len(list))}
	for _, pk := range list {
		var cred webauthn.Credential
		if err := json.Unmarshal([]byte(pk.Credential), &cred); err != nil {
			return passkeyUser{}, fmt.Errorf("stored credential of passkey %s: %w", pk.ID, err)
		}
		user.creds = append(user.creds, cred)
	}
	return user, nil
}

// storeCeremony keeps a ceremony's SessionData as a challenge of kind, valid PasskeyChallengeTTL,
// and returns the challenge's id.
func (s *Service) storeCeremony(ctx context.Context, kind models.ChallengeKind, userID *string, session *webauthn.SessionData) (string, error) {
	data, err := json.Marshal(session)
	if err != nil {
		return "", err
	}
	now := s.now()
	ch := &models.AuthChallenge{
		ID: uuid.NewString(), Kind: kind, UserID: userID, Data: string(data), CreatedAt: now, ExpiresAt: now.Add(PasskeyChallengeTTL),
	}
	if err := s.opts.Factors.CreateChallenge(ctx, ch); err != nil {
		return "", err
	}
	return ch.ID, nil
}

// ceremonySession decodes the SessionData a ceremony's challenge keeps.
func ceremonySession(ch *models.AuthChallenge) (*webauthn.SessionData, error) {
	var session webauthn.SessionData
	if err := json.Unmarshal([]byte(ch.Data), &session); err != nil {
		return nil, fmt.Errorf("ceremony %s: %w", ch.ID, err)
	}
	return &session, nil
}
