package auth_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/auth/memstore"
)

// evt is an event as the tests compare it.
type evt struct {
	Type      auth.SessionEventType
	SessionID string
}

// drain returns the events queued on w now, without waiting.
func drain(w *auth.Watch) []evt {
	var got []evt
	for {
		select {
		case e := <-w.Events():
			got = append(got, evt{e.Type, e.SessionID})
		default:
			return got
		}
	}
}

// wantEvents fails unless the events queued on w are exactly want, in any order.
func wantLive(t *testing.T, name string, w *auth.Watch, want ...evt) {
	t.Helper()
	got := drain(w)
	key := func(e evt) string { return string(e.Type) + "/" + e.SessionID }
	slices.SortFunc(got, func(a, b evt) int { return cmpStr(key(a), key(b)) })
	slices.SortFunc(want, func(a, b evt) int { return cmpStr(key(a), key(b)) })
	if !slices.Equal(got, want) {
		t.Fatalf("%s: events %v, want %v", name, got, want)
	}
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Every event made on one instance reaches the account's watches on another exactly once: through
// the broadcaster at once, or through the polls without one; the polls that follow a broadcast (and
// re-read the overlap) add no copy. The watched session's revocation closes Revoked after its event.
func TestLiveEventsAcrossInstances(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		for _, broadcast := range []bool{true, false} {
			t.Run(fmt.Sprintf("broadcast=%v", broadcast), func(t *testing.T) {
				d := newDomain(t, st, auth.Options{})
				opts := auth.Options{RevocationPollInterval: time.Hour} // the tests poll
				if broadcast {
					opts.Broadcaster = newFakeBroadcaster()
				}
				a, b := d.replica(opts), d.replica(opts)
				if broadcast {
					ctx, cancel := context.WithCancel(d.ctx)
					t.Cleanup(cancel)
					b.Start(ctx)
					<-opts.Broadcaster.(*fakeBroadcaster).subscribed
				}
				step := func() { // what b's pollers do every interval
					t.Helper()
					if err := b.SyncRevocations(d.ctx); err != nil {
						t.Fatal(err)
					}
					if err := b.PollLive(d.ctx); err != nil {
						t.Fatal(err)
					}
				}
				d.svc = a
				email := fmt.Sprintf("alice-%v@example.com", broadcast)
				p := d.register(email)
				q := d.login(email, pw)
				d.clock.Advance(time.Second) // the watches start after these sessions
				wp := b.WatchSession(d.principal(p))
				wq := b.WatchSession(d.principal(q))
				defer wp.Stop()
				defer wq.Stop()
				step() // the baseline: nothing older than the watches is news
				wantLive(t, "baseline p", wp)
				wantLive(t, "baseline q", wq)

				// Another login on a: SESSION_CREATED.
				r := d.login(email, pw)
				if !broadcast {
					step()
				}
				created := evt{auth.SessionCreated, r.SessionID}
				wantLive(t, "login p", wp, created)
				wantLive(t, "login q", wq, created)
				step()
				step()
				wantLive(t, "login p, polled again", wp)
				wantLive(t, "login q, polled again", wq)

				// One of the account's other sessions revoked on a: SESSION_REVOKED to every watch.
				if ok, err := a.RevokeSession(d.ctx, d.principal(p), r.SessionID); err != nil || !ok {
					t.Fatalf("revokeSession: %v, %v", ok, err)
				}
				if !broadcast {
					step()
				}
				revokedR := evt{auth.SessionRevoked, r.SessionID}
				wantLive(t, "revoke p", wp, revokedR)
				wantLive(t, "revoke q", wq, revokedR)
				if isClosed(wp.Revoked()) || isClosed(wq.Revoked()) {
					t.Fatal("another session's revocation closed a watch")
				}

				// A password change on a (keeps p, revokes q): PASSWORD_CHANGED, and q's revocation,
				// which closes q's watch after its event.
				if _, err := a.ChangePassword(d.ctx, d.principal(p), pw, "a brand new password", auth.Client{}); err != nil {
					t.Fatal(err)
				}
				if !broadcast {
					step()
				}
				if !isClosed(wq.Revoked()) {
					t.Fatal("q's watch not revoked")
				}
				revokedQ, changed := evt{auth.SessionRevoked, q.SessionID}, evt{Type: auth.PasswordChanged}
				if broadcast {
					changed.SessionID = p.SessionID // the changing instance knows the kept session
				}
				wantLive(t, "change p", wp, revokedQ, changed)
				wantLive(t, "change q", wq, revokedQ, changed)
				if isClosed(wp.Revoked()) {
					t.Fatal("the kept session's watch was revoked")
				}
				step()
				step()
				wantLive(t, "change p, polled again", wp)
				wantLive(t, "change q, polled again", wq)
			})
		}
	})
}

// A revocation broadcast in the old format (no user id, from an instance of an older version during a
// rollout) still reaches the watches: those of the session at once (and the account's others, which
// the session's watch names), and an account's other watches on this instance at the next poll,
// once each.
func TestLiveOldFormatRevocation(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{})
		old := d.replica(auth.Options{}) // revokes without telling anyone: the test sends its broadcast
		b := d.replica(auth.Options{RevocationPollInterval: time.Hour})
		d.svc = old
		p := d.register("alice@example.com")
		q := d.login("alice@example.com", pw)
		r := d.login("alice@example.com", pw)
		if err := b.SyncRevocations(d.ctx); err != nil {
			t.Fatal(err)
		}
		wp := b.WatchSession(d.principal(p))
		wq := b.WatchSession(d.principal(q))
		defer wp.Stop()
		defer wq.Stop()

		// q is watched here: its account is known from its watch.
		if ok, err := old.RevokeSession(d.ctx, d.principal(p), q.SessionID); err != nil || !ok {
			t.Fatal(ok, err)
		}
		b.Receive(auth.Broadcast{SessionIDs: []string{q.SessionID}})
		revokedQ := evt{auth.SessionRevoked, q.SessionID}
		if !isClosed(wq.Revoked()) {
			t.Fatal("q's watch not revoked by the old-format broadcast")
		}
		wantLive(t, "q", wq, revokedQ)
		wantLive(t, "p", wp, revokedQ)
		wq.Stop() // as its socket closes

		// r is not watched here: its account is learnt from the poll, which tells p's watch once.
		if ok, err := old.RevokeSession(d.ctx, d.principal(p), r.SessionID); err != nil || !ok {
			t.Fatal(ok, err)
		}
		b.Receive(auth.Broadcast{SessionIDs: []string{r.SessionID}})
		if _, err := b.Authenticate(d.ctx, r.AccessToken); err == nil {
			t.Fatal("r's token accepted after the old-format broadcast")
		}
		wantLive(t, "p before the poll", wp)
		for range 2 {
			if err := b.SyncRevocations(d.ctx); err != nil {
				t.Fatal(err)
			}
		}
		wantLive(t, "p after the polls", wp, evt{auth.SessionRevoked, r.SessionID})
		wantLive(t, "q after the polls", wq)
	})
}

// Stop (or the end of WatchSessionContext's context) unregisters a watch: the hub's maps shrink back
// to nothing, and a stopped watch gets no more events.
func TestLiveStopUnregisters(t *testing.T) {
	t.Parallel()
	d := newDomain(t, memstore.New(), auth.Options{})
	p := d.register("alice@example.com")
	pr := d.principal(p)
	var ws []*auth.Watch
	for range 10 {
		ws = append(ws, d.svc.WatchSession(pr))
	}
	ctx, cancel := context.WithCancel(d.ctx)
	wc := d.svc.WatchSessionContext(ctx, pr)
	if err := d.svc.PollLive(d.ctx); err != nil { // keeps the account's version
		t.Fatal(err)
	}
	if u, s, v := d.svc.LiveSize(); u != 1 || s != 1 || v != 1 {
		t.Fatalf("hub sizes %d %d %d, want 1 1 1", u, s, v)
	}
	for _, w := range ws {
		w.Stop()
		w.Stop() // twice is fine
	}
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if u, s, v := d.svc.LiveSize(); u == 0 && s == 0 && v == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the context's end did not unregister its watch")
		}
		time.Sleep(5 * time.Millisecond)
	}
	d.login("alice@example.com", pw)
	for _, w := range append(ws, wc) {
		wantLive(t, "stopped", w)
	}
}

// Watches start and stop while events are published, revocations applied and polls run, all at once:
// no race, no lost unregistration; and a reader that sees Revoked closed always finds its session's
// SESSION_REVOKED event already queued.
func TestLiveConcurrentWatches(t *testing.T) {
	t.Parallel()
	d := newDomain(t, memstore.New(), auth.Options{})
	fan := newFakeBroadcaster()
	svc := d.replica(auth.Options{Broadcaster: fan, RevocationPollInterval: time.Hour})
	d.svc = svc
	p := d.register("alice@example.com")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				w := svc.WatchSession(d.principal(p))
				drain(w)
				w.Stop()
			}
		})
	}
	wg.Go(func() {
		for range 10 {
			q, err := svc.Login(d.ctx, "alice@example.com", pw, auth.Client{})
			if err != nil {
				t.Error(err)
				return
			}
			w := svc.WatchSession(&auth.Principal{UserID: p.User.ID, SessionID: q.SessionID})
			if _, err := svc.RevokeSession(d.ctx, d.principal(p), q.SessionID); err != nil {
				t.Error(err)
			}
			<-w.Revoked()
			if got := drain(w); !slices.Contains(got, evt{auth.SessionRevoked, q.SessionID}) {
				t.Errorf("Revoked closed without its event queued: %v", got)
			}
			w.Stop()
		}
	})
	wg.Go(func() {
		for range 20 {
			if err := svc.PollLive(d.ctx); err != nil {
				t.Error(err)
			}
			if err := svc.SyncRevocations(d.ctx); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if u, s, v := svc.LiveSize(); u != 0 || s != 0 || v != 0 {
		t.Fatalf("hub sizes after every Stop: %d %d %d, want 0", u, s, v)
	}
}

// A logoutAll of an account with more sessions than a watch buffers: each watch's own SESSION_REVOKED
// is still queued (ahead of Revoked), whatever the order the sessions were revoked in and however
// full the buffer was; the events of other sessions may be dropped for a reader that far behind.
func TestLiveOwnRevocationIsNeverDropped(t *testing.T) {
	t.Parallel()
	d := newDomain(t, memstore.New(), auth.Options{})
	const email = "many@example.com"
	d.register(email)
	var watches []*auth.Watch
	var sessions []string
	for range 20 {
		p := d.login(email, pw)
		pr, err := d.svc.Authenticate(d.ctx, p.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		w := d.svc.WatchSession(pr)
		t.Cleanup(w.Stop)
		watches = append(watches, w)
		sessions = append(sessions, pr.SessionID)
	}
	pr, err := d.svc.Authenticate(d.ctx, d.login(email, pw).AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.svc.LogoutAll(d.ctx, pr); err != nil {
		t.Fatal(err)
	}
	for i, w := range watches {
		if !isClosed(w.Revoked()) {
			t.Fatalf("watch %d: Revoked not closed", i)
		}
		own := false
		for _, e := range drain(w) {
			own = own || e.Type == auth.SessionRevoked && e.SessionID == sessions[i]
		}
		if !own {
			t.Fatalf("watch %d lost its own SESSION_REVOKED", i)
		}
	}
}
