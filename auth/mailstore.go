package auth

import (
	"context"
	"time"

	"gqlauth/models"
)

// Mail kinds: the templates of the mail package. KindResetRequest is not a mail: it is what
// RequestPasswordReset queues for known and unknown addresses alike (so that the request does the
// same work either way), and the mail sender resolves it through Service.ResolveResetRequest into a
// KindPasswordReset mail, or drops it.
const (
	KindResetRequest    = "password_reset_request"
	KindPasswordReset   = "password_reset"   // Data: link, expires_in (e.g. "1 hour")
	KindVerifyEmail     = "verify_email"     // Data: link, expires_in
	KindChangeEmail     = "change_email"     // Data: link, expires_in, new_email (sent to the new address)
	KindPasswordChanged = "password_changed" // Data: none (a notice)
	KindEmailChanged    = "email_changed"    // Data: new_email (a notice, sent to the old address)
)

// Mail is one message of the outbox, as the mail sender sees it.
type Mail struct {
	ID       string
	Kind     string
	To       string
	Data     map[string]string // the template's values; a link holds a raw token until the mail is sent
	Attempts int               // attempts made before this one
}

// PasswordReset is what ResetPassword stores in one transaction.
type PasswordReset struct {
	TokenID string    // the reset token, marked used (ErrConflict when it already was)
	UserID  string    // its user
	NewHash string    // the new password's hash
	At      time.Time // now
	// Session and Token are the fresh session returned to the caller, created after every other
	// session of the user was revoked.
	Session *models.Session
	Token   *models.RefreshToken
	// Challenge, when set instead of Session and Token (the account has TOTP on, so the link alone
	// must not log in), is an MFA challenge stored in the same transaction; the store sets its
	// CredentialsVersion to the account's new version.
	Challenge *models.AuthChallenge
	Notice    Mail // the "password changed" notice, queued in the same transaction
}

// MailStore is the storage that account recovery, e-mail verification and the mail outbox need;
// store.DB implements it. It is apart from Store so that Store's fakes need not implement it.
type MailStore interface {
	// EnqueueMail queues m (its ID is assigned) as pending, due at once.
	EnqueueMail(ctx context.Context, m Mail, at time.Time) error
	// CreateEmailToken stores t (its hash only) and queues m in the same transaction. When t's purpose
	// is PurposePasswordReset, every older unused reset token of the user is marked used (superseded)
	// in that transaction too, so that only the newest link works. When replace is not "", m replaces
	// the outbox message with that ID (a resolved KindResetRequest) instead of being added.
	CreateEmailToken(ctx context.Context, t *models.EmailToken, m Mail, replace string) error
	// EmailTokenByHash returns the token with that hash, or ErrNotFound.
	EmailTokenByHash(ctx context.Context, hash []byte) (*models.EmailToken, error)
	// ResetPassword, in one transaction: marks the token used if it is not (else ErrConflict, writing
	// nothing), sets the password hash and moves the credentials version on, marks the e-mail
	// verified if it was not, revokes every live session of the user, creates r.Session with r.Token
	// (or r.Challenge), and queues r.Notice. It returns the ids of the sessions it revoked and the revocation time.
	ResetPassword(ctx context.Context, r PasswordReset) ([]string, time.Time, error)
	// VerifyEmail, in one transaction: marks the token used if it is not (else ErrConflict, writing
	// nothing) and marks the user's e-mail verified. For a PurposeChangeEmail token it also moves the
	// user to t.NewEmail (ErrEmailTaken, writing nothing, when another account has it) and queues
	// notice (to the old address). It returns the updated user.
	VerifyEmail(ctx context.Context, t *models.EmailToken, at time.Time, notice *Mail) (*models.User, error)

	// ClaimMail leases up to n pending messages due at now (next attempt ≤ now, lease absent or over)
	// until now+lease, so that no other replica sends them meanwhile (FOR UPDATE SKIP LOCKED on
	// Postgres), and returns them, oldest first.
	ClaimMail(ctx context.Context, now time.Time, lease time.Duration, n int) ([]Mail, error)
	// MailSent marks a message sent and empties its data.
	MailSent(ctx context.Context, id string, at time.Time) error
	// MailRetry records a failed attempt and makes the message due again at next.
	MailRetry(ctx context.Context, id string, next time.Time, lastErr string) error
	// MailDone ends a message without sending it (status MailFailed after the last attempt, or
	// MailDropped when there is nothing to send) and empties its data.
	MailDone(ctx context.Context, id string, status models.MailStatus, at time.Time, lastErr string) error
}
