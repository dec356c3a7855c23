package graph_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
	"gqlauth/internal/wsclient"
)

// sessionEvents over graphql-ws, through the real server (apptest: app.New behind a loopback
// listener) with a real client (internal/wsclient over github.com/coder/websocket).

const eventsQ = `subscription { sessionEvents { type sessionId current at } }`

type sessionEvent struct {
	Type      string `json:"type"`
	SessionID string `json:"sessionId"`
	Current   bool   `json:"current"`
	At        string `json:"at"`
}

// subscribeEvents opens a socket authenticated with access and subscribes to sessionEvents (id
// "ev"); it returns once the subscription watches the account.
func subscribeEvents(t *testing.T, e *apptest.Env, access string) *wsclient.Conn {
	t.Helper()
	c := e.InitWS(access)
	before := e.App.Sockets.Subscriptions()
	if err := c.Subscribe(apptest.WSContext(t), "ev", eventsQ, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, apptest.WSWait, "the subscription to start", func() bool { return e.App.Sockets.Subscriptions() > before })
	return c
}

// nextEvent returns the next sessionEvents event on c, failing on any other message.
func nextEvent(t *testing.T, c *wsclient.Conn) sessionEvent {
	t.Helper()
	m, err := c.Next(apptest.WSContext(t))
	if err != nil {
		t.Fatalf("waiting for an event: %v", err)
	}
	if m.Type != "next" || m.ID != "ev" {
		t.Fatalf("got %s %s %s, want next ev", m.Type, m.ID, m.Payload)
	}
	var out struct {
		Data struct {
			SessionEvents sessionEvent `json:"sessionEvents"`
		} `json:"data"`
		Errors []apptest.GQLError `json:"errors"`
	}
	if err := json.Unmarshal(m.Payload, &out); err != nil || len(out.Errors) > 0 {
		t.Fatalf("event %s: %v", m.Payload, err)
	}
	return out.Data.SessionEvents
}

// wantClose waits for c's close and checks its code and reason.
func wantClose(t *testing.T, c *wsclient.Conn, code int, reason string) {
	t.Helper()
	got, why, err := c.Closed(apptest.WSContext(t))
	if err != nil {
		t.Fatalf("socket not closed: %v", err)
	}
	if got != code || why != reason {
		t.Fatalf("closed with %d %q, want %d %q", got, why, code, reason)
	}
}

// wantRevokedThenClosed checks the end of a socket whose session was revoked at start: events up to
// its own SESSION_REVOKED (current: true), then the close 4403
// SESSION_REVOKED within bound of start.
func wantRevokedThenClosed(t *testing.T, c *wsclient.Conn, sid string, start time.Time, bound time.Duration) []string {
	t.Helper()
	var seen []string
	for {
		ev := nextEvent(t, c)
		seen = append(seen, ev.Type)
		if ev.Type == "SESSION_REVOKED" && ev.Current {
			if ev.SessionID != sid {
				t.Fatalf("current SESSION_REVOKED for %s, want %s", ev.SessionID, sid)
			}
			break
		}
	}
	// The stream ended with that event: gqlgen may get its complete out before the close (or not).
	if m, err := c.Next(apptest.WSContext(t)); !errors.Is(err, wsclient.ErrClosed) && (err != nil || m.Type != "complete" || m.ID != "ev") {
		t.Fatalf("after the revocation event: %+v %v, want complete ev or the close", m, err)
	}
	wantClose(t, c, 4403, "SESSION_REVOKED")
	if d := time.Since(start); d > bound {
		t.Fatalf("socket closed %s after the revocation, want within %s", d, bound)
	}
	return seen
}

// sessionID returns the id of access's own session.
func sessionID(t *testing.T, e *apptest.Env, access string) string {
	t.Helper()
	r := e.Post(`{ sessions { id current } }`, nil, apptest.Bearer(access)...)
	apptest.WantOK(t, r)
	var ss []struct {
		ID      string `json:"id"`
		Current bool   `json:"current"`
	}
	r.Decode(t, "sessions", &ss)
	for _, s := range ss {
		if s.Current {
			return s.ID
		}
	}
	t.Fatalf("no current session in %s", r.Raw)
	return ""
}

// connection_init without a usable token closes the socket with 4403 and the AuthErrorReason,
// within a second; the key is read in any case.
func TestSubscriptionAuthentication(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		u := uniq()
		p := e.Register("ws-auth-"+u+"@example.com", pw)
		revoked := e.Login("ws-auth-"+u+"@example.com", pw)
		apptest.WantOK(t, e.Post(logoutQ, map[string]any{"t": revoked.RefreshToken}))
		for _, tc := range []struct {
			name    string
			payload map[string]any
			reason  string
		}{
			{"no payload", nil, "TOKEN_MISSING"},
			{"no Authorization", map[string]any{"other": "x"}, "TOKEN_MISSING"},
			{"scheme alone", map[string]any{"Authorization": "Bearer"}, "TOKEN_MISSING"},
			{"garbage", map[string]any{"Authorization": "Bearer not.a.jwt"}, "TOKEN_INVALID"},
			{"other scheme", map[string]any{"Authorization": "Basic " + p.AccessToken}, "TOKEN_INVALID"},
			{"not a string", map[string]any{"authorization": 42}, "TOKEN_INVALID"},
			{"revoked", map[string]any{"Authorization": "Bearer " + revoked.AccessToken}, "SESSION_REVOKED"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := e.DialWS(wsclient.Options{})
				if err := c.Init(apptest.WSContext(t), tc.payload); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				wantClose(t, c, 4403, tc.reason)
				if d := time.Since(start); d > time.Second {
					t.Fatalf("closed %s after connection_init, want within 1s", d)
				}
			})
		}
		for _, key := range []string{"Authorization", "authorization", "AUTHORIZATION"} {
			c := e.DialWS(wsclient.Options{})
			if err := c.Init(apptest.WSContext(t), map[string]any{key: "Bearer " + p.AccessToken}); err != nil {
				t.Fatal(err)
			}
			if m, err := c.Next(apptest.WSContext(t)); err != nil || m.Type != "connection_ack" {
				t.Fatalf("key %s: %+v %v, want connection_ack", key, m, err)
			}
		}
		// An expired token (the fake clock moves past exp and the leeway).
		e.Clock.Advance(e.Config.AccessTokenTTL + e.Config.JWTLeeway + time.Second)
		c := e.DialWS(wsclient.Options{})
		if err := c.Init(apptest.WSContext(t), map[string]any{"Authorization": "Bearer " + p.AccessToken}); err != nil {
			t.Fatal(err)
		}
		wantClose(t, c, 4403, "TOKEN_EXPIRED")
	})
}

// sessionEvents streams the account's events to a socket whose session lives on.
func TestSessionEventsStream(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		email := "ws-events-" + uniq() + "@example.com"
		a := e.Register(email, pw)
		sidA := sessionID(t, e, a.AccessToken)
		c := subscribeEvents(t, e, a.AccessToken)

		// A password change from this very session (the only one: no other is revoked):
		// PASSWORD_CHANGED, current; the session survives.
		apptest.WantOK(t, e.Post(changePasswordQ, map[string]any{"i": map[string]any{"currentPassword": pw, "newPassword": "a new password"}},
			apptest.Bearer(a.AccessToken)...))
		if ev := nextEvent(t, c); ev.Type != "PASSWORD_CHANGED" || ev.SessionID != sidA || !ev.Current || ev.At == "" {
			t.Fatalf("after a password change: %+v", ev)
		}
		// Another login: SESSION_CREATED, not current.
		b := e.Login(email, "a new password")
		sidB := sessionID(t, e, b.AccessToken)
		if ev := nextEvent(t, c); ev.Type != "SESSION_CREATED" || ev.SessionID != sidB || ev.Current || ev.At == "" {
			t.Fatalf("after another login: %+v", ev)
		}
		select {
		case <-c.Done():
			t.Fatal("the socket closed although its session lives on")
		default:
		}
		// Completing the subscription ends it; the socket stays usable.
		if err := c.Complete(apptest.WSContext(t), "ev"); err != nil {
			t.Fatal(err)
		}
		eventually(t, apptest.WSWait, "the subscription to end", func() bool { return e.App.Sockets.Subscriptions() == 0 })
	})
}

// The revocation of another session of the account: SESSION_REVOKED, current false, and the socket
// stays open. (The hub publishes a revocation to every watch of the account once revocations carry
// the user id: branch i15-hub.)
func TestSessionEventsOtherSessionRevoked(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		email := "ws-other-" + uniq() + "@example.com"
		a := e.Register(email, pw)
		b := e.Login(email, pw)
		sidB := sessionID(t, e, b.AccessToken)
		c := subscribeEvents(t, e, a.AccessToken)
		apptest.WantOK(t, e.Post(`mutation($id: ID!) { revokeSession(id: $id) }`, map[string]any{"id": sidB}, apptest.Bearer(a.AccessToken)...))
		if ev := nextEvent(t, c); ev.Type != "SESSION_REVOKED" || ev.SessionID != sidB || ev.Current {
			t.Fatalf("after revoking another session: %+v", ev)
		}
		// Still open: a ping is answered.
		if err := c.Send(apptest.WSContext(t), wsclient.Message{Type: "ping"}); err != nil {
			t.Fatal(err)
		}
		if m, err := c.Next(apptest.WSContext(t)); err != nil || m.Type != "pong" {
			t.Fatalf("after another session's revocation: %+v %v, want pong", m, err)
		}
	})
}

// Every way a session ends reaches its sockets: SESSION_REVOKED (current: true) on each
// sessionEvents subscription, then the close 4403 SESSION_REVOKED within 1 s (2 s for authctl,
// another process: this instance finds it by its poll).
func TestRevocationClosesSocket(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		for _, tc := range []struct {
			name   string
			bound  time.Duration
			revoke func(t *testing.T, email string, mine, other apptest.Pair, sid string)
		}{
			{"logout", time.Second, func(t *testing.T, _ string, mine, _ apptest.Pair, _ string) {
				apptest.WantOK(t, e.Post(logoutQ, map[string]any{"t": mine.RefreshToken}))
			}},
			{"logout by access token", time.Second, func(t *testing.T, _ string, mine, _ apptest.Pair, _ string) {
				apptest.WantOK(t, e.Post(`mutation { logout }`, nil, apptest.Bearer(mine.AccessToken)...))
			}},
			{"logoutAll from another session", time.Second, func(t *testing.T, _ string, _, other apptest.Pair, _ string) {
				apptest.WantOK(t, e.Post(`mutation { logoutAll }`, nil, apptest.Bearer(other.AccessToken)...))
			}},
			{"revokeSession", time.Second, func(t *testing.T, _ string, _, other apptest.Pair, sid string) {
				apptest.WantOK(t, e.Post(`mutation($id: ID!) { revokeSession(id: $id) }`, map[string]any{"id": sid}, apptest.Bearer(other.AccessToken)...))
			}},
			{"changePassword elsewhere", time.Second, func(t *testing.T, _ string, _, other apptest.Pair, _ string) {
				apptest.WantOK(t, e.Post(changePasswordQ, map[string]any{"i": map[string]any{"currentPassword": pw, "newPassword": "a new password"}},
					apptest.Bearer(other.AccessToken)...))
			}},
			{"refresh-token reuse", time.Second, func(t *testing.T, _ string, mine, _ apptest.Pair, _ string) {
				apptest.WantOK(t, e.Refresh(mine.RefreshToken))
				e.Clock.Advance(e.Config.RefreshReuseGrace + time.Second)
				apptest.WantCode(t, e.Refresh(mine.RefreshToken), "INVALID_REFRESH_TOKEN", "")
			}},
			{"authctl", 2 * time.Second, func(t *testing.T, email string, _, _ apptest.Pair, _ string) {
				// authctl on the Env's clock: the server polls for revocations from its own (fake) now,
				// which the "refresh-token reuse" case above advanced past the real one.
				admin := auth.NewAdmin(e.App.Store, auth.AdminOptions{Password: apptest.CheapPassword, Logger: apptest.DiscardLogger(), Now: e.Clock.Now})
				u, err := admin.UserByEmail(context.Background(), email)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := admin.RevokeSessions(context.Background(), u.ID); err != nil {
					t.Fatal(err)
				}
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				email := "ws-revoke-" + uniq() + "@example.com"
				mine := e.Register(email, pw)
				other := e.Login(email, pw)
				sid := sessionID(t, e, mine.AccessToken)
				c1 := subscribeEvents(t, e, mine.AccessToken)
				c2 := subscribeEvents(t, e, mine.AccessToken) // a second tab of the same session
				start := time.Now()
				tc.revoke(t, email, mine, other, sid)
				wantRevokedThenClosed(t, c1, sid, start, tc.bound)
				wantRevokedThenClosed(t, c2, sid, start, tc.bound)
			})
		}
	})
}

// A socket without any subscription closes too, and a subscribe sent after the revocation is
// refused rather than served from the connection's first check.
func TestRevocationClosesIdleSocket(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	p := e.Register("ws-idle-"+uniq()+"@example.com", pw)
	c := e.DialWS(wsclient.Options{})
	if err := c.InitBearer(apptest.WSContext(t), p.AccessToken); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	apptest.WantOK(t, e.Post(logoutQ, map[string]any{"t": p.RefreshToken}))
	wantClose(t, c, 4403, "SESSION_REVOKED")
	if d := time.Since(start); d > time.Second {
		t.Fatalf("closed after %s, want within 1s", d)
	}
}

// An access token that expires while connected closes the socket with 4403 TOKEN_EXPIRED (at exp
// plus the leeway, on the real clock).
func TestTokenExpiryClosesSocket(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{RealTime: true, Vars: map[string]string{"ACCESS_TOKEN_TTL": "2s", "JWT_LEEWAY": "0s"}})
	p := e.Register("ws-expiry-"+uniq()+"@example.com", pw)
	exp, err := time.Parse(time.RFC3339, p.AccessTokenExpiresAt)
	if err != nil {
		t.Fatal(err)
	}
	c := subscribeEvents(t, e, p.AccessToken)
	wantClose(t, c, 4403, "TOKEN_EXPIRED")
	now := time.Now()
	if now.Before(exp) {
		t.Fatalf("closed at %s, before the token's exp %s", now, exp)
	}
	if now.After(exp.Add(time.Second)) {
		t.Fatalf("closed at %s, over 1s after the token's exp %s", now, exp)
	}
}

// Two instances on one database: a session revoked on one closes its sockets on the other within
// 2 s through the database poll alone, and within 1 s with the Redis fan-out (the goal is
// 100 ms; 1 s keeps the assertion robust on a loaded machine).
func TestRevocationClosesSocketOnAnotherInstance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		redis bool
		bound time.Duration
	}{{"poll", false, 2 * time.Second}, {"redis", true, time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dsn := testdb.Postgres(t)
			vars := map[string]string{}
			if tc.redis {
				vars["REDIS_URL"] = testdb.Redis(t)
			}
			dir := t.TempDir()
			a := apptest.New(t, dsn, apptest.Options{RealTime: true, DataDir: dir, Vars: vars})
			b := apptest.New(t, dsn, apptest.Options{RealTime: true, DataDir: dir, Vars: vars})
			email := "ws-replica-" + uniq() + "@example.com"
			a.Register(email, pw)
			if tc.redis {
				// The fan-out subscribes in the background: wait until b hears a's broadcasts.
				eventually(t, apptest.WSWait, "b to hear a's broadcasts", func() bool {
					p := a.Login(email, pw)
					apptest.WantOK(t, a.Post(logoutQ, map[string]any{"t": p.RefreshToken}))
					return b.App.Auth.BroadcastRevocations() > 0
				})
			}
			p := b.Login(email, pw)
			sid := sessionID(t, b, p.AccessToken)
			c := subscribeEvents(t, b, p.AccessToken)
			start := time.Now()
			apptest.WantOK(t, a.Post(logoutQ, map[string]any{"t": p.RefreshToken}))
			wantRevokedThenClosed(t, c, sid, start, tc.bound)
			t.Logf("closed on the other instance %s after the logout", time.Since(start).Round(time.Millisecond))
		})
	}
}

// The operation guard applies to subscription documents too.
func TestSubscriptionOperationGuard(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"MAX_QUERY_COMPLEXITY": "30"}})
	p := e.Register("ws-guard-"+uniq()+"@example.com", pw)
	c := e.DialWS(wsclient.Options{})
	if err := c.InitBearer(apptest.WSContext(t), p.AccessToken); err != nil {
		t.Fatal(err)
	}
	var fields []string
	for i := range 40 {
		fields = append(fields, fmt.Sprintf("t%d: type", i))
	}
	if err := c.Subscribe(apptest.WSContext(t), "big", `subscription { sessionEvents { `+strings.Join(fields, " ")+` } }`, nil); err != nil {
		t.Fatal(err)
	}
	m, err := c.Next(apptest.WSContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "big" || (m.Type != "error" && m.Type != "next") || !strings.Contains(string(m.Payload), "COMPLEXITY_LIMIT_EXCEEDED") {
		t.Fatalf("over-complex subscription: %s %s", m.Type, m.Payload)
	}
	if e.App.Sockets.Subscriptions() != 0 {
		t.Fatal("a refused subscription was started")
	}
}
