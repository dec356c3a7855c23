package auth

import (
	"sync"
	"time"
)

// Live session events: what the sessionEvents subscription streams and what closes a WebSocket whose
// session is revoked. A Watch is registered per WebSocket connection (and per subscription) for the
// caller's account; the Service delivers the account's events to it: another login (SESSION_CREATED),
// a revoked session (SESSION_REVOKED: locally made, broadcast by another instance, or found by the
// revocation poll) and a password change (PASSWORD_CHANGED).

// SessionEventType is the kind of a SessionEvent (the GraphQL enum SessionEventType).
type SessionEventType string

// The session event types.
const (
	SessionCreated  SessionEventType = "SESSION_CREATED"
	SessionRevoked  SessionEventType = "SESSION_REVOKED"
	PasswordChanged SessionEventType = "PASSWORD_CHANGED"
)

// SessionEvent is something that happened to a session of an account.
type SessionEvent struct {
	Type      SessionEventType
	UserID    string
	SessionID string
	At        time.Time
}

// watchBuffer is how many events a Watch holds for a slow reader; past it, events are dropped (the
// revocation of the watched session is never lost: Revoked is a closed channel, not an event).
const watchBuffer = 32

// Watch receives the events of one account, and learns when one session of it is revoked.
type Watch struct {
	hub       *hub
	userID    string
	sessionID string
	events    chan SessionEvent
	revoked   chan struct{}
	once      sync.Once
}

// Events delivers the account's events (non-blocking for the publisher: a full buffer drops).
func (w *Watch) Events() <-chan SessionEvent { return w.events }

// Revoked is closed when the watched session is revoked.
func (w *Watch) Revoked() <-chan struct{} { return w.revoked }

// Stop unregisters the watch. It is safe to call more than once.
func (w *Watch) Stop() { w.hub.remove(w) }

func (w *Watch) markRevoked() { w.once.Do(func() { close(w.revoked) }) }

// hub holds this instance's watches, by account and by session.
type hub struct {
	mu        sync.Mutex
	byUser    map[string]map[*Watch]struct{}
	bySession map[string]map[*Watch]struct{}
}

func newHub() *hub {
	return &hub{byUser: map[string]map[*Watch]struct{}{}, bySession: map[string]map[*Watch]struct{}{}}
}

// WatchSession registers a watch of p's account and session. Call Stop when done.
func (s *Service) WatchSession(p *Principal) *Watch {
	w := &Watch{hub: s.live, userID: p.UserID, sessionID: p.SessionID, events: make(chan SessionEvent, watchBuffer), revoked: make(chan struct{})}
	s.live.add(w)
	return w
}

func (h *hub) add(w *Watch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	addTo(h.byUser, w.userID, w)
	addTo(h.bySession, w.sessionID, w)
}

func (h *hub) remove(w *Watch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	removeFrom(h.byUser, w.userID, w)
	removeFrom(h.bySession, w.sessionID, w)
}

func addTo(m map[string]map[*Watch]struct{}, key string, w *Watch) {
	set := m[key]
	if set == nil {
		set = map[*Watch]struct{}{}
		m[key] = set
	}
	set[w] = struct{}{}
}

func removeFrom(m map[string]map[*Watch]struct{}, key string, w *Watch) {
	if set := m[key]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(m, key)
		}
	}
}

// publish delivers e to the watches of its account.
func (h *hub) publish(e SessionEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.byUser[e.UserID] {
		select {
		case w.events <- e:
		default: // a reader that is that far behind loses events, never the publisher its time
		}
	}
}

// revoked tells the watches of revoked sessions: each gets the SESSION_REVOKED event of its own
// session, and then Revoked is closed.
func (h *hub) revoked(ids []string, at time.Time) {
	h.mu.Lock()
	var hit []*Watch
	for _, id := range ids {
		for w := range h.bySession[id] {
			hit = append(hit, w)
		}
	}
	h.mu.Unlock()
	for _, w := range hit {
		h.publish(SessionEvent{Type: SessionRevoked, UserID: w.userID, SessionID: w.sessionID, At: at})
	}
	for _, w := range hit {
		w.markRevoked()
	}
}
