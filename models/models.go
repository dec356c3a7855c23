// Package models holds the GORM models of the service: users, their sessions and the refresh tokens
// that keep a session alive. It has fields, tags and table names only: no queries and no rules.
package models

import (
	"fmt"
	"io"
	"strconv"
	"time"
)

// Role is what a user may do. It is stored as text and exposed as the GraphQL enum Role.
type Role string

// The roles, lowest first.
const (
	RoleUser  Role = "USER"
	RoleAdmin Role = "ADMIN"
)

// Rank orders roles so that a check can ask for "at least" a role; unknown roles rank lowest.
func (r Role) Rank() int {
	switch r {
	case RoleUser:
		return 1
	case RoleAdmin:
		return 2
	}
	return 0
}

// IsValid reports whether r is a known role.
func (r Role) IsValid() bool { return r.Rank() > 0 }

// UnmarshalGQL reads the GraphQL enum value.
func (r *Role) UnmarshalGQL(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("role must be a string")
	}
	if !Role(s).IsValid() {
		return fmt.Errorf("%q is not a valid Role", s)
	}
	*r = Role(s)
	return nil
}

// MarshalGQL writes the GraphQL enum value.
func (r Role) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(r))) }

// User is an account. Email is stored in its canonical form (auth.NormalizeEmail), so the unique
// index makes addresses unique regardless of case, width or Unicode normalisation.
//
// CredentialsVersion moves on with every password change (not with a rehash): a login creates its
// session only if the version it verified is still current, so a login racing a password change
// cannot open a session with the old password. DeletedAt marks a deleted account: its sessions were
// revoked with it and its e-mail freed; the row stays until the janitor purges it, after every access
// token it issued has expired, so that revocations of its sessions stay visible to every instance.
type User struct {
	ID                 string     `gorm:"primaryKey;size:36"`
	Email              string     `gorm:"size:254;not null;uniqueIndex"`
	PasswordHash       string     `gorm:"size:255;not null" json:"-"`
	Role               Role       `gorm:"size:16;not null;default:USER"`
	CredentialsVersion int64      `gorm:"not null;default:0"`
	CreatedAt          time.Time  `gorm:"not null"`
	UpdatedAt          time.Time  `gorm:"not null"`
	DeletedAt          *time.Time `gorm:"index"`
	EmailVerifiedAt    *time.Time // set by verifyEmail, or by a password reset (the link reached the inbox)

	// TOTPSecret is the TOTP shared secret sealed with the server's TOTP key (AES-256-GCM, never the
	// plain secret). It is pending until TOTPEnabledAt is set by a confirmed code. TOTPLastStep is the
	// last 30-second step whose code was accepted: a code of that step or an earlier one is refused, so
	// a code works once.
	TOTPSecret    []byte     `gorm:"column:totp_secret" json:"-"`
	TOTPEnabledAt *time.Time `gorm:"column:totp_enabled_at"`
	TOTPLastStep  int64      `gorm:"column:totp_last_step;not null;default:0"`
}

// TableName pins the table name.
func (User) TableName() string { return "users" }

// Session is one login: it lives as long as it keeps being refreshed (ExpiresAt moves forward on every
// refresh) and ends early when RevokedAt is set. Access tokens carry the session id, so revoking a
// session also refuses its access tokens.
type Session struct {
	ID         string     `gorm:"primaryKey;size:36"`
	UserID     string     `gorm:"size:36;not null;index"`
	User       *User      `gorm:"constraint:OnDelete:CASCADE"`
	CreatedAt  time.Time  `gorm:"not null"`
	LastUsedAt time.Time  `gorm:"not null"`
	ExpiresAt  time.Time  `gorm:"not null"` // not indexed: it changes on every refresh, and an index would make each refresh a non-HOT update
	RevokedAt  *time.Time `gorm:"index"`
	UserAgent  *string    `gorm:"size:512"`
	IP         *string    `gorm:"size:64"`
	// AMR is how the session's user last authenticated (RFC 8176 method names, comma-separated:
	// "pwd", "pwd,otp", "webauthn") and AuthTime when; both go into every access token of the session
	// (amr, auth_time), refreshes keep them and reauthenticate moves them on. A session from before
	// they were recorded has AMR "pwd" and a nil AuthTime, which means CreatedAt.
	AMR      string     `gorm:"column:amr;size:64;not null;default:pwd"`
	AuthTime *time.Time `gorm:"column:auth_time"`
}

// TableName pins the table name.
func (Session) TableName() string { return "sessions" }

// RefreshToken is one link of a session's rotation chain. Only the SHA-256 of the token is stored,
// so a copy of the database cannot be replayed. RotatedAt is set when the token was exchanged for its
// successor (ParentID points back to the token it replaced); presenting a rotated token again is reuse.
type RefreshToken struct {
	ID        uint64    `gorm:"primaryKey;autoIncrement"`
	TokenHash []byte    `gorm:"size:32;not null;uniqueIndex"`
	SessionID string    `gorm:"size:36;not null;index"`
	Session   *Session  `gorm:"constraint:OnDelete:CASCADE"`
	UserID    string    `gorm:"size:36;not null;index"`
	User      *User     `gorm:"constraint:OnDelete:CASCADE"`
	ParentID  *uint64   // the token it replaced: an audit trail, never queried, so not indexed
	CreatedAt time.Time `gorm:"not null"`
	ExpiresAt time.Time `gorm:"not null;index"`
	RotatedAt *time.Time
	RevokedAt *time.Time
}

// TableName pins the table name.
func (RefreshToken) TableName() string { return "refresh_tokens" }

// EmailPurpose is what an EmailToken may be used for: a token of one purpose never works for another.
type EmailPurpose string

// The purposes of e-mail tokens.
const (
	PurposePasswordReset EmailPurpose = "password_reset"
	PurposeVerifyEmail   EmailPurpose = "verify_email"
	PurposeChangeEmail   EmailPurpose = "change_email"
)

// EmailToken is a single-use token mailed to a user: a password-reset link, an e-mail verification
// link, or the link that confirms a change of address (NewEmail). Only the SHA-256 of the token is
// stored. UsedAt is set when it is used, or when a newer token of the same purpose supersedes it.
type EmailToken struct {
	ID        string       `gorm:"primaryKey;size:36"`
	UserID    string       `gorm:"size:36;not null;index"`
	User      *User        `gorm:"constraint:OnDelete:CASCADE"`
	Purpose   EmailPurpose `gorm:"size:16;not null"`
	TokenHash []byte       `gorm:"size:32;not null;uniqueIndex"`
	NewEmail  *string      `gorm:"size:254"`
	CreatedAt time.Time    `gorm:"not null"`
	ExpiresAt time.Time    `gorm:"not null;index"` // the janitor deletes expired tokens
	UsedAt    *time.Time
}

// TableName pins the table name.
func (EmailToken) TableName() string { return "email_tokens" }

// MailStatus is where an outbox message stands.
type MailStatus string

// The states of an outbox message.
const (
	MailPending MailStatus = "pending" // waiting for (another) attempt
	MailSent    MailStatus = "sent"    // delivered to the SMTP server
	MailFailed  MailStatus = "failed"  // given up after the last attempt
	MailDropped MailStatus = "dropped" // nothing to send (a reset requested for an unknown address)
)

// OutboxMail is one mail to send, written in the same transaction as what it announces, and sent by
// the mail sender of any replica. Data (JSON) holds the template's values, a link with its raw token
// included, only until the mail is sent or given up: then it is emptied, so that nothing stored can
// reproduce a usable token. LeasedUntil keeps other replicas off a message being sent.
type OutboxMail struct {
	ID            string     `gorm:"primaryKey;size:36"`
	Kind          string     `gorm:"size:32;not null"`
	To            string     `gorm:"column:to_address;size:254;not null"`
	Data          string     `gorm:"type:text;not null;default:''"`
	Status        MailStatus `gorm:"size:16;not null;index:idx_mail_outbox_due,priority:1"`
	Attempts      int        `gorm:"not null;default:0"`
	NextAttemptAt time.Time  `gorm:"not null;index:idx_mail_outbox_due,priority:2"`
	LeasedUntil   *time.Time
	LastError     string    `gorm:"size:512;not null;default:''"`
	CreatedAt     time.Time `gorm:"not null"`
	SentAt        *time.Time
}

// TableName pins the table name.
func (OutboxMail) TableName() string { return "mail_outbox" }

// RecoveryCode is one single-use TOTP recovery code. Only a SHA-256 of the user id and the code is
// stored: the codes are random (80 bits), so a slow hash would add cost without adding safety.
type RecoveryCode struct {
	ID        uint64    `gorm:"primaryKey;autoIncrement"`
	UserID    string    `gorm:"size:36;not null;index"`
	User      *User     `gorm:"constraint:OnDelete:CASCADE"`
	CodeHash  []byte    `gorm:"size:32;not null"`
	CreatedAt time.Time `gorm:"not null"`
	UsedAt    *time.Time
}

// TableName pins the table name.
func (RecoveryCode) TableName() string { return "recovery_codes" }

// ChallengeKind is what an AuthChallenge is for.
type ChallengeKind string

// The kinds of challenges.
const (
	ChallengeMFA             ChallengeKind = "mfa"              // a login waiting for its second factor
	ChallengePasskeyRegister ChallengeKind = "passkey_register" // a passkey registration begun
	ChallengePasskeyLogin    ChallengeKind = "passkey_login"    // a passkey login begun (discoverable)
)

// AuthChallenge is a short-lived, single-use step of a multi-step authentication: the MFA challenge
// that login hands out (found by the SHA-256 of its opaque token, TokenHash), or the WebAuthn
// ceremony state of a passkey registration or login (Data: go-webauthn's SessionData as JSON, which
// holds the random challenge the authenticator signs). UsedAt is set when it is consumed; Attempts
// counts wrong MFA codes. The janitor deletes expired ones.
type AuthChallenge struct {
	ID                 string        `gorm:"primaryKey;size:36"`
	Kind               ChallengeKind `gorm:"size:24;not null"`
	UserID             *string       `gorm:"size:36;index"`
	User               *User         `gorm:"constraint:OnDelete:CASCADE"`
	TokenHash          []byte        `gorm:"size:32;uniqueIndex"`
	Data               string        `gorm:"type:text;not null;default:''"`
	CredentialsVersion int64         `gorm:"not null;default:0"` // the password version an MFA challenge's login verified
	Attempts           int           `gorm:"not null;default:0"`
	CreatedAt          time.Time     `gorm:"not null"`
	ExpiresAt          time.Time     `gorm:"not null;index"`
	UsedAt             *time.Time
}

// TableName pins the table name.
func (AuthChallenge) TableName() string { return "auth_challenges" }

// Passkey is a WebAuthn credential (a discoverable one: a passkey) registered by a user. Credential
// holds go-webauthn's Credential as JSON (public key, flags, AAGUID, transports); CredentialID is its
// id, unique across users; SignCount is the authenticator's signature counter, kept in a column of its
// own so that a login can move it on with a conditional update.
type Passkey struct {
	ID           string    `gorm:"primaryKey;size:36"`
	UserID       string    `gorm:"size:36;not null;index"`
	User         *User     `gorm:"constraint:OnDelete:CASCADE"`
	CredentialID []byte    `gorm:"size:1023;not null;uniqueIndex"`
	Credential   string    `gorm:"type:text;not null"`
	SignCount    int64     `gorm:"not null;default:0"`
	Name         string    `gorm:"size:64;not null"`
	CreatedAt    time.Time `gorm:"not null"`
	LastUsedAt   *time.Time
}

// TableName pins the table name.
func (Passkey) TableName() string { return "passkeys" }
