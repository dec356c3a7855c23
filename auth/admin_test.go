package auth_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"

	"gqlauth/auth"
	"gqlauth/internal/testdb"
	"gqlauth/models"
	"gqlauth/password"
	"gqlauth/store"
)

// eventLog collects the events given to OnEvent.
type eventLog struct {
	mu     sync.Mutex
	events []auth.Event
}

func (l *eventLog) observe(_ context.Context, e auth.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

// take returns the events so far and forgets them.
func (l *eventLog) take() []auth.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.events
	l.events = nil
	return e
}

// fakeBroadcaster is an in-memory fan-out: Publish records the message and delivers it to every
// subscriber at once, as Redis pub/sub would, then returns err.
type fakeBroadcaster struct {
	mu         sync.Mutex
	published  []auth.Broadcast
	subs       map[int]func(auth.Broadcast)
	next       int
	err        error
	subscribed chan struct{} // receives once per Subscribe, when it is registered
}

func newFakeBroadcaster() *fakeBroadcaster {
	return &fakeBroadcaster{subs: map[int]func(auth.Broadcast){}, subscribed: make(chan struct{}, 8)}
}

func (b *fakeBroadcaster) Publish(_ context.Context, m auth.Broadcast) error {
	m.SessionIDs = slices.Clone(m.SessionIDs)
	b.mu.Lock()
	b.published = append(b.published, m)
	subs := make([]func(auth.Broadcast), 0, len(b.subs))
	for _, d := range b.subs {
		subs = append(subs, d)
	}
	err := b.err
	b.mu.Unlock()
	for _, deliver := range subs {
		deliver(m)
	}
	return err
}

func (b *fakeBroadcaster) Subscribe(ctx context.Context, deliver func(auth.Broadcast)) {
	b.mu.Lock()
	n := b.next
	b.next++
	b.subs[n] = deliver
	b.mu.Unlock()
	b.subscribed <- struct{}{}
	<-ctx.Done()
	b.mu.Lock()
	delete(b.subs, n)
	b.mu.Unlock()
}

// fail makes every later Publish return err (after delivering, as a publish that timed out may have).
func (b *fakeBroadcaster) fail(err error) {
	b.mu.Lock()
	b.err = err
	b.mu.Unlock()
}

// publishedIDs returns every id published so far, in order.
func (b *fakeBroadcaster) publishedIDs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ids []string
	for _, m := range b.published {
		ids = append(ids, m.SessionIDs...)
	}
	return ids
}

// adminFixture is an Admin and a Service over one store, like authctl beside a running server.
type adminFixture struct {
	admin  *auth.Admin
	svc    *auth.Service
	db     *store.DB
	events *eventLog
	fanout *fakeBroadcaster
}

func newAdminFixture(t *testing.T, dsn string) adminFixture {
	t.Helper()
	x := adminFixture{events: &eventLog{}, fanout: newFakeBroadcaster()}
	x.svc, x.db = newTestService(t, dsn, auth.Options{})
	x.admin = auth.NewAdmin(x.db, auth.AdminOptions{
		Password: cheapParams, Logger: slog.New(slog.DiscardHandler), OnEvent: x.events.observe, Broadcaster: x.fanout,
	})
	return x
}

// wantEvents compares kinds, outcomes, users, revocation counts and roles.
func wantEvents(t *testing.T, got []auth.Event, want ...auth.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("events = %+v, want %+v", got, want)
	}
	for i, w := range want {
		g := got[i]
		if g.Kind != w.Kind || g.Outcome != w.Outcome || g.UserID != w.UserID || g.Revoked != w.Revoked || g.Role != w.Role ||
			(w.Deleted != 0) != (g.Deleted != 0) {
			t.Errorf("event %d = %+v, want %+v", i, g, w)
		}
	}
}

// CreateUser applies the registration rules (normalised e-mail, NFC password, validation, taken
// addresses in either form), without a rate limit or a session, and emits an event.
func TestAdminCreateUser(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		x := newAdminFixture(t, dsn)
		ctx := context.Background()
		nfd := norm.NFD.String("pässwört secret")
		u, err := x.admin.CreateUser(ctx, " Alice@Example.COM ", nfd, models.RoleAdmin)
		if err != nil {
			t.Fatal(err)
		}
		if u.Email != "alice@example.com" || u.Role != models.RoleAdmin || u.PasswordHash != "" {
			t.Fatalf("created %+v", u)
		}
		stored, err := x.db.UserByEmail(ctx, "alice@example.com")
		if err != nil || stored.ID != u.ID {
			t.Fatalf("stored %+v, %v", stored, err)
		}
		// Hashed in NFC: it verifies without a rehash, and both forms log in.
		if ok, rehash, err := password.Verify(norm.NFC.String(nfd), stored.PasswordHash, cheapParams); !ok || rehash || err != nil {
			t.Fatalf("NFC verify: ok=%v rehash=%v err=%v", ok, rehash, err)
		}
		for _, pw := range []string{nfd, norm.NFC.String(nfd)} {
			if _, err := x.svc.Login(ctx, "alice@example.com", pw, auth.Client{}); err != nil {
				t.Fatalf("login with %q: %v", pw, err)
			}
		}
		if live, _ := x.db.Sessions(ctx, u.ID, time.Now()); len(live) != 2 {
			t.Fatalf("%d sessions, want only the two logins'", len(live))
		}
		wantEvents(t, x.events.take(), auth.Event{Kind: auth.EventAdminCreateUser, Outcome: auth.OutcomeOK, UserID: u.ID, Role: models.RoleAdmin})

		for _, tc := range []struct {
			name, email, pw string
			role            models.Role
			field           string // the *ValidationError's, or "" for ErrEmailTaken
		}{
			{"taken", "ALICE@example.com", "another password", models.RoleUser, ""},
			{"short password", "bob@example.com", "short", models.RoleUser, "password"},
			{"bad e-mail", "not an address", "long enough", models.RoleUser, "email"},
			{"bad role", "bob@example.com", "long enough", "ROOT", "role"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := x.admin.CreateUser(ctx, tc.email, tc.pw, tc.role)
				var verr *auth.ValidationError
				switch {
				case tc.field == "" && !errors.Is(err, auth.ErrEmailTaken):
					t.Fatalf("err = %v, want ErrEmailTaken", err)
				case tc.field != "" && (!errors.As(err, &verr) || verr.Field != tc.field):
					t.Fatalf("err = %v, want a ValidationError of %s", err, tc.field)
				}
			})
		}
		if _, err := x.db.UserByEmail(ctx, "bob@example.com"); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("a refused create stored a user: %v", err)
		}
		if e := x.events.take(); len(e) != 0 {
			t.Fatalf("refused creates emitted %+v", e)
		}

		// An account stored before canonicalisation, under the raw lower-cased form, takes the address.
		now := time.Now().UTC().Truncate(time.Microsecond)
		legacy := &models.User{ID: "00000000-0000-4000-8000-000000000001", Email: "carol@xn--mnchen-3ya.de", PasswordHash: "x", Role: models.RoleUser, CreatedAt: now, UpdatedAt: now}
		if err := x.db.CreateUserOnly(ctx, legacy); err != nil {
			t.Fatal(err)
		}
		if _, err := x.admin.CreateUser(ctx, "carol@xn--mnchen-3ya.de", "long enough", models.RoleUser); !errors.Is(err, auth.ErrEmailTaken) {
			t.Fatalf("create over a legacy address: %v, want ErrEmailTaken", err)
		}
		if u, err := x.admin.UserByEmail(ctx, "Carol@xn--mnchen-3ya.de"); err != nil || u.ID != legacy.ID {
			t.Fatalf("UserByEmail of a legacy address = %+v, %v", u, err)
		}
	})
}

// SetRole changes the role for the next refresh and emits an event naming the role.
func TestAdminSetRole(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		x := newAdminFixture(t, dsn)
		ctx := context.Background()
		p, err := x.svc.Register(ctx, "alice@example.com", "alice password", auth.Client{})
		if err != nil {
			t.Fatal(err)
		}
		if err := x.admin.SetRole(ctx, p.User.ID, models.RoleAdmin); err != nil {
			t.Fatal(err)
		}
		q, err := x.svc.Refresh(ctx, p.RefreshToken, auth.Client{})
		if err != nil {
			t.Fatal(err)
		}
		if pr, err := x.svc.Authenticate(ctx, q.AccessToken); err != nil || pr.Role != models.RoleAdmin {
			t.Fatalf("after the refresh: %+v, %v; want ADMIN", pr, err)
		}
		if err := x.admin.SetRole(ctx, "00000000-0000-4000-8000-000000000000", models.RoleAdmin); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("unknown user: %v", err)
		}
		var verr *auth.ValidationError
		if err := x.admin.SetRole(ctx, p.User.ID, "ROOT"); !errors.As(err, &verr) || verr.Field != "role" {
			t.Fatalf("bad role: %v", err)
		}
		wantEvents(t, x.events.take(), auth.Event{Kind: auth.EventAdminSetRole, Outcome: auth.OutcomeOK, UserID: p.User.ID, Role: models.RoleAdmin})
	})
}

// RevokeSessions revokes every live session of the user (and only theirs), publishes the ids like
// the Service's own revocations, and emits an event. A Service over the same store refuses the
// access tokens at once: one that has not polled yet asks the database, and a running one with a
// fresh cache (and an hour until its next poll) hears the broadcast.
func TestAdminRevokeSessions(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		x := newAdminFixture(t, dsn)
		ctx := context.Background()
		running, _ := newTestService(t, dsn, auth.Options{Broadcaster: x.fanout, RevocationPollInterval: time.Hour})
		runCtx, cancel := context.WithCancel(ctx)
		t.Cleanup(cancel)
		running.Start(runCtx)
		<-x.fanout.subscribed

		first, err := x.svc.Register(ctx, "alice@example.com", "alice password", auth.Client{})
		if err != nil {
			t.Fatal(err)
		}
		second, err := x.svc.Login(ctx, "alice@example.com", "alice password", auth.Client{})
		if err != nil {
			t.Fatal(err)
		}
		pairs := []*auth.Pair{first, second}
		bob, err := x.svc.Register(ctx, "bob@example.com", "bob password", auth.Client{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range append(pairs, bob) {
			for _, svc := range []*auth.Service{x.svc, running} {
				if _, err := svc.Authenticate(ctx, p.AccessToken); err != nil {
					t.Fatalf("before: %v", err)
				}
			}
		}

		n, err := x.admin.RevokeSessions(ctx, pairs[0].User.ID)
		if err != nil || n != 2 {
			t.Fatalf("RevokeSessions = %d, %v; want 2", n, err)
		}
		want := []string{pairs[0].SessionID, pairs[1].SessionID}
		if got := x.fanout.publishedIDs(); !sameSet(got, want) {
			t.Fatalf("published %v, want %v", got, want)
		}
		if got := running.BroadcastRevocations(); got != 2 {
			t.Fatalf("the running instance received %d revoked ids, want 2", got)
		}
		for _, p := range pairs {
			for name, svc := range map[string]*auth.Service{"unsynced": x.svc, "running": running} {
				if _, err := svc.Authenticate(ctx, p.AccessToken); !errors.Is(err, auth.ErrSessionRevoked) {
					t.Fatalf("%s instance: %v, want ErrSessionRevoked", name, err)
				}
			}
			if _, err := x.svc.Refresh(ctx, p.RefreshToken, auth.Client{}); !errors.Is(err, auth.ErrRefreshTokenInvalid) {
				t.Fatalf("refresh of a revoked session: %v", err)
			}
		}
		if _, err := running.Authenticate(ctx, bob.AccessToken); err != nil {
			t.Fatalf("another user's session: %v", err)
		}

		// Nothing left to revoke: nothing published. A broadcast failure does not fail the revocation.
		if n, err := x.admin.RevokeSessions(ctx, pairs[0].User.ID); err != nil || n != 0 {
			t.Fatalf("second RevokeSessions = %d, %v", n, err)
		}
		x.fanout.fail(errors.New("redis down"))
		if n, err := x.admin.RevokeSessions(ctx, bob.User.ID); err != nil || n != 1 {
			t.Fatalf("RevokeSessions with a failing broadcaster = %d, %v", n, err)
		}
		if _, err := running.Authenticate(ctx, bob.AccessToken); !errors.Is(err, auth.ErrSessionRevoked) {
			t.Fatalf("bob after the revocation: %v", err)
		}
		wantEvents(t, x.events.take(),
			auth.Event{Kind: auth.EventAdminRevokeSessions, Outcome: auth.OutcomeOK, UserID: pairs[0].User.ID, Revoked: 2},
			auth.Event{Kind: auth.EventAdminRevokeSessions, Outcome: auth.OutcomeOK, UserID: pairs[0].User.ID},
			auth.Event{Kind: auth.EventAdminRevokeSessions, Outcome: auth.OutcomeOK, UserID: bob.User.ID, Revoked: 1})
	})
}

// DeleteUser revokes every session in the transaction that deletes the account, publishes the
// revocations, frees the address and emits an event.
func TestAdminDeleteUser(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		x := newAdminFixture(t, dsn)
		ctx := context.Background()
		p, err := x.svc.Register(ctx, "alice@example.com", "alice password", auth.Client{})
		if err != nil {
			t.Fatal(err)
		}
		n, err := x.admin.DeleteUser(ctx, p.User.ID)
		if err != nil || n != 1 {
			t.Fatalf("DeleteUser = %d, %v; want 1", n, err)
		}
		if got := x.fanout.publishedIDs(); !slices.Equal(got, []string{p.SessionID}) {
			t.Fatalf("published %v, want the session %s", got, p.SessionID)
		}
		if _, err := x.svc.Authenticate(ctx, p.AccessToken); !errors.Is(err, auth.ErrSessionRevoked) {
			t.Fatalf("access token of a deleted user: %v", err)
		}
		if _, err := x.svc.Login(ctx, "alice@example.com", "alice password", auth.Client{}); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("login of a deleted user: %v", err)
		}
		if _, err := x.admin.UserByEmail(ctx, "alice@example.com"); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("UserByEmail of a deleted user: %v", err)
		}
		if _, err := x.admin.DeleteUser(ctx, p.User.ID); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("second delete: %v, want ErrNotFound", err)
		}
		u, err := x.admin.CreateUser(ctx, "alice@example.com", "a new password", models.RoleUser)
		if err != nil {
			t.Fatalf("the address is not free again: %v", err)
		}
		wantEvents(t, x.events.take(),
			auth.Event{Kind: auth.EventAdminDeleteUser, Outcome: auth.OutcomeOK, UserID: p.User.ID, Revoked: 1},
			auth.Event{Kind: auth.EventAdminCreateUser, Outcome: auth.OutcomeOK, UserID: u.ID, Role: models.RoleUser})
	})
}

// Purge deletes what the retention lets go and emits an event with the count.
func TestAdminPurge(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		x := newAdminFixture(t, dsn)
		ctx := context.Background()
		p, err := x.svc.Register(ctx, "alice@example.com", "alice password", auth.Client{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x.admin.DeleteUser(ctx, p.User.ID); err != nil {
			t.Fatal(err)
		}
		x.events.take()
		if n, err := x.admin.Purge(ctx, time.Now().Add(-time.Hour), 100); err != nil || n != 0 {
			t.Fatalf("purge within the retention = %d, %v", n, err)
		}
		if n, err := x.admin.Purge(ctx, time.Now().Add(time.Hour), 100); err != nil || n != 3 {
			t.Fatalf("purge after the retention = %d, %v; want 3 (the session, its refresh token, the user)", n, err)
		}
		wantEvents(t, x.events.take(),
			auth.Event{Kind: auth.EventAdminPurge, Outcome: auth.OutcomeOK},
			auth.Event{Kind: auth.EventAdminPurge, Outcome: auth.OutcomeOK, Deleted: 3})
	})
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
