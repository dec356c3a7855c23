package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/models"
)

// factorCases: the TOTP and recovery-code methods of auth.FactorStore, its challenge methods and
// Reauthenticate (the passkey methods are in passkeys.go).
var factorCases = []testCase{
	{"SetPendingTOTP/StoresAndReplaces", func(t *testing.T, f *fixture) {
		fs := f.factors()
		u, _, _ := f.user("alice")
		f.pending(u, "one", at(time.Second))
		if got := f.userByID(u.ID); !bytes.Equal(got.TOTPSecret, sealed("one")) || got.TOTPEnabledAt != nil || !got.UpdatedAt.Equal(at(time.Second)) {
			t.Fatalf("after SetPendingTOTP: secret %q, enabled %v, updated %v", got.TOTPSecret, got.TOTPEnabledAt, got.UpdatedAt)
		}
		f.pending(u, "two", at(2*time.Second)) // a new enrolment replaces the pending one
		if got := f.userByID(u.ID); !bytes.Equal(got.TOTPSecret, sealed("two")) || got.TOTPEnabledAt != nil {
			t.Fatalf("after a second SetPendingTOTP: secret %q, enabled %v", got.TOTPSecret, got.TOTPEnabledAt)
		}
		if err := fs.SetPendingTOTP(f.ctx, "u-ghost", sealed("x"), base); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("SetPendingTOTP of an unknown user = %v, want ErrNotFound", err)
		}
	}},
	{"SetPendingTOTP/ConflictWhenEnabled", func(t *testing.T, f *fixture) {
		u, _, _ := f.user("alice")
		f.enabled(u, "on", 100, "c1")
		if err := f.factors().SetPendingTOTP(f.ctx, u.ID, sealed("new"), at(time.Minute)); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("SetPendingTOTP with TOTP on = %v, want ErrConflict", err)
		}
		if got := f.userByID(u.ID); !bytes.Equal(got.TOTPSecret, sealed("on")) || got.TOTPEnabledAt == nil {
			t.Fatalf("a refused SetPendingTOTP wrote: secret %q, enabled %v", got.TOTPSecret, got.TOTPEnabledAt)
		}
	}},
	{"EnableTOTP/EnablesWithStepAndCodes", func(t *testing.T, f *fixture) {
		u, _, _ := f.user("alice")
		bob, _, _ := f.user("bob") // bob's codes must not be touched
		f.enabled(bob, "bob", 7, "b1")
		f.pending(u, "mine", at(time.Second))
		if err := f.factors().EnableTOTP(f.ctx, u.ID, sealed("mine"), 1234, codes(u, "c1", "c2", "c3"), at(2*time.Second)); err != nil {
			t.Fatal(err)
		}
		got := f.userByID(u.ID)
		if !timeEq(got.TOTPEnabledAt, new(at(2*time.Second))) || got.TOTPLastStep != 1234 || !bytes.Equal(got.TOTPSecret, sealed("mine")) {
			t.Fatalf("after EnableTOTP: enabled %v, last step %d, secret %q", got.TOTPEnabledAt, got.TOTPLastStep, got.TOTPSecret)
		}
		for _, c := range []string{"c1", "c2", "c3"} {
			f.useCode(u, c, nil)
		}
		f.useCode(u, "b1", auth.ErrNotFound) // another user's code
		f.useCode(bob, "b1", nil)
	}},
	{"EnableTOTP/ConflictWhenPendingReplaced", func(t *testing.T, f *fixture) {
		u, _, _ := f.user("alice")
		f.pending(u, "first", at(time.Second))
		f.pending(u, "second", at(2*time.Second))
		if err := f.factors().EnableTOTP(f.ctx, u.ID, sealed("first"), 10, codes(u, "c1"), at(3*time.Second)); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("EnableTOTP of a replaced enrolment = %v, want ErrConflict", err)
		}
		if got := f.userByID(u.ID); got.TOTPEnabledAt != nil || got.TOTPLastStep != 0 {
			t.Fatalf("a refused EnableTOTP wrote: enabled %v, step %d", got.TOTPEnabledAt, got.TOTPLastStep)
		}
		f.useCode(u, "c1", auth.ErrNotFound) // its codes were not stored
		// The current one works.
		if err := f.factors().EnableTOTP(f.ctx, u.ID, sealed("second"), 10, codes(u, "c2"), at(3*time.Second)); err != nil {
			t.Fatal(err)
		}
	}},
	{"EnableTOTP/ConflictWhenEnabledOrNotPending", func(t *testing.T, f *fixture) {
		fs := f.factors()
		u, _, _ := f.user("alice")
		if err := fs.EnableTOTP(f.ctx, u.ID, sealed("never"), 10, codes(u, "c0"), base); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("EnableTOTP without a pending secret = %v, want ErrConflict", err)
		}
		f.enabled(u, "on", 10, "c1")
		// Confirming the same enrolment again (a double submit) changes nothing.
		if err := fs.EnableTOTP(f.ctx, u.ID, sealed("on"), 20, codes(u, "c2"), at(time.Minute)); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("EnableTOTP twice = %v, want ErrConflict", err)
		}
		if got := f.userByID(u.ID); got.TOTPLastStep != 10 {
			t.Fatalf("a refused EnableTOTP moved the step to %d", got.TOTPLastStep)
		}
		f.useCode(u, "c2", auth.ErrNotFound)
		f.useCode(u, "c1", nil)
		f.useCode(u, "c0", auth.ErrNotFound)
	}},
	{"EnableTOTP/RaceOneWins", func(t *testing.T, f *fixture) {
		u, _, _ := f.user("alice")
		f.pending(u, "mine", base)
		var wins atomic.Int32
		race(8, func(i int) {
			err := f.factors().EnableTOTP(f.ctx, u.ID, sealed("mine"), int64(100+i), codes(u, fmt.Sprintf("r%d", i)), at(time.Second))
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, auth.ErrConflict):
				t.Errorf("EnableTOTP: %v", err)
			}
		})
		if wins.Load() != 1 {
			t.Fatalf("%d concurrent EnableTOTP succeeded, want 1", wins.Load())
		}
		// Exactly the winner's code is stored.
		step := f.userByID(u.ID).TOTPLastStep
		for i := range 8 {
			want := auth.ErrNotFound
			if int64(100+i) == step {
				want = nil
			}
			f.useCode(u, fmt.Sprintf("r%d", i), want)
		}
	}},
	{"UseTOTPStep/OnlyLaterSteps", func(t *testing.T, f *fixture) {
		u, _, _ := f.user("alice")
		f.enabled(u, "on", 100, "c1")
		for _, tc := range []struct {
			step int64
			want error
		}{
			{100, auth.ErrConflict}, // the step of the confirming code
			{99, auth.ErrConflict},
			{101, nil},
			{101, auth.ErrConflict}, // a replay
			{105, nil},
			{103, auth.ErrConflict}, // earlier than the last accepted
		} {
			if err := f.factors().UseTOTPStep(f.ctx, u.ID, tc.step); !errors.Is(err, tc.want) {
				t.Fatalf("UseTOTPStep(%d) = %v, want %v", tc.step, err, tc.want)
			}
		}
		if got := f.userByID(u.ID).TOTPLastStep; got != 105 {
			t.Fatalf("last step = %d, want 105", got)
		}
	}},
	{"UseTOTPStep/ConflictWhenNotEnabled", func(t *testing.T, f *fixture) {
		fs := f.factors()
		u, _, _ := f.user("alice")
		if err := fs.UseTOTPStep(f.ctx, u.ID, 5); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("UseTOTPStep without TOTP = %v, want ErrConflict", err)
		}
		f.pending(u, "pending", base)
		if err := fs.UseTOTPStep(f.ctx, u.ID, 5); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("UseTOTPStep with TOTP pending = %v, want ErrConflict", err)
		}
		if got := f.userByID(u.ID).TOTPLastStep; got != 0 {
			t.Fatalf("a refused UseTOTPStep wrote step %d", got)
		}
		if err := fs.UseTOTPStep(f.ctx, "u-ghost", 5); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("UseTOTPStep of an unknown user = %v, want ErrConflict", err)
		}
	}},
	{"UseTOTPStep/RaceOneWins", func(t *testing.T, f *fixture) {
		u, _, _ := f.user("alice")
		f.enabled(u, "on", 100, "c1")
		var wins atomic.Int32
		race(8, func(int) {
			err := f.factors().UseTOTPStep(f.ctx, u.ID, 101)
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, auth.ErrConflict):
				t.Errorf("UseTOTPStep: %v", err)
			}
		})
		if wins.Load() != 1 {
			t.Fatalf("%d concurrent uses of one step succeeded, want exactly 1", wins.Load())
		}
	}},
	{"DisableTOTP/ClearsSecretAndCodes", func(t *testing.T, f *fixture) {
		fs := f.factors()
		u, _, _ := f.user("alice")
		f.enabled(u, "on", 100, "c1", "c2")
		if err := fs.DisableTOTP(f.ctx, u.ID, at(time.Minute)); err != nil {
			t.Fatal(err)
		}
		got := f.userByID(u.ID)
		if got.TOTPSecret != nil || got.TOTPEnabledAt != nil || !got.UpdatedAt.Equal(at(time.Minute)) {
			t.Fatalf("after DisableTOTP: secret %q, enabled %v, updated %v", got.TOTPSecret, got.TOTPEnabledAt, got.UpdatedAt)
		}
		f.useCode(u, "c1", auth.ErrNotFound)
		if err := fs.UseTOTPStep(f.ctx, u.ID, 200); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("UseTOTPStep after DisableTOTP = %v", err)
		}
		if err := fs.DisableTOTP(f.ctx, u.ID, at(time.Minute)); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("DisableTOTP twice = %v, want ErrConflict", err)
		}
		// A pending enrolment is not "enabled": refused, and left pending.
		f.pending(u, "pending", at(2*time.Minute))
		if err := fs.DisableTOTP(f.ctx, u.ID, at(3*time.Minute)); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("DisableTOTP with TOTP pending = %v, want ErrConflict", err)
		}
		if got := f.userByID(u.ID); !bytes.Equal(got.TOTPSecret, sealed("pending")) {
			t.Fatalf("a refused DisableTOTP cleared the pending secret")
		}
		// Enabled again, it starts over from the confirming step, with the new codes only.
		if err := fs.EnableTOTP(f.ctx, u.ID, sealed("pending"), 50, codes(u, "c3"), at(4*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := fs.UseTOTPStep(f.ctx, u.ID, 51); err != nil {
			t.Fatalf("UseTOTPStep after re-enabling: %v", err)
		}
		f.useCode(u, "c2", auth.ErrNotFound)
		f.useCode(u, "c3", nil)
	}},
	{"UseRecoveryCode/OnceEach", func(t *testing.T, f *fixture) {
		u, _, _ := f.user("alice")
		f.enabled(u, "on", 1, "c1", "c2")
		f.useCode(u, "c1", nil)
		f.useCode(u, "c1", auth.ErrNotFound) // used
		f.useCode(u, "c2", nil)
		f.useCode(u, "nope", auth.ErrNotFound)
		if err := f.factors().UseRecoveryCode(f.ctx, "u-ghost", codeHash(u, "c1"), base); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("UseRecoveryCode of an unknown user = %v", err)
		}
	}},
	{"UseRecoveryCode/RaceOneWins", func(t *testing.T, f *fixture) {
		u, _, _ := f.user("alice")
		f.enabled(u, "on", 1, "c1")
		var wins atomic.Int32
		race(8, func(int) {
			err := f.factors().UseRecoveryCode(f.ctx, u.ID, codeHash(u, "c1"), at(time.Second))
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, auth.ErrNotFound):
				t.Errorf("UseRecoveryCode: %v", err)
			}
		})
		if wins.Load() != 1 {
			t.Fatalf("%d concurrent uses of one recovery code succeeded, want exactly 1", wins.Load())
		}
	}},
	{"ReplaceRecoveryCodes/OldCodesStopWorking", func(t *testing.T, f *fixture) {
		u, _, _ := f.user("alice")
		f.enabled(u, "on", 1, "old1", "old2")
		f.useCode(u, "old1", nil)
		if err := f.factors().ReplaceRecoveryCodes(f.ctx, u.ID, codes(u, "new1", "new2")); err != nil {
			t.Fatal(err)
		}
		f.useCode(u, "old2", auth.ErrNotFound)
		f.useCode(u, "new1", nil)
		f.useCode(u, "new2", nil)
	}},
	{"ReplaceRecoveryCodes/ConflictWhenOff", func(t *testing.T, f *fixture) {
		u, _, _ := f.user("alice")
		f.pending(u, "pending", base)
		if err := f.factors().ReplaceRecoveryCodes(f.ctx, u.ID, codes(u, "c1")); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("ReplaceRecoveryCodes without TOTP = %v, want ErrConflict", err)
		}
		f.useCode(u, "c1", auth.ErrNotFound)
	}},

	{"CreateChallenge/ReadBack", func(t *testing.T, f *fixture) {
		fs := f.factors()
		u, _, _ := f.user("alice")
		c := f.challenge(u, models.ChallengeMFA, "c-1", base, time.Minute)
		for name, get := range map[string]func() (*models.AuthChallenge, error){
			"by token hash": func() (*models.AuthChallenge, error) { return fs.ChallengeByTokenHash(f.ctx, c.TokenHash) },
			"by id":         func() (*models.AuthChallenge, error) { return fs.ChallengeByID(f.ctx, "c-1") },
		} {
			got, err := get()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got.ID != "c-1" || got.Kind != models.ChallengeMFA || got.UserID == nil || *got.UserID != u.ID ||
				!bytes.Equal(got.TokenHash, c.TokenHash) || got.Data != "state" || got.CredentialsVersion != 3 ||
				got.Attempts != 0 || !got.CreatedAt.Equal(base) || !got.ExpiresAt.Equal(at(time.Minute)) || got.UsedAt != nil {
				t.Fatalf("%s: %+v", name, got)
			}
		}
		if _, err := fs.ChallengeByTokenHash(f.ctx, f.hash()); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("ChallengeByTokenHash of an unknown hash = %v", err)
		}
		if _, err := fs.ChallengeByID(f.ctx, "c-ghost"); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("ChallengeByID of an unknown id = %v", err)
		}
	}},
	{"CreateChallenge/WithoutUserOrTokenHash", func(t *testing.T, f *fixture) {
		// A discoverable passkey login knows no user yet and is found by its id: several such
		// challenges have no token hash, which the unique index must allow.
		fs := f.factors()
		for _, id := range []string{"pk-1", "pk-2"} {
			c := &models.AuthChallenge{ID: id, Kind: models.ChallengePasskeyLogin, Data: "{}", CreatedAt: base, ExpiresAt: at(time.Minute)}
			if err := fs.CreateChallenge(f.ctx, c); err != nil {
				t.Fatalf("CreateChallenge(%s): %v", id, err)
			}
		}
		got, err := fs.ChallengeByID(f.ctx, "pk-2")
		if err != nil || got.UserID != nil || got.TokenHash != nil || got.Kind != models.ChallengePasskeyLogin {
			t.Fatalf("ChallengeByID = %+v, %v", got, err)
		}
	}},
	{"LatestChallenge/NewestLiveOfKind", func(t *testing.T, f *fixture) {
		fs := f.factors()
		u, _, _ := f.user("alice")
		bob, _, _ := f.user("bob")
		f.challenge(u, models.ChallengePasskeyRegister, "old", base, time.Hour)
		f.challenge(u, models.ChallengePasskeyRegister, "new", at(time.Second), time.Hour)
		f.challenge(u, models.ChallengePasskeyRegister, "newest-used", at(2*time.Second), time.Hour)
		if err := fs.ConsumeChallenge(f.ctx, "newest-used", at(3*time.Second)); err != nil {
			t.Fatal(err)
		}
		f.challenge(u, models.ChallengePasskeyRegister, "short", at(3*time.Second), time.Second) // expires at +4s
		f.challenge(u, models.ChallengeMFA, "other-kind", at(4*time.Second), time.Hour)
		f.challenge(bob, models.ChallengePasskeyRegister, "other-user", at(5*time.Second), time.Hour)
		for _, tc := range []struct {
			at   time.Time
			want string
		}{
			{at(3500 * time.Millisecond), "short"},
			{at(4 * time.Second), "new"}, // "short" has expired at its expiry instant
			{at(time.Minute), "new"},
		} {
			got, err := fs.LatestChallenge(f.ctx, u.ID, models.ChallengePasskeyRegister, tc.at)
			if err != nil || got.ID != tc.want {
				t.Fatalf("LatestChallenge at %v = %+v, %v; want %s", tc.at.Sub(base), got, err, tc.want)
			}
		}
		if _, err := fs.LatestChallenge(f.ctx, u.ID, models.ChallengePasskeyLogin, at(time.Minute)); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("LatestChallenge of a kind with none = %v", err)
		}
		if _, err := fs.LatestChallenge(f.ctx, u.ID, models.ChallengePasskeyRegister, at(2*time.Hour)); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("LatestChallenge after every one expired = %v", err)
		}
	}},
	{"ConsumeChallenge/OnceAndOnlyLive", func(t *testing.T, f *fixture) {
		fs := f.factors()
		u, _, _ := f.user("alice")
		f.challenge(u, models.ChallengeMFA, "c-1", base, time.Minute)
		if err := fs.ConsumeChallenge(f.ctx, "c-1", at(time.Second)); err != nil {
			t.Fatal(err)
		}
		if got, _ := fs.ChallengeByID(f.ctx, "c-1"); !timeEq(got.UsedAt, new(at(time.Second))) {
			t.Fatalf("used_at = %v", got.UsedAt)
		}
		if err := fs.ConsumeChallenge(f.ctx, "c-1", at(2*time.Second)); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("ConsumeChallenge twice = %v, want ErrConflict", err)
		}
		f.challenge(u, models.ChallengeMFA, "c-2", base, time.Minute)
		if err := fs.ConsumeChallenge(f.ctx, "c-2", at(time.Minute)); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("ConsumeChallenge at its expiry = %v, want ErrConflict", err)
		}
		if got, _ := fs.ChallengeByID(f.ctx, "c-2"); got.UsedAt != nil {
			t.Fatal("a refused ConsumeChallenge marked the challenge used")
		}
		if err := fs.ConsumeChallenge(f.ctx, "c-ghost", base); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("ConsumeChallenge of an unknown id = %v, want ErrConflict", err)
		}
	}},
	{"ConsumeChallenge/RaceOneWins", func(t *testing.T, f *fixture) {
		u, _, _ := f.user("alice")
		f.challenge(u, models.ChallengeMFA, "c-1", base, time.Minute)
		var wins atomic.Int32
		race(8, func(int) {
			err := f.factors().ConsumeChallenge(f.ctx, "c-1", at(time.Second))
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, auth.ErrConflict):
				t.Errorf("ConsumeChallenge: %v", err)
			}
		})
		if wins.Load() != 1 {
			t.Fatalf("%d concurrent ConsumeChallenge succeeded, want exactly 1", wins.Load())
		}
	}},
	{"FailChallenge/CountsThenEnds", func(t *testing.T, f *fixture) {
		fs := f.factors()
		u, _, _ := f.user("alice")
		f.challenge(u, models.ChallengeMFA, "c-1", base, time.Minute)
		for want := 1; want <= 3; want++ {
			n, err := fs.FailChallenge(f.ctx, "c-1", 3, at(time.Duration(want)*time.Second))
			if err != nil || n != want {
				t.Fatalf("FailChallenge #%d = %d, %v", want, n, err)
			}
		}
		got, _ := fs.ChallengeByID(f.ctx, "c-1")
		if got.Attempts != 3 || !timeEq(got.UsedAt, new(at(3*time.Second))) {
			t.Fatalf("after the last allowed failure: attempts %d, used %v", got.Attempts, got.UsedAt)
		}
		if err := fs.ConsumeChallenge(f.ctx, "c-1", at(4*time.Second)); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("ConsumeChallenge of an ended challenge = %v, want ErrConflict", err)
		}
		if n, err := fs.FailChallenge(f.ctx, "c-1", 3, at(5*time.Second)); err != nil || n < 3 {
			t.Fatalf("FailChallenge of an ended challenge = %d, %v; want at least 3", n, err)
		}
		// A consumed challenge is not counted against either.
		f.challenge(u, models.ChallengeMFA, "c-2", base, time.Minute)
		if err := fs.ConsumeChallenge(f.ctx, "c-2", at(time.Second)); err != nil {
			t.Fatal(err)
		}
		if n, err := fs.FailChallenge(f.ctx, "c-2", 5, at(2*time.Second)); err != nil || n != 5 {
			t.Fatalf("FailChallenge of a used challenge = %d, %v; want 5 (ended)", n, err)
		}
		if got, _ := fs.ChallengeByID(f.ctx, "c-2"); got.Attempts != 0 || !timeEq(got.UsedAt, new(at(time.Second))) {
			t.Fatalf("FailChallenge changed a used challenge: attempts %d, used %v", got.Attempts, got.UsedAt)
		}
	}},
	{"FailChallenge/RaceCountsEveryFailure", func(t *testing.T, f *fixture) {
		fs := f.factors()
		u, _, _ := f.user("alice")
		f.challenge(u, models.ChallengeMFA, "below", base, time.Minute)
		f.challenge(u, models.ChallengeMFA, "past", base, time.Minute)
		const n = 8
		var below, past [n]int
		race(n, func(i int) {
			var err error
			if below[i], err = fs.FailChallenge(f.ctx, "below", 100, at(time.Second)); err != nil {
				t.Errorf("FailChallenge: %v", err)
			}
			if past[i], err = fs.FailChallenge(f.ctx, "past", 5, at(time.Second)); err != nil {
				t.Errorf("FailChallenge: %v", err)
			}
		})
		// Under the maximum every concurrent failure is counted, each seeing its own count.
		slices.Sort(below[:])
		if want := [n]int{1, 2, 3, 4, 5, 6, 7, 8}; below != want {
			t.Fatalf("concurrent FailChallenge returned %v, want %v", below, want)
		}
		if got, _ := fs.ChallengeByID(f.ctx, "below"); got.Attempts != n || got.UsedAt != nil {
			t.Fatalf("attempts %d (used %v), want %d", got.Attempts, got.UsedAt, n)
		}
		// Past it, the challenge ends at exactly the maximum and every later failure sees it ended.
		got, _ := fs.ChallengeByID(f.ctx, "past")
		if got.Attempts != 5 || got.UsedAt == nil {
			t.Fatalf("past the maximum: attempts %d, used %v; want 5 and ended", got.Attempts, got.UsedAt)
		}
		slices.Sort(past[:])
		if want := [n]int{1, 2, 3, 4, 5, 5, 5, 5}; past != want {
			t.Fatalf("concurrent FailChallenge past the maximum returned %v, want %v", past, want)
		}
	}},

	{"Reauthenticate/MovesAuthenticationAndReplacesTokens", func(t *testing.T, f *fixture) {
		u, s, rt0 := f.user("alice")
		rt1 := f.rotate(s, rt0, at(time.Second)) // a chain of two: both end
		_, bobSession, bobToken := f.user("bob")
		next := f.newToken(s, at(time.Minute))
		r := auth.Reauthentication{
			SessionID: s.ID, UserID: u.ID, AMR: "pwd,otp", AuthTime: at(time.Minute), New: next,
			Now: at(time.Minute), ExpiresAt: at(2 * time.Hour),
		}
		if err := f.factors().Reauthenticate(f.ctx, r); err != nil {
			t.Fatal(err)
		}
		got := f.sess(s.ID)
		if got.AMR != "pwd,otp" || !timeEq(got.AuthTime, new(at(time.Minute))) || !got.LastUsedAt.Equal(at(time.Minute)) ||
			!got.ExpiresAt.Equal(at(2*time.Hour)) || got.RevokedAt != nil {
			t.Fatalf("session after Reauthenticate: %+v", got)
		}
		for _, old := range []*models.RefreshToken{rt0, rt1} {
			if tok := f.token(old); !timeEq(tok.RevokedAt, new(at(time.Minute))) {
				t.Fatalf("old token %d: revoked_at %v, want the reauthentication time", old.ID, tok.RevokedAt)
			}
		}
		if next.ID == 0 {
			t.Fatal("Reauthenticate did not set the new token's id")
		}
		if tok := f.token(next); tok.RevokedAt != nil || tok.RotatedAt != nil || tok.SessionID != s.ID || tok.Session == nil {
			t.Fatalf("new token: %+v", tok)
		}
		// Another user's session and tokens are untouched.
		if tok := f.token(bobToken); tok.RevokedAt != nil {
			t.Fatal("bob's token was revoked")
		}
		if got := f.sess(bobSession.ID); got.AuthTime != nil || !got.LastUsedAt.Equal(base) {
			t.Fatalf("bob's session changed: %+v", got)
		}
	}},
	{"Reauthenticate/ConflictWhenNotLive", func(t *testing.T, f *fixture) {
		u, s, _ := f.user("alice")
		bob, _, _ := f.user("bob")
		short, _ := f.session(u, "s-short", base, time.Minute)
		revoked, _ := f.session(u, "s-revoked", base, time.Hour)
		if _, _, err := f.st.RevokeSessions(f.ctx, auth.SessionFilter{SessionID: revoked.ID}, clock(at(time.Second))); err != nil {
			t.Fatal(err)
		}
		for name, tc := range map[string]struct {
			sess   *models.Session
			userID string
		}{
			"revoked":         {revoked, u.ID},
			"expired":         {short, u.ID},
			"another user's":  {s, bob.ID},
			"unknown user":    {s, "u-ghost"},
			"unknown session": {&models.Session{ID: "s-ghost"}, u.ID},
		} {
			next := f.newToken(tc.sess, at(time.Minute))
			err := f.factors().Reauthenticate(f.ctx, auth.Reauthentication{
				SessionID: tc.sess.ID, UserID: tc.userID, AMR: "pwd", AuthTime: at(time.Minute), New: next,
				Now: at(time.Minute), ExpiresAt: at(time.Hour),
			})
			if !errors.Is(err, auth.ErrConflict) {
				t.Fatalf("%s: Reauthenticate = %v, want ErrConflict", name, err)
			}
			f.absent(next, name)
		}
		if got := f.sess(s.ID); got.AMR == "pwd,otp" || got.AuthTime != nil {
			t.Fatalf("a refused Reauthenticate changed the session: %+v", got)
		}
	}},
}

// factors returns the store under test as an auth.FactorStore.
func (f *fixture) factors() auth.FactorStore {
	f.t.Helper()
	fs, ok := f.st.(auth.FactorStore)
	if !ok {
		f.t.Fatalf("%T does not implement auth.FactorStore", f.st)
	}
	return fs
}

// sealed stands for a sealed TOTP secret: the store only keeps and compares the bytes.
func sealed(name string) []byte { return []byte("sealed:" + name) }

// codeHash stands for the hash of u's recovery code name.
func codeHash(u *models.User, name string) []byte {
	h := sha256.Sum256([]byte(u.ID + ":" + name))
	return h[:]
}

// codes returns unsaved recovery codes of u.
func codes(u *models.User, names ...string) []models.RecoveryCode {
	out := make([]models.RecoveryCode, len(names))
	for i, n := range names {
		out[i] = models.RecoveryCode{UserID: u.ID, CodeHash: codeHash(u, n), CreatedAt: base}
	}
	return out
}

// pending stores the pending TOTP secret sealed(name) for u at tm, which must succeed.
func (f *fixture) pending(u *models.User, name string, tm time.Time) {
	f.t.Helper()
	if err := f.factors().SetPendingTOTP(f.ctx, u.ID, sealed(name), tm); err != nil {
		f.t.Fatalf("SetPendingTOTP: %v", err)
	}
}

// enabled turns TOTP on for u with the secret sealed(name), at step, with the recovery codes names.
func (f *fixture) enabled(u *models.User, name string, step int64, names ...string) {
	f.t.Helper()
	f.pending(u, name, base)
	if err := f.factors().EnableTOTP(f.ctx, u.ID, sealed(name), step, codes(u, names...), base); err != nil {
		f.t.Fatalf("EnableTOTP: %v", err)
	}
}

// useCode uses u's recovery code name and fails unless the result is want.
func (f *fixture) useCode(u *models.User, name string, want error) {
	f.t.Helper()
	if err := f.factors().UseRecoveryCode(f.ctx, u.ID, codeHash(u, name), at(time.Hour)); !errors.Is(err, want) {
		f.t.Fatalf("UseRecoveryCode(%s of %s) = %v, want %v", name, u.ID, err, want)
	}
}

// challenge stores a challenge of kind for u, created at created and expiring after ttl.
func (f *fixture) challenge(u *models.User, kind models.ChallengeKind, id string, created time.Time, ttl time.Duration) *models.AuthChallenge {
	f.t.Helper()
	c := &models.AuthChallenge{
		ID: id, Kind: kind, UserID: &u.ID, TokenHash: f.hash(), Data: "state", CredentialsVersion: 3,
		CreatedAt: created, ExpiresAt: created.Add(ttl),
	}
	if err := f.factors().CreateChallenge(f.ctx, c); err != nil {
		f.t.Fatalf("CreateChallenge(%s): %v", id, err)
	}
	return c
}
