package storetest

import (
	"errors"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/models"
)

// rotateCases: Rotate, a normal refresh (RetireOld) and a retry inside the reuse grace.
var rotateCases = []testCase{
	{"Rotate/RetiresOldStoresNewExtendsSession", func(t *testing.T, f *fixture) {
		u, s, rt0 := f.user("alice")
		ua, ip := "tab/2", "198.51.100.7"
		next := f.newToken(s, at(time.Minute))
		parent := rt0.ID
		next.ParentID = &parent
		if err := f.st.Rotate(f.ctx, auth.Rotation{SessionID: s.ID, OldID: rt0.ID, RetireOld: true, New: next,
			Now: at(time.Minute), ExpiresAt: at(2 * time.Hour), UserAgent: &ua, IP: &ip}); err != nil {
			t.Fatal(err)
		}
		if next.ID == 0 || next.ID == rt0.ID {
			t.Fatalf("the new token's id = %d", next.ID)
		}
		old := f.token(rt0)
		if !timeEq(old.RotatedAt, ptr(at(time.Minute))) || old.RevokedAt != nil {
			t.Fatalf("old token: rotated_at %v revoked_at %v; want rotated at the rotation's Now", old.RotatedAt, old.RevokedAt)
		}
		got := f.token(next)
		if got.ID != next.ID || got.RotatedAt != nil || got.RevokedAt != nil || got.ParentID == nil || *got.ParentID != rt0.ID || got.UserID != u.ID {
			t.Fatalf("new token = %+v", got)
		}
		gs := got.Session
		if !gs.LastUsedAt.Equal(at(time.Minute)) || !gs.ExpiresAt.Equal(at(2*time.Hour)) || gs.UserAgent == nil || *gs.UserAgent != ua || gs.IP == nil || *gs.IP != ip {
			t.Fatalf("session after rotation = %+v", gs)
		}
		// Without a user agent or address the recorded ones stay.
		third := f.newToken(s, at(2*time.Minute))
		if err := f.st.Rotate(f.ctx, auth.Rotation{SessionID: s.ID, OldID: next.ID, RetireOld: true, New: third, Now: at(2 * time.Minute), ExpiresAt: at(3 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if gs := f.sess(s.ID); gs.UserAgent == nil || *gs.UserAgent != ua || gs.IP == nil || *gs.IP != ip || !gs.ExpiresAt.Equal(at(3*time.Hour)) {
			t.Fatalf("session after a rotation without client details = %+v", gs)
		}
	}},
	{"Rotate/SecondRetireOfOneTokenConflicts", func(t *testing.T, f *fixture) {
		_, s, rt0 := f.user("alice")
		f.rotate(s, rt0, at(time.Minute))
		again := f.newToken(s, at(2*time.Minute))
		err := f.st.Rotate(f.ctx, auth.Rotation{SessionID: s.ID, OldID: rt0.ID, RetireOld: true, New: again, Now: at(2 * time.Minute), ExpiresAt: at(2 * time.Hour)})
		if !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("second rotation of one token = %v, want ErrConflict", err)
		}
		f.absent(again, "the losing rotation's token")
		// (Postgres's one-statement rotation may still have moved the session's expiry, as the winner
		// just did; the token rows are what the contract guards.)
		if got := f.token(rt0); !timeEq(got.RotatedAt, ptr(at(time.Minute))) {
			t.Fatalf("the losing rotation rewrote rotated_at: %v", got.RotatedAt)
		}
	}},
	{"Rotate/RevokedTokenConflicts", func(t *testing.T, f *fixture) {
		u, s, rt0 := f.user("alice")
		// ChangePassword revokes every token of the kept session and leaves the session live.
		kept := f.newToken(s, at(time.Minute))
		if _, _, err := f.st.ChangePassword(f.ctx, auth.PasswordChange{UserID: u.ID, Hash: "new", KeepSessionID: s.ID, New: kept,
			Now: at(time.Minute), ExpiresAt: at(time.Hour), Clock: clock(at(time.Minute))}); err != nil {
			t.Fatal(err)
		}
		for _, retire := range []bool{true, false} {
			next := f.newToken(s, at(2*time.Minute))
			err := f.st.Rotate(f.ctx, auth.Rotation{SessionID: s.ID, OldID: rt0.ID, RetireOld: retire, New: next, Now: at(2 * time.Minute), ExpiresAt: at(2 * time.Hour)})
			if !errors.Is(err, auth.ErrConflict) {
				t.Fatalf("RetireOld=%v: rotation of a revoked token = %v, want ErrConflict", retire, err)
			}
			f.absent(next, "a revoked token's successor")
		}
		if got := f.token(kept); got.RotatedAt != nil || got.RevokedAt != nil {
			t.Fatalf("a refused grace retry retired the live token: %+v", got)
		}
	}},
	{"Rotate/DeadSessionConflicts", func(t *testing.T, f *fixture) {
		u, s, rt := f.user("alice")
		short, srt := f.session(u, "s-short", base, time.Minute)
		if _, _, err := f.st.RevokeSessions(f.ctx, auth.SessionFilter{SessionID: s.ID}, clock(at(time.Second))); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name   string
			s      *models.Session
			old    *models.RefreshToken
			now    time.Time
			retire bool
		}{
			{"revoked", s, rt, at(2 * time.Second), true},
			{"revoked, grace retry", s, rt, at(2 * time.Second), false},
			{"expired", short, srt, at(time.Minute), true}, // expires_at == now is expired
			{"expired, grace retry", short, srt, at(2 * time.Minute), false},
		} {
			next := f.newToken(tc.s, tc.now)
			err := f.st.Rotate(f.ctx, auth.Rotation{SessionID: tc.s.ID, OldID: tc.old.ID, RetireOld: tc.retire, New: next, Now: tc.now, ExpiresAt: tc.now.Add(time.Hour)})
			if !errors.Is(err, auth.ErrConflict) {
				t.Fatalf("%s: Rotate = %v, want ErrConflict", tc.name, err)
			}
			f.absent(next, tc.name)
			if got := f.token(tc.old); got.RotatedAt != nil {
				t.Fatalf("%s: the old token was retired", tc.name)
			}
			if gs := f.sess(tc.s.ID); !gs.ExpiresAt.Equal(tc.s.ExpiresAt) {
				t.Fatalf("%s: a dead session was extended to %v", tc.name, gs.ExpiresAt)
			}
		}
	}},
	{"Rotate/GraceRetryRetiresEveryLiveToken", func(t *testing.T, f *fixture) {
		_, s, rt0 := f.user("alice")
		rt1 := f.rotate(s, rt0, at(time.Minute))
		// The client lost rt1's answer and presents rt0 again: rt1 is retired, rt2 is the one chain.
		rt2 := f.newToken(s, at(time.Minute+5*time.Second))
		if err := f.st.Rotate(f.ctx, auth.Rotation{SessionID: s.ID, OldID: rt0.ID, RetireOld: false, New: rt2,
			Now: at(time.Minute + 5*time.Second), ExpiresAt: at(2 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if got := f.token(rt1); !timeEq(got.RotatedAt, ptr(at(time.Minute+5*time.Second))) || got.RevokedAt != nil {
			t.Fatalf("the successor a grace retry replaces: rotated_at %v revoked_at %v", got.RotatedAt, got.RevokedAt)
		}
		if got := f.token(rt0); !timeEq(got.RotatedAt, ptr(at(time.Minute))) {
			t.Fatalf("the retried token's rotated_at moved to %v: the grace would restart", got.RotatedAt)
		}
		if got := f.token(rt2); got.RotatedAt != nil || got.RevokedAt != nil || !got.Session.ExpiresAt.Equal(at(2*time.Hour)) {
			t.Fatalf("the retry's token = %+v (session %+v)", got, got.Session)
		}
		// rt1 is now retired like any rotated token: retiring it again conflicts.
		err := f.st.Rotate(f.ctx, auth.Rotation{SessionID: s.ID, OldID: rt1.ID, RetireOld: true, New: f.newToken(s, at(2*time.Minute)), Now: at(2 * time.Minute), ExpiresAt: at(2 * time.Hour)})
		if !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("RetireOld of a token a grace retry retired = %v, want ErrConflict", err)
		}
	}},
	{"Rotate/ConcurrentRetiresOfOneTokenOneWins", func(t *testing.T, f *fixture) {
		u, _, _ := f.user("alice")
		for round := range 20 {
			s, rt := f.session(u, "s-round-"+string(rune('a'+round)), base, time.Hour)
			const n = 8
			errs := make([]error, n)
			news := make([]*models.RefreshToken, n)
			for i := range news {
				news[i] = f.newToken(s, at(time.Minute))
			}
			race(n, func(i int) {
				errs[i] = f.st.Rotate(f.ctx, auth.Rotation{SessionID: s.ID, OldID: rt.ID, RetireOld: true, New: news[i], Now: at(time.Minute), ExpiresAt: at(time.Hour)})
			})
			won := 0
			for i, err := range errs {
				switch {
				case err == nil:
					won++
					if got := f.token(news[i]); got.RotatedAt != nil || got.RevokedAt != nil {
						t.Fatalf("round %d: the winner's token is not live: %+v", round, got)
					}
				case errors.Is(err, auth.ErrConflict):
					f.absent(news[i], "a losing rotation's token")
				default:
					t.Fatalf("round %d: Rotate = %v, want nil or ErrConflict", round, err)
				}
			}
			if won != 1 {
				t.Fatalf("round %d: %d of %d concurrent rotations of one token succeeded, want exactly 1", round, won, n)
			}
		}
	}},
	{"Rotate/ConcurrentWithRevocationLeavesNoLiveToken", func(t *testing.T, f *fixture) {
		u, _, _ := f.user("alice")
		for round := range 20 {
			s, rt := f.session(u, "s-round-"+string(rune('a'+round)), base, time.Hour)
			next := f.newToken(s, at(time.Minute))
			var rotErr, revErr error
			var ids []string
			race(2, func(i int) {
				if i == 0 {
					rotErr = f.st.Rotate(f.ctx, auth.Rotation{SessionID: s.ID, OldID: rt.ID, RetireOld: round%2 == 0, New: next, Now: at(time.Minute), ExpiresAt: at(time.Hour)})
				} else {
					ids, _, revErr = f.st.RevokeSessions(f.ctx, auth.SessionFilter{SessionID: s.ID}, clock(at(time.Minute)))
				}
			})
			if revErr != nil || len(ids) != 1 {
				t.Fatalf("round %d: RevokeSessions = %v, %v; want the session", round, ids, revErr)
			}
			switch {
			case rotErr == nil:
				// The rotation committed first: the revocation must have revoked its token too.
				if got := f.token(next); got.RevokedAt == nil {
					t.Fatalf("round %d: a token rotated in during the revocation outlived it", round)
				}
			case errors.Is(rotErr, auth.ErrConflict):
				f.absent(next, "a rotation that lost to a revocation")
			default:
				t.Fatalf("round %d: Rotate = %v", round, rotErr)
			}
		}
	}},
}

func ptr[T any](v T) *T { return &v }
