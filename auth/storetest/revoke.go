package storetest

import (
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"gqlauth/auth"
)

// revokeCases: RevokeSessions, RevokedSince, SessionsCreatedSince, CredentialsVersions and SessionRevoked.
var revokeCases = []testCase{
	{"RevokeSessions/Filters", func(t *testing.T, f *fixture) {
		// Each row starts from the same sessions: alice has s-alice, a1, a2, a3; bob has s-bob.
		for row, tc := range []struct {
			name   string
			filter auth.SessionFilter
			want   []string
		}{
			{"one session", auth.SessionFilter{SessionID: "a1"}, []string{"a1"}},
			{"one session of its user", auth.SessionFilter{UserID: "u-alice", SessionID: "a1"}, []string{"a1"}},
			{"one session of another user", auth.SessionFilter{UserID: "u-bob", SessionID: "a1"}, nil},
			{"a user's sessions", auth.SessionFilter{UserID: "u-alice"}, []string{"s-alice", "a1", "a2", "a3"}},
			{"all but one", auth.SessionFilter{UserID: "u-alice", ExceptSessionID: "a2"}, []string{"s-alice", "a1", "a3"}},
			{"a list", auth.SessionFilter{UserID: "u-alice", SessionIDs: []string{"a1", "a3", "s-bob"}}, []string{"a1", "a3"}},
			{"a list, any user", auth.SessionFilter{SessionIDs: []string{"a1", "s-bob"}}, []string{"a1", "s-bob"}},
			{"an empty list", auth.SessionFilter{UserID: "u-alice", SessionIDs: []string{}}, nil},
			{"unknown session", auth.SessionFilter{SessionID: "nope"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, f.st)
				// Ids unique to the row, so that rows share the store but not its sessions.
				sfx := "-" + strconv.Itoa(row)
				for i := range tc.filter.SessionIDs {
					tc.filter.SessionIDs[i] += sfx
				}
				for _, id := range []*string{&tc.filter.UserID, &tc.filter.SessionID, &tc.filter.ExceptSessionID} {
					if *id != "" {
						*id += sfx
					}
				}
				alice, _, _ := f.user("alice" + sfx)
				_, _, bobToken := f.user("bob" + sfx)
				tokens := map[string][]byte{}
				for _, id := range []string{"a1", "a2", "a3"} {
					_, rt := f.session(alice, id+sfx, at(time.Second), time.Hour)
					tokens[id+sfx] = rt.TokenHash
				}
				when := at(time.Minute)
				ids, got, err := f.st.RevokeSessions(f.ctx, tc.filter, clock(when))
				if err != nil {
					t.Fatal(err)
				}
				want := make([]string, len(tc.want))
				for i, id := range tc.want {
					want[i] = id + sfx
				}
				if !sameIDs(ids, want) {
					t.Fatalf("revoked %v, want %v", ids, want)
				}
				if !got.Equal(when) {
					t.Fatalf("revocation time %v, want the one read from now (%v)", got, when)
				}
				for _, id := range []string{"s-alice", "a1", "a2", "a3", "s-bob"} {
					if id += sfx; contains(want, id) {
						f.revokedAt(id, when)
					} else {
						f.notRevoked(id)
					}
				}
				if contains(want, "s-bob"+sfx) {
					if rt := f.token(bobToken); !timeEq(rt.RevokedAt, &when) {
						t.Fatalf("a revoked session's token: revoked_at %v", rt.RevokedAt)
					}
				}
				for id, h := range tokens {
					rt, err := f.st.RefreshTokenByHash(f.ctx, h)
					if err != nil {
						t.Fatal(err)
					}
					if revoked := rt.RevokedAt != nil; revoked != contains(want, id) {
						t.Fatalf("token of %s: revoked_at %v, session revoked: %v", id, rt.RevokedAt, contains(want, id))
					}
				}
			})
		}
	}},
	{"RevokeSessions/RefusesAnEmptyFilter", func(t *testing.T, f *fixture) {
		_, s, _ := f.user("alice")
		if ids, _, err := f.st.RevokeSessions(f.ctx, auth.SessionFilter{}, clock(at(time.Minute))); err == nil {
			t.Fatalf("RevokeSessions with no filter revoked %v, want an error", ids)
		}
		f.notRevoked(s.ID)
	}},
	{"RevokeSessions/RevokesTokensOnceAndSessionsOnlyWhileLive", func(t *testing.T, f *fixture) {
		u, s, rt0 := f.user("alice")
		rt1 := f.rotate(s, rt0, at(time.Second))
		f.session(u, "s-short", base, time.Minute)
		ids, when, err := f.st.RevokeSessions(f.ctx, auth.SessionFilter{UserID: u.ID}, clock(at(time.Minute)))
		if err != nil {
			t.Fatal(err)
		}
		// s-short expired at base+1m, the revocation time: it is not live, so not revoked.
		if !sameIDs(ids, []string{s.ID}) {
			t.Fatalf("revoked %v, want only the live session", ids)
		}
		f.notRevoked("s-short")
		// The rotated token is revoked too, so it no longer counts as a grace retry.
		for _, rt := range []*struct {
			name string
			id   []byte
		}{{"rotated", rt0.TokenHash}, {"live", rt1.TokenHash}} {
			got, err := f.st.RefreshTokenByHash(f.ctx, rt.id)
			if err != nil {
				t.Fatal(err)
			}
			if !timeEq(got.RevokedAt, &when) {
				t.Fatalf("%s token: revoked_at %v, want %v", rt.name, got.RevokedAt, when)
			}
		}
		// Again: nothing is returned, and the first revocation time stays.
		ids, _, err = f.st.RevokeSessions(f.ctx, auth.SessionFilter{UserID: u.ID}, clock(at(2*time.Minute)))
		if err != nil || len(ids) != 0 {
			t.Fatalf("revoking revoked sessions again = %v, %v; want none", ids, err)
		}
		f.revokedAt(s.ID, when)
		if got := f.token(rt1); !timeEq(got.RevokedAt, &when) {
			t.Fatalf("a second revocation moved a token's revoked_at to %v", got.RevokedAt)
		}
	}},
	{"RevokeSessions/ConcurrentRevocationsReportEachSessionOnce", func(t *testing.T, f *fixture) {
		u, _, _ := f.user("alice")
		for round := range 10 {
			id := "s-round-" + string(rune('a'+round))
			f.session(u, id, base, time.Hour)
			const n = 6
			got := make([][]string, n)
			errs := make([]error, n)
			race(n, func(i int) {
				got[i], _, errs[i] = f.st.RevokeSessions(f.ctx, auth.SessionFilter{SessionID: id}, clock(at(time.Minute)))
			})
			reported := 0
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("round %d: %v", round, errs[i])
				}
				reported += len(got[i])
			}
			if reported != 1 {
				t.Fatalf("round %d: %d concurrent revocations reported the session %d times, want once", round, n, reported)
			}
		}
	}},
	{"RevokedSince/ListsLaterRevocations", func(t *testing.T, f *fixture) {
		f.user("alice")
		f.user("bob")
		f.user("carol")
		for id, tm := range map[string]time.Time{"s-alice": at(time.Second), "s-bob": at(2 * time.Second)} {
			if _, _, err := f.st.RevokeSessions(f.ctx, auth.SessionFilter{SessionID: id}, clock(tm)); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			since time.Time
			want  map[string]time.Time
		}{
			{base, map[string]time.Time{"s-alice": at(time.Second), "s-bob": at(2 * time.Second)}},
			{at(time.Second), map[string]time.Time{"s-bob": at(2 * time.Second)}}, // strictly after since
			{at(2 * time.Second), map[string]time.Time{}},
		} {
			revs, err := f.st.RevokedSince(f.ctx, tc.since)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]time.Time{}
			for _, r := range revs {
				got[r.ID] = r.RevokedAt
				if want := "u-" + r.ID[len("s-"):]; r.UserID != want {
					t.Fatalf("RevokedSince: %s of user %q, want %q", r.ID, r.UserID, want)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("RevokedSince(%v) = %v, want %v", tc.since, revs, tc.want)
			}
			for id, tm := range tc.want {
				if !got[id].Equal(tm) {
					t.Fatalf("RevokedSince(%v): %s at %v, want %v", tc.since, id, got[id], tm)
				}
			}
		}
	}},
	{"SessionsCreatedSince/ListsTheUsersLaterSessions", func(t *testing.T, f *fixture) {
		alice, _, _ := f.user("alice") // s-alice created at base
		bob, _, _ := f.user("bob")
		f.user("carol")
		f.session(alice, "s-alice-2", at(time.Second), time.Hour)
		f.session(bob, "s-bob-2", at(2*time.Second), time.Hour)
		if _, _, err := f.st.RevokeSessions(f.ctx, auth.SessionFilter{SessionID: "s-bob-2"}, clock(at(3*time.Second))); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			users []string
			since time.Time
			want  []string
		}{
			{[]string{alice.ID, bob.ID}, base.Add(-time.Second), []string{"s-alice", "s-alice-2", "s-bob", "s-bob-2"}},
			{[]string{alice.ID, bob.ID}, base, []string{"s-alice-2", "s-bob-2"}}, // strictly after; revoked ones too
			{[]string{alice.ID}, base, []string{"s-alice-2"}},
			{[]string{"nobody"}, base.Add(-time.Second), nil},
			{nil, base.Add(-time.Second), nil},
		} {
			starts, err := f.st.SessionsCreatedSince(f.ctx, tc.users, tc.since)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, st := range starts {
				got = append(got, st.ID)
				if s := f.sess(st.ID); st.UserID != s.UserID || !st.CreatedAt.Equal(s.CreatedAt) {
					t.Fatalf("SessionsCreatedSince: %+v, want user %s created %v", st, s.UserID, s.CreatedAt)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("SessionsCreatedSince(%v, %v) = %v, want %v", tc.users, tc.since, got, tc.want)
			}
		}
	}},
	{"CredentialsVersions/OfLiveUsers", func(t *testing.T, f *fixture) {
		alice, s, _ := f.user("alice")
		bob, _, _ := f.user("bob")
		if _, _, err := f.st.ChangePassword(f.ctx, auth.PasswordChange{UserID: alice.ID, Hash: "new", KeepSessionID: s.ID,
			New: f.newToken(s, at(time.Minute)), Now: at(time.Minute), ExpiresAt: at(time.Hour), Clock: clock(at(time.Minute))}); err != nil {
			t.Fatal(err)
		}
		got, err := f.st.CredentialsVersions(f.ctx, []string{alice.ID, bob.ID, "nobody"})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int64{alice.ID: 1, bob.ID: 0}; !maps.Equal(got, want) {
			t.Fatalf("CredentialsVersions = %v, want %v", got, want)
		}
	}},
	{"SessionRevoked/LiveRevokedOrGone", func(t *testing.T, f *fixture) {
		f.user("alice")
		f.user("bob")
		if _, _, err := f.st.RevokeSessions(f.ctx, auth.SessionFilter{SessionID: "s-bob"}, clock(at(time.Second))); err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]bool{"s-alice": false, "s-bob": true, "s-nobody": true} {
			got, err := f.st.SessionRevoked(f.ctx, id)
			if err != nil || got != want {
				t.Fatalf("SessionRevoked(%s) = %v, %v; want %v", id, got, err, want)
			}
		}
	}},
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
