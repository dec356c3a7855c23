package auth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"gqlauth/models"
	"gqlauth/token"
)

// Account recovery and e-mail verification.
//
// Every link carries a token of token.RefreshTokenBytes random bytes (base64url), of which only the
// SHA-256 is stored (models.EmailToken), bound to one purpose, single use and short-lived. The mail
// that carries it is written to the outbox in the same transaction as the token (MailStore), and a
// mail sender delivers it off the request path.
//
// requestPasswordReset must not tell whether an account has the address, by its answer or by its
// latency: it validates the address, counts the limits and queues a KindResetRequest for every
// address alike, without looking the account up. The mail sender resolves that request later
// (ResolveResetRequest): it issues the token and the link for a known account, and drops the
// request for an unknown one.

// errNoMailStore is what the recovery and verification operations fail with when the service has no
// MailStore: a wiring fault, reported as an internal error.
var errNoMailStore = errors.New("auth: no mail store configured")

// dataLookup is the Data key of a KindResetRequest holding the address as typed, lower-cased and
// trimmed, when that differs from its canonical form: an account stored before addresses were
// canonicalised is found by it, as login finds it (see LegacyEmail).
const dataLookup = "lookup"

// The limiter keys of the mail requests (see limits.go).
func resetEmailKey(email string) string { return "reset:email:" + email }
func mailToKey(email string) string     { return "mail:to:" + email }

// mailStore returns the MailStore, or errNoMailStore.
func (s *Service) mailStore() (MailStore, error) {
	if s.opts.MailStore == nil {
		return nil, errNoMailStore
	}
	return s.opts.MailStore, nil
}

// kickMail wakes the mail sender after a commit that queued mail.
func (s *Service) kickMail() {
	if s.opts.KickMail != nil {
		s.opts.KickMail()
	}
}

// notify queues a notice (no token) after the change it announces committed. A failure is logged:
// the change stands, and the notice is not worth failing the request for.
func (s *Service) notify(ctx context.Context, m Mail) {
	if s.opts.MailStore == nil {
		return
	}
	if err := s.opts.MailStore.EnqueueMail(ctx, m, s.now()); err != nil {
		s.log.WarnContext(ctx, "notice mail not queued", "kind", m.Kind, "err", err)
		return
	}
	s.kickMail()
}

// RequestPasswordReset queues a password-reset mail for email, whether an account has it or not: it
// returns nil for known and unknown addresses alike, after the same work. It returns a
// *ValidationError (field "email") for a malformed address, and a *RateLimitedError past
// ResetIPRate for the client's address or ResetEmailRate for the e-mail address (counted alike for
// known and unknown addresses).
func (s *Service) RequestPasswordReset(ctx context.Context, email string, c Client) error {
	raw := email
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	ms, err := s.mailStore()
	if err != nil {
		return err
	}
	k, t := keysFor(c.IP), s.tally()
	// The client's address first: once it is over its budget, nothing is counted for the addresses
	// it names, so a flood with fresh addresses does not grow the limiter.
	if err := s.countClient(ctx, t, "reset", k, s.opts.ResetIPRate); err != nil {
		s.emit(ctx, Event{Kind: EventPasswordResetRequest, Outcome: OutcomeRateLimited, IP: c.IP})
		return err
	}
	if _, err := t.hit(ctx, resetEmailKey(email), s.opts.ResetEmailRate); err != nil {
		s.emit(ctx, Event{Kind: EventPasswordResetRequest, Outcome: OutcomeRateLimited, IP: c.IP})
		return err
	}
	m := Mail{Kind: KindResetRequest, To: email}
	if legacy := LegacyEmail(raw); legacy != email {
		m.Data = map[string]string{dataLookup: legacy}
	}
	if err := ms.EnqueueMail(ctx, m, s.now()); err != nil {
		t.takeBack(ctx, err)
		return fmt.Errorf("requestPasswordReset: %w", err)
	}
	s.kickMail()
	s.emit(ctx, Event{Kind: EventPasswordResetRequest, Outcome: OutcomeOK, IP: c.IP})
	return nil
}

// ResolveResetRequest turns a queued KindResetRequest m into the mail to send. For an address no
// (live) account has, it returns ok false, and the sender drops m. Otherwise it issues a reset token
// (superseding the user's older ones), replaces m in the outbox with the KindPasswordReset mail
// carrying its link, in one transaction, and returns that mail (its ID is m.ID).
func (s *Service) ResolveResetRequest(ctx context.Context, m Mail) (Mail, bool, error) {
	ms, err := s.mailStore()
	if err != nil {
		return Mail{}, false, err
	}
	raw := m.Data[dataLookup]
	if raw == "" {
		raw = m.To
	}
	u, err := s.userByEmail(ctx, m.To, raw)
	if errors.Is(err, ErrNotFound) || (err == nil && u.DeletedAt != nil) {
		return Mail{}, false, nil
	}
	if err != nil {
		return Mail{}, false, fmt.Errorf("resolve reset request: %w", err)
	}
	mail, err := s.issueEmailToken(ctx, ms, u, models.PurposePasswordReset, nil, KindPasswordReset, u.Email, m.ID)
	if err != nil {
		return Mail{}, false, fmt.Errorf("resolve reset request: %w", err)
	}
	mail.Attempts = m.Attempts
	s.emit(ctx, Event{Kind: EventPasswordResetMail, Outcome: OutcomeOK, UserID: u.ID})
	return mail, true, nil
}

// issueEmailToken creates a token of purpose for u and, in the same transaction, the mail of kind
// to the address to that carries its link (replacing the outbox message replace, when not "").
func (s *Service) issueEmailToken(ctx context.Context, ms MailStore, u *models.User, purpose models.EmailPurpose, newEmail *string, kind, to, replace string) (Mail, error) {
	raw, hash, err := token.NewRefreshToken() // the same shape: 32 random bytes, base64url; SHA-256 stored
	if err != nil {
		return Mail{}, err
	}
	ttl, tmpl := s.opts.EmailVerificationTTL, s.opts.EmailVerificationURL
	if purpose == models.PurposePasswordReset {
		ttl, tmpl = s.opts.PasswordResetTTL, s.opts.PasswordResetURL
	}
	now := s.now()
	t := &models.EmailToken{
		ID: uuid.NewString(), UserID: u.ID, Purpose: purpose, TokenHash: hash, NewEmail: newEmail,
		CreatedAt: now, ExpiresAt: now.Add(ttl),
	}
	m := Mail{ID: replace, Kind: kind, To: to, Data: map[string]string{"link": link(tmpl, raw), "expires_in": humanDuration(ttl)}}
	if newEmail != nil {
		m.Data["new_email"] = *newEmail
	}
	if err := ms.CreateEmailToken(ctx, t, m, replace); err != nil {
		return Mail{}, err
	}
	return m, nil
}

// link puts the URL-escaped token into tmpl in place of every {token} (the bare token for "").
func link(tmpl, raw string) string {
	if tmpl == "" {
		return raw
	}
	return strings.ReplaceAll(tmpl, "{token}", url.QueryEscape(raw))
}

// humanDuration writes d for a mail: "1 hour", "24 hours", "30 minutes", "45 seconds".
func humanDuration(d time.Duration) string {
	n, unit := int64(d/time.Second), "second"
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		n, unit = int64(d/time.Hour), "hour"
	case d >= time.Minute && d%time.Minute == 0:
		n, unit = int64(d/time.Minute), "minute"
	}
	if n != 1 {
		unit += "s"
	}
	return strconv.FormatInt(n, 10) + " " + unit
}

// emailToken returns the live token raw stands for, if its purpose is one of purposes; anything else
// (malformed, unknown, used or superseded, expired, another purpose) is ErrInvalidEmailToken.
func (s *Service) emailToken(ctx context.Context, raw string, purposes ...models.EmailPurpose) (*models.EmailToken, error) {
	hash, ok := token.HashRefreshToken(raw)
	if !ok {
		return nil, ErrInvalidEmailToken
	}
	ms, err := s.mailStore()
	if err != nil {
		return nil, err
	}
	// Looked up by its SHA-256 through a unique index, like a refresh token: the lookup compares
	// hashes, so its timing tells nothing useful about the token.
	t, err := ms.EmailTokenByHash(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrInvalidEmailToken
	}
	if err != nil {
		return nil, err
	}
	valid := false
	for _, p := range purposes {
		valid = valid || t.Purpose == p
	}
	if !valid || t.UsedAt != nil || !s.now().Before(t.ExpiresAt) {
		return nil, ErrInvalidEmailToken
	}
	return t, nil
}

// ResetPassword sets a new password with the token of a reset link, revokes every session of its
// user (at once on every replica), marks the address verified, opens a fresh session and mails a
// "password changed" notice. For an account with TOTP on it opens no session: it returns an
// *MFARequiredError whose challenge (for the new password) VerifyMFA exchanges, with a code, for the
// session, so that the link alone (a mailbox) never passes the second factor. It returns a
// *ValidationError (field "newPassword"), leaving the token usable, for a password that is not
// allowed, and ErrInvalidEmailToken for a token that is not a live reset token.
func (s *Service) ResetPassword(ctx context.Context, raw, newPassword string, c Client) (*Pair, error) {
	newPassword = NormalizePassword(newPassword)
	if err := ValidatePassword("newPassword", newPassword); err != nil {
		return nil, err
	}
	t, err := s.emailToken(ctx, raw, models.PurposePasswordReset)
	if err != nil {
		return nil, fmt.Errorf("resetPassword: %w", err)
	}
	u, err := s.store.UserByID(ctx, t.UserID)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrInvalidEmailToken // the account went
	}
	if err != nil {
		return nil, fmt.Errorf("resetPassword: %w", err)
	}
	hash, err := s.hash(ctx, newPassword)
	if err != nil {
		return nil, err
	}
	now := s.now()
	r := PasswordReset{
		TokenID: t.ID, UserID: u.ID, NewHash: hash, At: now,
		Notice: Mail{Kind: KindPasswordChanged, To: u.Email},
	}
	var sess *models.Session
	var rawRefresh, rawChallenge string
	if u.TOTPEnabledAt != nil {
		if _, err := s.factors(); err != nil {
			return nil, err
		}
		// The store sets the challenge's credentials version to the new one.
		if rawChallenge, r.Challenge, err = mfaChallenge(u, 0, now); err != nil {
			return nil, err
		}
	} else if sess, r.Token, rawRefresh, err = s.newSession(u, c, now, AMRPassword); err != nil {
		return nil, err
	}
	r.Session = sess
	ids, at, err := s.opts.MailStore.ResetPassword(ctx, r)
	if errors.Is(err, ErrConflict) {
		return nil, ErrInvalidEmailToken // used meanwhile (a double submit, or a newer link)
	}
	if err != nil {
		return nil, fmt.Errorf("resetPassword: %w", err)
	}
	s.revs.add(ctx, u.ID, ids, at, s.log)
	s.users.drop(u.ID)
	s.kickMail()
	u.PasswordHash, u.CredentialsVersion, u.UpdatedAt = hash, u.CredentialsVersion+1, now
	if u.EmailVerifiedAt == nil {
		u.EmailVerifiedAt = &now
	}
	s.announce(ctx, SessionEvent{Type: PasswordChanged, UserID: u.ID, At: now, CredentialsVersion: u.CredentialsVersion})
	if sess == nil {
		s.emit(ctx, Event{Kind: EventPasswordReset, Outcome: OutcomeMFARequired, UserID: u.ID, IP: c.IP, Revoked: len(ids)})
		return nil, &MFARequiredError{Challenge: rawChallenge}
	}
	s.emit(ctx, Event{Kind: EventPasswordReset, Outcome: OutcomeOK, UserID: u.ID, SessionID: sess.ID, IP: c.IP, Revoked: len(ids)})
	return s.pair(u, sess.ID, rawRefresh, sess.ExpiresAt, sessionAuth(sess))
}

// RequestEmailVerification mails a new verification link to the caller's address and returns true;
// it sends nothing when the address is already verified. It returns a *RateLimitedError past
// ResetEmailRate mails to that address, and ErrSessionRevoked when the account is gone.
func (s *Service) RequestEmailVerification(ctx context.Context, p *Principal) (bool, error) {
	if _, err := s.mailStore(); err != nil {
		return false, err
	}
	u, err := s.store.UserByID(ctx, p.UserID)
	if errors.Is(err, ErrNotFound) {
		return false, ErrSessionRevoked
	}
	if err != nil {
		return false, fmt.Errorf("requestEmailVerification: %w", err)
	}
	if u.EmailVerifiedAt != nil {
		return true, nil
	}
	// An unverified address may be someone else's: the limit keeps an account from mail-bombing it.
	if _, err := s.tally().hit(ctx, mailToKey(u.Email), s.opts.ResetEmailRate); err != nil {
		s.emit(ctx, Event{Kind: EventRequestVerification, Outcome: OutcomeRateLimited, UserID: u.ID, SessionID: p.SessionID})
		return false, err
	}
	if err := s.sendVerification(ctx, u); err != nil {
		return false, fmt.Errorf("requestEmailVerification: %w", err)
	}
	s.emit(ctx, Event{Kind: EventRequestVerification, Outcome: OutcomeOK, UserID: u.ID, SessionID: p.SessionID})
	return true, nil
}

// sendVerification issues a verification token for u's address and queues its mail.
func (s *Service) sendVerification(ctx context.Context, u *models.User) error {
	ms, err := s.mailStore()
	if err != nil {
		return err
	}
	if _, err := s.issueEmailToken(ctx, ms, u, models.PurposeVerifyEmail, nil, KindVerifyEmail, u.Email, ""); err != nil {
		return err
	}
	s.kickMail()
	return nil
}

// VerifyEmail follows a verification link: it marks the address verified or, for a change-email
// token, moves the account to the new address (verified) and mails a notice to the old one. It
// returns the updated user, ErrInvalidEmailToken for a token that is not a live verification or
// change-email token, and ErrEmailTaken when another account took the new address meanwhile.
func (s *Service) VerifyEmail(ctx context.Context, raw string) (*models.User, error) {
	t, err := s.emailToken(ctx, raw, models.PurposeVerifyEmail, models.PurposeChangeEmail)
	if err != nil {
		return nil, fmt.Errorf("verifyEmail: %w", err)
	}
	u, err := s.store.UserByID(ctx, t.UserID)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrInvalidEmailToken
	}
	if err != nil {
		return nil, fmt.Errorf("verifyEmail: %w", err)
	}
	var notice *Mail
	kind := EventVerifyEmail
	if t.Purpose == models.PurposeChangeEmail {
		if t.NewEmail == nil || *t.NewEmail == "" {
			return nil, ErrInvalidEmailToken
		}
		// Checked here for a clear answer; the store checks again in its transaction (the race).
		if other, err := s.store.UserByEmail(ctx, *t.NewEmail); err == nil && other.ID != u.ID {
			return nil, ErrEmailTaken
		} else if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("verifyEmail: %w", err)
		}
		notice = &Mail{Kind: KindEmailChanged, To: u.Email, Data: map[string]string{"new_email": *t.NewEmail}}
		kind = EventChangeEmail
	}
	updated, err := s.opts.MailStore.VerifyEmail(ctx, t, s.now(), notice)
	s.users.drop(u.ID)
	if errors.Is(err, ErrConflict) {
		return nil, ErrInvalidEmailToken
	}
	if err != nil {
		return nil, fmt.Errorf("verifyEmail: %w", err)
	}
	if notice != nil {
		s.kickMail()
	}
	s.emit(ctx, Event{Kind: kind, Outcome: OutcomeOK, UserID: u.ID})
	return updated, nil
}

// ChangeEmail starts moving the caller's account to newEmail: it checks the current password (under
// the budgets of changePassword), then mails a change-email link to the new address; the account
// moves when the link is followed (VerifyEmail). It returns a *ValidationError (field "newEmail")
// for a malformed address or the current one, ErrInvalidCredentials for a wrong password,
// ErrEmailTaken when another account has the address, a *RateLimitedError past the password budgets
// or ResetEmailRate mails to that address, and ErrSessionRevoked when the account is gone.
func (s *Service) ChangeEmail(ctx context.Context, p *Principal, newEmail, current string, c Client) (bool, error) {
	newEmail, err := NormalizeEmail(newEmail)
	if err != nil {
		var v *ValidationError
		if errors.As(err, &v) {
			return false, &ValidationError{Field: "newEmail", Message: v.Message}
		}
		return false, err
	}
	ms, err := s.mailStore()
	if err != nil {
		return false, err
	}
	if utf8.RuneCountInString(current) > MaxPasswordLength {
		return false, ErrInvalidCredentials
	}
	u, err := s.store.UserByID(ctx, p.UserID)
	if errors.Is(err, ErrNotFound) {
		return false, ErrSessionRevoked
	}
	if err != nil {
		return false, fmt.Errorf("changeEmail: %w", err)
	}
	if newEmail == u.Email {
		return false, &ValidationError{Field: "newEmail", Message: "is the current address"}
	}
	if err := s.checkCurrentPassword(ctx, "changeEmail", EventChangeEmailRequest, u, p, current, c); err != nil {
		return false, err
	}
	// Only now, behind the password: whether an address is taken is no business of a token thief.
	if _, err := s.store.UserByEmail(ctx, newEmail); err == nil {
		return false, ErrEmailTaken
	} else if !errors.Is(err, ErrNotFound) {
		return false, fmt.Errorf("changeEmail: %w", err)
	}
	if _, err := s.tally().hit(ctx, mailToKey(newEmail), s.opts.ResetEmailRate); err != nil {
		s.emit(ctx, Event{Kind: EventChangeEmailRequest, Outcome: OutcomeRateLimited, UserID: u.ID, SessionID: p.SessionID, IP: c.IP})
		return false, err
	}
	if _, err := s.issueEmailToken(ctx, ms, u, models.PurposeChangeEmail, &newEmail, KindChangeEmail, newEmail, ""); err != nil {
		return false, fmt.Errorf("changeEmail: %w", err)
	}
	s.kickMail()
	s.emit(ctx, Event{Kind: EventChangeEmailRequest, Outcome: OutcomeOK, UserID: u.ID, SessionID: p.SessionID, IP: c.IP})
	return true, nil
}
