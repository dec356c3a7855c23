package auth

import (
	"context"
	"log/slog"
)

// EventKind names an authentication event. Every event becomes one audit log line ("auth event")
// and a call of Options.OnEvent (metrics).
type EventKind string

// The events.
const (
	EventRegister       EventKind = "register"
	EventLogin          EventKind = "login"
	EventRefresh        EventKind = "refresh"
	EventReuseDetected  EventKind = "refresh_token_reuse"
	EventLogout         EventKind = "logout"
	EventLogoutAll      EventKind = "logout_all"
	EventRevokeSession  EventKind = "revoke_session"
	EventChangePassword EventKind = "change_password"
)

// The outcomes of an event.
const (
	OutcomeOK          = "ok"
	OutcomeFailed      = "failed"
	OutcomeRateLimited = "rate_limited"
)

// Event is one authentication event. It never carries a secret: no token, password or hash.
type Event struct {
	Kind      EventKind
	Outcome   string
	UserID    string
	SessionID string
	IP        string
	Revoked   int // sessions this event revoked
}

// emit writes the audit line and tells the observer.
func (s *Service) emit(ctx context.Context, e Event) {
	level := slog.LevelInfo
	if e.Kind == EventReuseDetected {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{slog.String("event", string(e.Kind)), slog.String("outcome", e.Outcome)}
	for _, kv := range [][2]string{{"user_id", e.UserID}, {"session_id", e.SessionID}, {"ip", e.IP}} {
		if kv[1] != "" {
			attrs = append(attrs, slog.String(kv[0], kv[1]))
		}
	}
	if e.Revoked > 0 {
		attrs = append(attrs, slog.Int("revoked", e.Revoked))
	}
	s.log.LogAttrs(ctx, level, "auth event", attrs...)
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(ctx, e)
	}
}
