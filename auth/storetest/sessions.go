package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/models"
)

// sessionCases: CreateSession (credentials check, session cap), SessionByID, Sessions and
// RefreshTokenByHash.
var sessionCases = []testCase{
	{"CreateSession/StoresSessionAndToken", func(t *testing.T, f *fixture) {
		u, _, _ := f.user("alice")
		s := &models.Session{ID: "s-2", UserID: u.ID, CreatedAt: at(time.Minute), LastUsedAt: at(time.Minute), ExpiresAt: at(time.Hour)}
		rt := f.newToken(s, at(time.Minute))
		evicted, when, err := f.st.CreateSession(f.ctx, s, rt, auth.SessionCheck{CredentialsVersion: 0, Now: clock(at(time.Minute))})
		if err != nil {
			t.Fatal(err)
		}
		if len(evicted) != 0 || !when.Equal(at(time.Minute)) {
			t.Fatalf("CreateSession without a cap = %v, %v; want no evictions at the time read from Now", evicted, when)
		}
		if rt.ID == 0 {
			t.Fatal("CreateSession did not set the token's id")
		}
		if got := f.token(rt); got.SessionID != "s-2" || got.Session == nil || got.Session.UserID != u.ID {
			t.Fatalf("token = %+v", got)
		}
		if got := f.live(u.ID, at(time.Minute)); !sameIDs(got, []string{"s-alice", "s-2"}) {
			t.Fatalf("live sessions = %v", got)
		}
	}},
	{"CreateSession/ConflictOnCredentialsVersion", func(t *testing.T, f *fixture) {
		u, s0, _ := f.user("alice")
		// The password changed since the login verified it: the version moved to 1.
		if _, _, err := f.st.ChangePassword(f.ctx, auth.PasswordChange{
			UserID: u.ID, CredentialsVersion: 0, Hash: "new", KeepSessionID: s0.ID, New: f.newToken(s0, base),
			Now: base, ExpiresAt: at(time.Hour), Clock: clock(base),
		}); err != nil {
			t.Fatal(err)
		}
		for name, check := range map[string]auth.SessionCheck{
			"old version":   {CredentialsVersion: 0, Now: clock(at(time.Minute))},
			"future":        {CredentialsVersion: 2, Now: clock(at(time.Minute))},
			"old, with cap": {CredentialsVersion: 0, MaxSessions: 1, Now: clock(at(time.Minute))},
		} {
			s := &models.Session{ID: "s-" + name, UserID: u.ID, CreatedAt: at(time.Minute), LastUsedAt: at(time.Minute), ExpiresAt: at(time.Hour)}
			rt := f.newToken(s, at(time.Minute))
			if _, _, err := f.st.CreateSession(f.ctx, s, rt, check); !errors.Is(err, auth.ErrConflict) {
				t.Fatalf("%s: CreateSession = %v, want ErrConflict", name, err)
			}
			if _, err := f.st.SessionByID(f.ctx, s.ID); !errors.Is(err, auth.ErrNotFound) {
				t.Fatalf("%s: a refused session was stored (%v)", name, err)
			}
			f.absent(rt, name)
		}
		f.notRevoked(s0.ID) // the refused cap evicted nothing
		// The current version works.
		f.session(f.userByID(u.ID), "s-current", at(time.Minute), time.Hour)
	}},
	{"CreateSession/ConflictForUnknownUser", func(t *testing.T, f *fixture) {
		s := &models.Session{ID: "s-ghost", UserID: "u-ghost", CreatedAt: base, LastUsedAt: base, ExpiresAt: at(time.Hour)}
		rt := f.newToken(s, base)
		if _, _, err := f.st.CreateSession(f.ctx, s, rt, auth.SessionCheck{Now: clock(base)}); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("CreateSession for an unknown user = %v, want ErrConflict", err)
		}
		f.absent(rt, "session of an unknown user")
	}},
	{"CreateSession/MaxSessionsEvictsTheOldest", func(t *testing.T, f *fixture) {
		u, s0, rt0 := f.user("alice")                            // created at base
		s1, _ := f.session(u, "s-1", at(time.Second), time.Hour) // then s-1, s-2
		s2, rt2 := f.session(u, "s-2", at(2*time.Second), time.Hour)
		_, _, bob := f.user("bob")
		// A fourth with a cap of 2: the two oldest go, at the time read from Now.
		s3 := &models.Session{ID: "s-3", UserID: u.ID, CreatedAt: at(3 * time.Second), LastUsedAt: at(3 * time.Second), ExpiresAt: at(time.Hour)}
		evicted, when, err := f.st.CreateSession(f.ctx, s3, f.newToken(s3, s3.CreatedAt), auth.SessionCheck{MaxSessions: 2, Now: clock(at(4 * time.Second))})
		if err != nil {
			t.Fatal(err)
		}
		if !when.Equal(at(4*time.Second)) || !sameIDs(evicted, []string{s0.ID, s1.ID}) {
			t.Fatalf("evicted %v at %v; want [%s %s] at %v", evicted, when, s0.ID, s1.ID, at(4*time.Second))
		}
		f.revokedAt(s0.ID, when)
		f.revokedAt(s1.ID, when)
		if got := f.token(rt0); !timeEq(got.RevokedAt, &when) {
			t.Fatalf("an evicted session's token: revoked_at = %v, want %v", got.RevokedAt, when)
		}
		if got := f.live(u.ID, at(4*time.Second)); !slices.Equal(got, []string{"s-3", s2.ID}) {
			t.Fatalf("live sessions after the cap = %v, want [s-3 s-2]", got)
		}
		if got := f.token(rt2); got.RevokedAt != nil {
			t.Fatal("a kept session's token was revoked")
		}
		if got := f.token(bob); got.RevokedAt != nil || got.Session.RevokedAt != nil {
			t.Fatal("another user's session was evicted")
		}
	}},
	{"CreateSession/MaxSessionsCountsOnlyLiveSessions", func(t *testing.T, f *fixture) {
		u, s0, _ := f.user("alice")
		f.session(u, "s-expired", at(time.Second), time.Minute) // expires at base+61s
		revoked, _ := f.session(u, "s-revoked", at(2*time.Second), time.Hour)
		if _, _, err := f.st.RevokeSessions(f.ctx, auth.SessionFilter{SessionID: revoked.ID}, clock(at(3*time.Second))); err != nil {
			t.Fatal(err)
		}
		// At base+2m only s-alice is live: a cap of 2 keeps it and the new one.
		s := &models.Session{ID: "s-new", UserID: u.ID, CreatedAt: at(2 * time.Minute), LastUsedAt: at(2 * time.Minute), ExpiresAt: at(time.Hour)}
		evicted, _, err := f.st.CreateSession(f.ctx, s, f.newToken(s, s.CreatedAt), auth.SessionCheck{MaxSessions: 2, Now: clock(at(2 * time.Minute))})
		if err != nil {
			t.Fatal(err)
		}
		if len(evicted) != 0 {
			t.Fatalf("evicted %v; expired and revoked sessions must not count against the cap", evicted)
		}
		f.notRevoked(s0.ID)
		f.notRevoked("s-expired") // expired, not revoked: eviction leaves it alone
		f.revokedAt(revoked.ID, at(3*time.Second))
		// A cap of 1 evicts s-alice, and neither of the dead ones.
		s = &models.Session{ID: "s-newer", UserID: u.ID, CreatedAt: at(3 * time.Minute), LastUsedAt: at(3 * time.Minute), ExpiresAt: at(time.Hour)}
		evicted, when, err := f.st.CreateSession(f.ctx, s, f.newToken(s, s.CreatedAt), auth.SessionCheck{MaxSessions: 1, Now: clock(at(3 * time.Minute))})
		if err != nil {
			t.Fatal(err)
		}
		if !sameIDs(evicted, []string{s0.ID, "s-new"}) {
			t.Fatalf("cap 1 evicted %v, want [%s s-new]", evicted, s0.ID)
		}
		f.revokedAt("s-new", when)
		f.revokedAt(revoked.ID, at(3*time.Second)) // an already revoked session keeps its time
		if got := f.live(u.ID, at(3*time.Minute)); !slices.Equal(got, []string{"s-newer"}) {
			t.Fatalf("live = %v, want [s-newer]", got)
		}
	}},
	{"SessionByID/FoundWhateverItsStateNotFoundOtherwise", func(t *testing.T, f *fixture) {
		_, s, _ := f.user("alice")
		if _, err := f.st.SessionByID(f.ctx, "s-nobody"); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("SessionByID of an unknown id = %v, want ErrNotFound", err)
		}
		if _, _, err := f.st.RevokeSessions(f.ctx, auth.SessionFilter{SessionID: s.ID}, clock(at(time.Second))); err != nil {
			t.Fatal(err)
		}
		f.revokedAt(s.ID, at(time.Second)) // a revoked session is still found
	}},
	{"Sessions/LiveOnlyNewestFirst", func(t *testing.T, f *fixture) {
		u, s0, _ := f.user("alice")
		ua, ip := "phone/1.0", "192.0.2.1"
		s1 := &models.Session{ID: "s-1", UserID: u.ID, CreatedAt: at(time.Second), LastUsedAt: at(time.Second), ExpiresAt: at(time.Hour), UserAgent: &ua, IP: &ip}
		if _, _, err := f.st.CreateSession(f.ctx, s1, f.newToken(s1, s1.CreatedAt), auth.SessionCheck{Now: clock(s1.CreatedAt)}); err != nil {
			t.Fatal(err)
		}
		f.session(u, "s-2", at(2*time.Second), time.Hour)
		f.session(u, "s-short", at(3*time.Second), time.Minute) // expires at base+63s
		f.session(u, "s-revoked", at(4*time.Second), time.Hour)
		if _, _, err := f.st.RevokeSessions(f.ctx, auth.SessionFilter{SessionID: "s-revoked"}, clock(at(5*time.Second))); err != nil {
			t.Fatal(err)
		}
		f.user("bob")
		if got := f.live(u.ID, at(10*time.Second)); !slices.Equal(got, []string{"s-short", "s-2", "s-1", s0.ID}) {
			t.Fatalf("Sessions = %v, want newest first without the revoked one", got)
		}
		// Expired at now: expires_at must be after now, not equal to it.
		if got := f.live(u.ID, at(63*time.Second)); !slices.Equal(got, []string{"s-2", "s-1", s0.ID}) {
			t.Fatalf("Sessions at the short one's expiry = %v", got)
		}
		list, err := f.st.Sessions(f.ctx, u.ID, at(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := list[2]
		if got.UserAgent == nil || *got.UserAgent != ua || got.IP == nil || *got.IP != ip || !got.CreatedAt.Equal(at(time.Second)) {
			t.Fatalf("listed session = %+v", got)
		}
		if got := f.live("u-nobody", base); len(got) != 0 {
			t.Fatalf("Sessions of an unknown user = %v", got)
		}
	}},
	{"RefreshTokenByHash/NotFound", func(t *testing.T, f *fixture) {
		f.user("alice")
		for name, h := range map[string][]byte{"unknown": f.hash(), "empty": {}, "nil": nil} {
			if got, err := f.st.RefreshTokenByHash(f.ctx, h); !errors.Is(err, auth.ErrNotFound) {
				t.Fatalf("%s hash: %+v, %v; want ErrNotFound", name, got, err)
			}
		}
	}},
}
