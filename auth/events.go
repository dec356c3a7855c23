package auth

import (
	"context"
	"log/slog"

	"gqlauth/models"
)

// EventKind names an authentication event. Every event becomes one audit log line ("auth event")
// and a call of Options.OnEvent (metrics).
type EventKind string

// The events of the Service.
const (
	EventRegister       EventKind = "register"
	EventLogin          EventKind = "login"
	EventRefresh        EventKind = "refresh"
	EventReuseDetected  EventKind = "refresh_token_reuse"
	EventLogout         EventKind = "logout"
	EventLogoutAll      EventKind = "logout_all"
	EventRevokeSession  EventKind = "revoke_session"
	EventChangePassword EventKind = "change_password"

	// Account recovery and e-mail verification.
	EventPasswordResetRequest EventKind = "password_reset_request" // a reset was asked for (user unknown then)
	EventPasswordResetMail    EventKind = "password_reset_mail"    // the sender found the account and issued a link
	EventPasswordReset        EventKind = "password_reset"
	EventRequestVerification  EventKind = "request_email_verification"
	EventVerifyEmail          EventKind = "verify_email"
	EventChangeEmailRequest   EventKind = "change_email_request"
	EventChangeEmail          EventKind = "change_email" // verifyEmail with a change-email token moved the account

	// Second factors and step-up.
	EventTOTPEnrollment EventKind = "totp_enrollment"           // startTotpEnrollment: a new pending secret
	EventTOTPEnable     EventKind = "totp_enable"               // confirmTotpEnrollment
	EventTOTPDisable    EventKind = "totp_disable"              // disableTotp
	EventRecoveryCodes  EventKind = "recovery_codes_regenerate" // regenerateRecoveryCodes
	EventVerifyMFA      EventKind = "verify_mfa"                // the second step of a login
	EventReauthenticate EventKind = "reauthenticate"            // a session's authentication renewed
)

// The events of the Admin (authctl): an administrator, not the user, made the change.
const (
	EventAdminCreateUser     EventKind = "admin_create_user"
	EventAdminSetRole        EventKind = "admin_set_role"
	EventAdminRevokeSessions EventKind = "admin_revoke_sessions"
	EventAdminDeleteUser     EventKind = "admin_delete_user"
	EventAdminPurge          EventKind = "admin_purge"
	EventAdminDisableTOTP    EventKind = "admin_disable_totp"
)

// The outcomes of an event.
const (
	OutcomeOK          = "ok"
	OutcomeFailed      = "failed"
	OutcomeRateLimited = "rate_limited"
	// OutcomeEmailNotVerified: a login with the right password of an unverified account, refused
	// under Options.RequireEmailVerification.
	OutcomeEmailNotVerified = "email_not_verified"
	// OutcomeMFARequired: the password was right (a login, a password reset, or reauthenticate without
	// a code) and the account has TOTP on, so the second factor is still owed.
	OutcomeMFARequired = "mfa_required"
)

// Event is one authentication event. It never carries a secret: no token, password or hash.
type Event struct {
	Kind      EventKind
	Outcome   string
	UserID    string
	SessionID string
	IP        string
	Revoked   int         // sessions this event revoked
	Role      models.Role // the role given (admin_create_user, admin_set_role)
	Deleted   int64       // rows deleted (admin_purge)
}

// emit writes the audit line and tells the observer.
func (s *Service) emit(ctx context.Context, e Event) {
	emit(ctx, s.log, s.opts.OnEvent, e)
	s.publishLive(ctx, e)
}

// publishLive turns the events that open a session into SESSION_CREATED live session events
// (live.go). A password change is announced where its new credentials version is known
// (changePassword, resetPassword); revocations reach the watches through the revocation cache,
// which sees every one (made here, broadcast or polled).
func (s *Service) publishLive(ctx context.Context, e Event) {
	if e.Outcome != OutcomeOK || e.UserID == "" || e.SessionID == "" {
		return
	}
	switch e.Kind {
	case EventRegister, EventLogin, EventVerifyMFA, EventPasskeyLogin, EventPasswordReset:
		s.announce(ctx, SessionEvent{Type: SessionCreated, UserID: e.UserID, SessionID: e.SessionID, At: s.now()})
	}
}

// emit writes the audit line of e to log and calls observe (when not nil): the one path of every
// event, the Service's and the Admin's.
func emit(ctx context.Context, log *slog.Logger, observe func(context.Context, Event), e Event) {
	level := slog.LevelInfo
	if e.Kind == EventReuseDetected {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{slog.String("event", string(e.Kind)), slog.String("outcome", e.Outcome)}
	for _, kv := range [][2]string{{"user_id", e.UserID}, {"session_id", e.SessionID}, {"ip", e.IP}, {"role", string(e.Role)}} {
		if kv[1] != "" {
			attrs = append(attrs, slog.String(kv[0], kv[1]))
		}
	}
	if e.Revoked > 0 {
		attrs = append(attrs, slog.Int("revoked", e.Revoked))
	}
	if e.Deleted > 0 {
		attrs = append(attrs, slog.Int64("deleted", e.Deleted))
	}
	log.LogAttrs(ctx, level, "auth event", attrs...)
	if observe != nil {
		observe(ctx, e)
	}
}
