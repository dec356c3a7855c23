package storetest

import (
	"errors"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/models"
)

// passwordCases: ChangePassword, and its races with another change and with a login.
var passwordCases = []testCase{
	{"ChangePassword/StoresHashRevokesOthersKeepsOneChain", func(t *testing.T, f *fixture) {
		u, s, rt0 := f.user("alice")
		rt1 := f.rotate(s, rt0, at(time.Second))
		other, otherRT := f.session(u, "s-other", at(2*time.Second), time.Hour)
		f.session(u, "s-expired", base, time.Second)
		_, _, bob := f.user("bob")
		kept := f.newToken(s, at(time.Minute))
		ids, when, err := f.st.ChangePassword(f.ctx, auth.PasswordChange{
			UserID: u.ID, CredentialsVersion: 0, Hash: "new-hash", KeepSessionID: s.ID, New: kept,
			Now: at(time.Minute), ExpiresAt: at(3 * time.Hour), Clock: clock(at(time.Minute + time.Millisecond)),
		})
		if err != nil {
			t.Fatal(err)
		}
		if !when.Equal(at(time.Minute+time.Millisecond)) || !sameIDs(ids, []string{other.ID}) {
			t.Fatalf("ChangePassword = %v at %v; want [%s] at the time read from Clock", ids, when, other.ID)
		}
		got := f.userByID(u.ID)
		if got.PasswordHash != "new-hash" || got.CredentialsVersion != 1 || !got.UpdatedAt.Equal(at(time.Minute)) {
			t.Fatalf("user after the change: hash %q version %d updated_at %v", got.PasswordHash, got.CredentialsVersion, got.UpdatedAt)
		}
		f.revokedAt(other.ID, when)
		if rt := f.token(otherRT); !timeEq(rt.RevokedAt, &when) {
			t.Fatalf("another session's token: revoked_at %v", rt.RevokedAt)
		}
		f.notRevoked("s-expired") // not live: left alone
		// The kept session: every earlier token revoked (no grace), the new one its only live token.
		for name, rt := range map[string]*models.RefreshToken{"rotated": rt0, "live": rt1} {
			if got := f.token(rt); !timeEq(got.RevokedAt, &when) {
				t.Fatalf("kept session's %s token: revoked_at %v, want %v", name, got.RevokedAt, when)
			}
		}
		nk := f.token(kept)
		if nk.RevokedAt != nil || nk.RotatedAt != nil || nk.Session.RevokedAt != nil ||
			!nk.Session.LastUsedAt.Equal(at(time.Minute)) || !nk.Session.ExpiresAt.Equal(at(3*time.Hour)) {
			t.Fatalf("the kept session's new token %+v, session %+v", nk, nk.Session)
		}
		if rt := f.token(bob); rt.RevokedAt != nil || rt.Session.RevokedAt != nil {
			t.Fatal("another user's session was revoked")
		}
		// The next change needs the new version.
		_, _, err = f.st.ChangePassword(f.ctx, auth.PasswordChange{UserID: u.ID, CredentialsVersion: 0, Hash: "again", KeepSessionID: s.ID,
			New: f.newToken(s, at(2*time.Minute)), Now: at(2 * time.Minute), ExpiresAt: at(3 * time.Hour), Clock: clock(at(2 * time.Minute))})
		if !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("a change with the old version = %v, want ErrConflict", err)
		}
	}},
	{"ChangePassword/ConflictWritesNothing", func(t *testing.T, f *fixture) {
		u, s, rt0 := f.user("alice")
		other, _ := f.session(u, "s-other", at(time.Second), time.Hour)
		revoked, _ := f.session(u, "s-revoked", at(time.Second), time.Hour)
		if _, _, err := f.st.RevokeSessions(f.ctx, auth.SessionFilter{SessionID: revoked.ID}, clock(at(2*time.Second))); err != nil {
			t.Fatal(err)
		}
		short, _ := f.session(u, "s-short", base, time.Minute)
		f.user("bob")
		for _, tc := range []struct {
			name    string
			version int64
			keep    string
		}{
			{"credentials changed meanwhile", 1, s.ID},
			{"kept session revoked", 0, revoked.ID},
			{"kept session expired", 0, short.ID}, // expires at base+1m, the change's Now
			{"kept session of another user", 0, "s-bob"},
			{"kept session unknown", 0, "s-nobody"},
			{"no kept session", 0, ""},
		} {
			keep := &models.Session{ID: tc.keep, UserID: u.ID}
			next := f.newToken(keep, at(time.Minute))
			_, _, err := f.st.ChangePassword(f.ctx, auth.PasswordChange{UserID: u.ID, CredentialsVersion: tc.version, Hash: "new-hash", KeepSessionID: tc.keep,
				New: next, Now: at(time.Minute), ExpiresAt: at(time.Hour), Clock: clock(at(time.Minute))})
			if !errors.Is(err, auth.ErrConflict) {
				t.Fatalf("%s: ChangePassword = %v, want ErrConflict", tc.name, err)
			}
			if got := f.userByID(u.ID); got.PasswordHash != u.PasswordHash || got.CredentialsVersion != 0 {
				t.Fatalf("%s: the refused change stored hash %q version %d", tc.name, got.PasswordHash, got.CredentialsVersion)
			}
			f.notRevoked(s.ID)
			f.notRevoked(other.ID)
			f.notRevoked("s-bob")
			if got := f.token(rt0); got.RevokedAt != nil {
				t.Fatalf("%s: the refused change revoked a token", tc.name)
			}
			f.absent(next, tc.name)
		}
	}},
	{"ChangePassword/ConcurrentChangesOneWins", func(t *testing.T, f *fixture) {
		for round := range 5 {
			u, s, _ := f.user("u" + string(rune('a'+round)))
			const n = 4
			errs := make([]error, n)
			race(n, func(i int) {
				_, _, errs[i] = f.st.ChangePassword(f.ctx, auth.PasswordChange{UserID: u.ID, CredentialsVersion: 0, Hash: "hash-" + string(rune('a'+i)),
					KeepSessionID: s.ID, New: f.newToken(s, at(time.Minute)), Now: at(time.Minute), ExpiresAt: at(time.Hour), Clock: clock(at(time.Minute))})
			})
			won := 0
			for _, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, auth.ErrConflict):
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if won != 1 {
				t.Fatalf("round %d: %d of %d changes with the same version succeeded, want exactly 1", round, won, n)
			}
			if got := f.userByID(u.ID); got.CredentialsVersion != 1 {
				t.Fatalf("round %d: version %d after one change", round, got.CredentialsVersion)
			}
		}
	}},
	{"ChangePassword/RacingLoginCannotKeepASession", func(t *testing.T, f *fixture) {
		// A login that verified version 0 stores its session while the change commits: either the
		// session is refused (the change came first) or the change sees and revokes it.
		for round := range 20 {
			u, s, _ := f.user("u" + string(rune('a'+round)))
			login := &models.Session{ID: "s-login-" + u.ID, UserID: u.ID, CreatedAt: at(time.Minute), LastUsedAt: at(time.Minute), ExpiresAt: at(time.Hour)}
			var loginErr, changeErr error
			race(2, func(i int) {
				if i == 0 {
					_, _, loginErr = f.st.CreateSession(f.ctx, login, f.newToken(login, at(time.Minute)), auth.SessionCheck{CredentialsVersion: 0, Now: clock(at(time.Minute))})
				} else {
					_, _, changeErr = f.st.ChangePassword(f.ctx, auth.PasswordChange{UserID: u.ID, CredentialsVersion: 0, Hash: "new", KeepSessionID: s.ID,
						New: f.newToken(s, at(time.Minute)), Now: at(time.Minute), ExpiresAt: at(time.Hour), Clock: clock(at(time.Minute))})
				}
			})
			if changeErr != nil {
				t.Fatalf("round %d: ChangePassword = %v", round, changeErr)
			}
			switch {
			case loginErr == nil:
				if revoked, err := f.st.SessionRevoked(f.ctx, login.ID); err != nil || !revoked {
					t.Fatalf("round %d: a session opened with the old password outlived the change (revoked=%v, %v)", round, revoked, err)
				}
			case !errors.Is(loginErr, auth.ErrConflict):
				t.Fatalf("round %d: CreateSession = %v, want nil or ErrConflict", round, loginErr)
			}
			if got := f.live(u.ID, at(time.Minute)); !sameIDs(got, []string{s.ID}) {
				t.Fatalf("round %d: live sessions %v, want only the kept one", round, got)
			}
		}
	}},
}
