package auth

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Live session events: what the sessionEvents subscription streams and what closes a WebSocket whose
// session is revoked. A Watch is registered per WebSocket connection (and per subscription) for the
// caller's account; the Service delivers the account's events to it: another login (SESSION_CREATED),
// a revoked session (SESSION_REVOKED: locally made, broadcast by another instance, or found by the
// revocation poll) and a password change (PASSWORD_CHANGED).
//
// Every event reaches the account's watches on every instance: revocations through the revocation
// cache (which knows each session's account: from the store, or from the broadcast), the other
// events through the Broadcaster at once when there is one, and, as the guarantee, through a poll
// that this instance runs every REVOCATION_POLL_INTERVAL while it has watches: the sessions of the
// watched accounts created since the last poll, and their credentials versions. A watch never gets
// one event twice (see Watch.seen), whichever ways it arrives.

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
	// CredentialsVersion is, in a PASSWORD_CHANGED event, the account's users.credentials_version
	// after the change (0: not known). A watch gets each version's event once.
	CredentialsVersion int64
}

// watchBuffer is how many events a Watch holds for a slow reader; past it, events are dropped (the
// revocation of the watched session is never lost: Revoked is a closed channel, not an event).
const watchBuffer = 8

// watchSeen is how many delivered events a Watch remembers to refuse a second copy: the events of
// one account within a poll's overlap, far more than one account makes.
const watchSeen = 16

// pollBatch is how many accounts one query of the live poll asks about.
const pollBatch = 500

// Watch receives the events of one account, and learns when one session of it is revoked.
type Watch struct {
	hub       *hub
	userID    string
	sessionID string
	start     time.Time // registered; the poll finds sessions created before it, which it skips
	events    chan SessionEvent
	revoked   chan struct{}
	once      sync.Once
	// onEvent and onRevoked, when set (WatchSessionFunc, WatchRevocationFunc), are called instead of
	// queueing on events, and when Revoked closes: under the hub's lock, so one at a time and in
	// order; they must not block and must not call into the Service (Stop included).
	onEvent   func(SessionEvent)
	onRevoked func()

	// seen holds the keys of the last watchSeen events delivered (a ring), guarded by hub.mu: the
	// same event arrives locally and back from Redis, from Redis and from the poll, and from polls
	// whose windows overlap.
	seen [watchSeen]string
	next int
}

// Events delivers the account's events (non-blocking for the publisher: a full buffer drops).
func (w *Watch) Events() <-chan SessionEvent { return w.events }

// Revoked is closed when the watched session is revoked.
func (w *Watch) Revoked() <-chan struct{} { return w.revoked }

// Stop unregisters the watch. It is safe to call more than once.
func (w *Watch) Stop() { w.hub.remove(w) }

func (w *Watch) markRevoked() {
	w.once.Do(func() {
		close(w.revoked)
		if w.onRevoked != nil {
			w.onRevoked()
		}
	})
}

// deliver queues e unless this watch already got it. The caller holds hub.mu.
func (w *Watch) deliver(e SessionEvent) {
	if w.events == nil && w.onEvent == nil {
		return // a WatchRevocation: only Revoked matters
	}
	if e.Type == SessionCreated && e.SessionID == w.sessionID {
		return // the watched session existed before the watch: not news to it
	}
	if key := eventKey(e); key != "" {
		if slices.Contains(w.seen[:], key) {
			return
		}
		w.seen[w.next] = key
		w.next = (w.next + 1) % watchSeen
	}
	if w.onEvent != nil {
		w.onEvent(e)
		return
	}
	if e.Type == SessionRevoked && e.SessionID == w.sessionID {
		// The watched session's own revocation is never dropped (its subscription must show it
		// before the socket closes): with the buffer full, the oldest queued event makes room. The
		// publishers hold hub.mu, so only the reader competes, and it only takes events out.
		for {
			select {
			case w.events <- e:
				return
			default:
				select {
				case <-w.events:
				default:
				}
			}
		}
	}
	select {
	case w.events <- e:
	default: // a reader that is that far behind loses events, never the publisher its time
	}
}

// eventKey identifies an event across the ways it can arrive ("": not deduplicated).
func eventKey(e SessionEvent) string {
	switch {
	case e.Type == SessionCreated:
		return "C" + e.SessionID
	case e.Type == SessionRevoked:
		return "R" + e.SessionID
	case e.Type == PasswordChanged && e.CredentialsVersion > 0:
		return "P" + strconv.FormatInt(e.CredentialsVersion, 10)
	}
	return ""
}

// hub holds this instance's watches, by account and by session.
type hub struct {
	store    Store
	now      func() time.Time
	interval time.Duration

	mu        sync.Mutex
	byUser    map[string]map[*Watch]struct{}
	bySession map[string]map[*Watch]struct{}
	// versions is the last credentials version known of each watched account (the poll's baseline
	// for PASSWORD_CHANGED); an account leaves it with its last watch.
	versions map[string]int64
	cursor   time.Time // the last poll's start; zero while there are no watches
}

func newHub(store Store, now func() time.Time, interval time.Duration) *hub {
	return &hub{store: store, now: now, interval: interval,
		byUser: map[string]map[*Watch]struct{}{}, bySession: map[string]map[*Watch]struct{}{}, versions: map[string]int64{}}
}

// WatchSession registers a watch of p's account and session. Call Stop when done.
func (s *Service) WatchSession(p *Principal) *Watch {
	w := &Watch{hub: s.live, userID: p.UserID, sessionID: p.SessionID, start: s.now(),
		events: make(chan SessionEvent, watchBuffer), revoked: make(chan struct{})}
	s.live.add(w)
	return w
}

// WatchRevocation registers a watch that only learns when p's session is revoked (Revoked); it gets
// no events (Events is nil), so it holds no buffer: what a WebSocket needs to close itself. Call Stop
// when done.
func (s *Service) WatchRevocation(p *Principal) *Watch {
	w := &Watch{hub: s.live, userID: p.UserID, sessionID: p.SessionID, start: s.now(), revoked: make(chan struct{})}
	s.live.add(w)
	return w
}

// WatchSessionFunc is WatchSession with callbacks instead of channels, so that a subscription needs
// no goroutine of its own to wait on them: onEvent gets each event (the watched session's own
// SESSION_REVOKED included, before onRevoked), onRevoked (may be nil) is called once when the watched
// session is revoked. Both run under the hub's lock, one at a time: they must not block and must not
// call into the Service (Stop included). Events is nil. Call Stop when done.
func (s *Service) WatchSessionFunc(p *Principal, onEvent func(SessionEvent), onRevoked func()) *Watch {
	w := &Watch{hub: s.live, userID: p.UserID, sessionID: p.SessionID, start: s.now(), revoked: make(chan struct{}),
		onEvent: onEvent, onRevoked: onRevoked}
	s.live.add(w)
	return w
}

// WatchRevocationFunc is WatchRevocation calling onRevoked (under the hub's lock: it must not block
// or call into the Service) when the watched session is revoked.
func (s *Service) WatchRevocationFunc(p *Principal, onRevoked func()) *Watch {
	w := &Watch{hub: s.live, userID: p.UserID, sessionID: p.SessionID, start: s.now(), revoked: make(chan struct{}), onRevoked: onRevoked}
	s.live.add(w)
	return w
}

// WatchSessionContext is WatchSession, stopped when ctx ends (as well as by Stop), so that a watch
// whose reader went away with its context cannot stay registered.
func (s *Service) WatchSessionContext(ctx context.Context, p *Principal) *Watch {
	w := s.WatchSession(p)
	context.AfterFunc(ctx, w.Stop)
	return w
}

// announce delivers a SESSION_CREATED or PASSWORD_CHANGED event to this instance's watches, and to
// the other instances' through the Broadcaster when there is one (bounded like a revocation's
// broadcast; the poll is the guarantee).
func (s *Service) announce(ctx context.Context, e SessionEvent) {
	s.live.publish(e)
	b := s.opts.Broadcaster
	if b == nil {
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if err := b.Publish(pctx, Broadcast{Event: &e}); err != nil {
		s.log.DebugContext(ctx, "session event broadcast failed; other instances will see it by polling", "err", err)
	}
}

// received handles a message of the Broadcaster (another instance's, or this one's own coming back).
func (s *Service) received(m Broadcast) {
	if len(m.SessionIDs) > 0 {
		s.revs.record(m.UserID, m.SessionIDs, s.now())
		s.broadcastsReceived.Add(int64(len(m.SessionIDs)))
	}
	if e := m.Event; e != nil && e.UserID != "" && (e.Type == SessionCreated || e.Type == PasswordChanged) {
		// Like a polled one, an event that happened before a watch (and reached Redis late) is not
		// news to it.
		s.live.mu.Lock()
		s.live.publishLocked(*e, true)
		s.live.mu.Unlock()
	}
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
	if _, watched := h.byUser[w.userID]; !watched {
		delete(h.versions, w.userID)
	}
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
	h.publishLocked(e, false)
}

// publishLocked delivers e to the watches of its account; events from elsewhere (polled or
// broadcast: "late") only to the watches registered when (or before) it happened, by the clocks of
// the two instances, so skew of a few milliseconds can drop or let through an event made right at
// a watch's start. The caller holds h.mu.
func (h *hub) publishLocked(e SessionEvent, late bool) {
	watches, watched := h.byUser[e.UserID]
	if !watched {
		return
	}
	if e.Type == PasswordChanged && e.CredentialsVersion > h.versions[e.UserID] {
		h.versions[e.UserID] = e.CredentialsVersion
	}
	for w := range watches {
		if !late || !e.At.Before(w.start) {
			w.deliver(e)
		}
	}
}

// revoked tells the account's watches of revoked sessions: every watch of the account gets the
// SESSION_REVOKED event of each, and then Revoked is closed for the watches of those sessions. An
// account not known ("": broadcast by an older instance) is the one of the session's own watches.
func (h *hub) revoked(userID string, ids []string, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var hit []*Watch
	for _, id := range ids {
		user := userID
		for w := range h.bySession[id] {
			hit = append(hit, w)
			if user == "" {
				user = w.userID
			}
		}
		e := SessionEvent{Type: SessionRevoked, UserID: user, SessionID: id, At: at}
		if user != "" {
			h.publishLocked(e, false)
		}
		for w := range h.bySession[id] {
			if w.userID != user { // the session's own watches hear of it whatever the account said
				w.deliver(e)
			}
		}
	}
	for _, w := range hit {
		w.markRevoked()
	}
}

// poll reads, for the accounts watched here, the sessions created since the last poll (minus
// pollOverlap, for late commits and clock skew) and the credentials versions, and delivers what the
// watches have not had: the guarantee behind the Broadcaster's best effort, and all there is
// without one. Without watches it touches nothing.
func (h *hub) poll(ctx context.Context) error {
	start := h.now()
	h.mu.Lock()
	users := make([]string, 0, len(h.byUser))
	for u := range h.byUser {
		users = append(users, u)
	}
	since := h.cursor
	if len(users) == 0 {
		h.cursor = time.Time{}
	}
	h.mu.Unlock()
	if len(users) == 0 {
		return nil
	}
	if since.IsZero() {
		since = start
	}
	since = since.Add(-pollOverlap)
	var created []SessionStart
	versions := map[string]int64{}
	for batch := range slices.Chunk(users, pollBatch) {
		starts, err := h.store.SessionsCreatedSince(ctx, batch, since)
		if err != nil {
			return err
		}
		created = append(created, starts...)
		vs, err := h.store.CredentialsVersions(ctx, batch)
		if err != nil {
			return err
		}
		for u, v := range vs {
			versions[u] = v
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range created {
		h.publishLocked(SessionEvent{Type: SessionCreated, UserID: c.UserID, SessionID: c.ID, At: c.CreatedAt}, true)
	}
	for u, v := range versions {
		if _, watched := h.byUser[u]; !watched {
			continue
		}
		known, ok := h.versions[u]
		switch {
		case !ok:
			h.versions[u] = v // the baseline: changes before the first poll are not news
		case v > known:
			h.publishLocked(SessionEvent{Type: PasswordChanged, UserID: u, At: start, CredentialsVersion: v}, false)
		}
	}
	h.cursor = start
	return nil
}

// run polls every interval until ctx ends.
func (h *hub) run(ctx context.Context, log *slog.Logger) {
	pollEvery(ctx, h.interval, h.poll, log, "live session events poll", "other instances' logins and password changes wait for it")
}
