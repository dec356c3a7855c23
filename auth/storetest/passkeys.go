package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/models"
)

// passkeyCases: CreatePasskey, Passkeys, PasskeyByCredentialID, UsePasskey and DeletePasskey.
var passkeyCases = []testCase{
	{"Passkey/CeremoniesWithoutToken", func(t *testing.T, f *fixture) {
		// Passkey ceremonies have no token (they are found by id): any number of them can be stored.
		fs := f.factors()
		alice, _, _ := f.user("alice")
		for i, userID := range []*string{nil, nil, &alice.ID, &alice.ID} {
			kind := models.ChallengePasskeyLogin
			if userID != nil {
				kind = models.ChallengePasskeyRegister
			}
			c := &models.AuthChallenge{ID: fmt.Sprintf("ch-%d", i), Kind: kind, UserID: userID, Data: fmt.Sprintf(`{"n":%d}`, i),
				CreatedAt: at(time.Duration(i) * time.Second), ExpiresAt: at(time.Hour)}
			if err := fs.CreateChallenge(f.ctx, c); err != nil {
				t.Fatalf("CreateChallenge %d: %v", i, err)
			}
		}
		got, err := fs.ChallengeByID(f.ctx, "ch-1")
		if err != nil || got.Kind != models.ChallengePasskeyLogin || got.UserID != nil || got.Data != `{"n":1}` || len(got.TokenHash) != 0 {
			t.Fatalf("ChallengeByID = %+v, %v", got, err)
		}
		latest, err := fs.LatestChallenge(f.ctx, alice.ID, models.ChallengePasskeyRegister, at(time.Minute))
		if err != nil || latest.ID != "ch-3" {
			t.Fatalf("LatestChallenge = %+v, %v; want ch-3", latest, err)
		}
	}},
	{"Passkey/CreateAndList", func(t *testing.T, f *fixture) {
		fs := f.factors()
		alice, _, _ := f.user("alice")
		bob, _, _ := f.user("bob")
		// Stored out of order: the list is by creation time.
		second := f.passkey(alice, "pk-a2", "cred-a2", at(time.Minute))
		first := f.passkey(alice, "pk-a1", "cred-a1", base)
		f.passkey(bob, "pk-b1", "cred-b1", base)
		list, err := fs.Passkeys(f.ctx, alice.ID)
		if err != nil {
			t.Fatalf("Passkeys: %v", err)
		}
		if len(list) != 2 {
			t.Fatalf("Passkeys(alice) = %d passkeys, want 2", len(list))
		}
		for i, want := range []*models.Passkey{first, second} {
			samePasskey(t, &list[i], want)
			if list[i].User != nil {
				t.Fatalf("Passkeys loaded the user")
			}
		}
		if list, err := fs.Passkeys(f.ctx, "u-nobody"); err != nil || len(list) != 0 {
			t.Fatalf("Passkeys(unknown user) = %v, %v; want none", list, err)
		}
	}},
	{"Passkey/DuplicateCredentialID", func(t *testing.T, f *fixture) {
		fs := f.factors()
		alice, _, _ := f.user("alice")
		bob, _, _ := f.user("bob")
		f.passkey(alice, "pk-a1", "cred-1", base)
		dup := newPasskey(bob, "pk-b1", "cred-1", base)
		if err := fs.CreatePasskey(f.ctx, dup); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("CreatePasskey with a registered credential id: %v, want ErrConflict", err)
		}
		if list, err := fs.Passkeys(f.ctx, bob.ID); err != nil || len(list) != 0 {
			t.Fatalf("refused passkey stored: %v, %v", list, err)
		}
		got, err := fs.PasskeyByCredentialID(f.ctx, []byte("cred-1"))
		if err != nil || got.UserID != alice.ID {
			t.Fatalf("the credential's owner changed: %+v, %v", got, err)
		}
	}},
	{"Passkey/ByCredentialIDLoadsUser", func(t *testing.T, f *fixture) {
		fs := f.factors()
		alice, _, _ := f.user("alice")
		pk := f.passkey(alice, "pk-a1", "cred-a1", base)
		got, err := fs.PasskeyByCredentialID(f.ctx, []byte("cred-a1"))
		if err != nil {
			t.Fatalf("PasskeyByCredentialID: %v", err)
		}
		samePasskey(t, got, pk)
		if got.User == nil || got.User.ID != alice.ID || got.User.Email != alice.Email {
			t.Fatalf("PasskeyByCredentialID must load the user: %+v", got.User)
		}
		for _, id := range [][]byte{[]byte("cred-a"), []byte("cred-a1x"), nil} {
			if _, err := fs.PasskeyByCredentialID(f.ctx, id); !errors.Is(err, auth.ErrNotFound) {
				t.Fatalf("PasskeyByCredentialID(%q): %v, want ErrNotFound", id, err)
			}
		}
	}},
	{"Passkey/DeletedUserNotFound", func(t *testing.T, f *fixture) {
		fs := f.factors()
		del, ok := f.st.(interface {
			DeleteUser(ctx context.Context, userID string, now func() time.Time) ([]string, error)
		})
		if !ok {
			t.Skip("the store cannot delete users")
		}
		alice, _, _ := f.user("alice")
		f.passkey(alice, "pk-a1", "cred-a1", base)
		if _, err := del.DeleteUser(f.ctx, alice.ID, clock(at(time.Minute))); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		if _, err := fs.PasskeyByCredentialID(f.ctx, []byte("cred-a1")); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("a deleted user's passkey: %v, want ErrNotFound", err)
		}
	}},
	{"Passkey/UseIsConditional", func(t *testing.T, f *fixture) {
		fs := f.factors()
		alice, _, _ := f.user("alice")
		pk := f.passkey(alice, "pk-a1", "cred-a1", base)
		used := at(time.Hour)
		if err := fs.UsePasskey(f.ctx, pk.ID, 0, 5, `{"v":2}`, used); err != nil {
			t.Fatalf("UsePasskey: %v", err)
		}
		want := *pk
		want.SignCount, want.Credential, want.LastUsedAt = 5, `{"v":2}`, &used
		samePasskey(t, f.passkeyByID(alice, pk.ID), &want)
		// The counter moved on: a use that read the old one is refused and writes nothing.
		if err := fs.UsePasskey(f.ctx, pk.ID, 0, 6, `{"v":3}`, at(2*time.Hour)); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("UsePasskey with a stale counter: %v, want ErrConflict", err)
		}
		samePasskey(t, f.passkeyByID(alice, pk.ID), &want)
		if err := fs.UsePasskey(f.ctx, "pk-none", 0, 1, "{}", used); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("UsePasskey of an unknown passkey: %v, want ErrConflict", err)
		}
		// A counter that stays at zero (authenticators without one) is still a use.
		zero := f.passkey(alice, "pk-a2", "cred-a2", base)
		for range 2 {
			if err := fs.UsePasskey(f.ctx, zero.ID, 0, 0, "{}", used); err != nil {
				t.Fatalf("UsePasskey 0 → 0: %v", err)
			}
		}
	}},
	{"Passkey/UseRace", func(t *testing.T, f *fixture) {
		fs := f.factors()
		alice, _, _ := f.user("alice")
		pk := f.passkey(alice, "pk-a1", "cred-a1", base)
		const n = 8
		errs := make([]error, n)
		race(n, func(i int) {
			errs[i] = fs.UsePasskey(f.ctx, pk.ID, 0, int64(i+1), fmt.Sprintf(`{"by":%d}`, i), at(time.Minute))
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("two uses from the same counter won: %d and %d", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, auth.ErrConflict):
				t.Fatalf("use %d: %v, want nil or ErrConflict", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no use won")
		}
		got := f.passkeyByID(alice, pk.ID)
		if got.SignCount != int64(winner+1) || got.Credential != fmt.Sprintf(`{"by":%d}`, winner) {
			t.Fatalf("stored %d %s, want the winner's (%d)", got.SignCount, got.Credential, winner)
		}
	}},
	{"Passkey/Delete", func(t *testing.T, f *fixture) {
		fs := f.factors()
		alice, _, _ := f.user("alice")
		bob, _, _ := f.user("bob")
		pk := f.passkey(alice, "pk-a1", "cred-a1", base)
		keep := f.passkey(alice, "pk-a2", "cred-a2", base)
		if ok, err := fs.DeletePasskey(f.ctx, bob.ID, pk.ID); err != nil || ok {
			t.Fatalf("DeletePasskey of another user's passkey = %v, %v; want false", ok, err)
		}
		f.passkeyByID(alice, pk.ID) // still there
		if ok, err := fs.DeletePasskey(f.ctx, alice.ID, pk.ID); err != nil || !ok {
			t.Fatalf("DeletePasskey = %v, %v; want true", ok, err)
		}
		if ok, err := fs.DeletePasskey(f.ctx, alice.ID, pk.ID); err != nil || ok {
			t.Fatalf("DeletePasskey again = %v, %v; want false", ok, err)
		}
		if _, err := fs.PasskeyByCredentialID(f.ctx, []byte("cred-a1")); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("a deleted passkey: %v, want ErrNotFound", err)
		}
		if err := fs.UsePasskey(f.ctx, pk.ID, 0, 1, "{}", at(time.Minute)); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("UsePasskey of a deleted passkey: %v, want ErrConflict", err)
		}
		list, err := fs.Passkeys(f.ctx, alice.ID)
		if err != nil || len(list) != 1 || list[0].ID != keep.ID {
			t.Fatalf("Passkeys after delete = %+v, %v; want only %s", list, err, keep.ID)
		}
		// The credential id is free again.
		f.passkey(bob, "pk-b1", "cred-a1", base)
	}},
}

// newPasskey returns an unsaved passkey of u.
func newPasskey(u *models.User, id, credentialID string, created time.Time) *models.Passkey {
	return &models.Passkey{
		ID: id, UserID: u.ID, CredentialID: []byte(credentialID), Credential: `{"id":"` + credentialID + `"}`,
		Name: "key " + id, CreatedAt: created,
	}
}

// passkey stores a passkey of u, which must succeed.
func (f *fixture) passkey(u *models.User, id, credentialID string, created time.Time) *models.Passkey {
	f.t.Helper()
	p := newPasskey(u, id, credentialID, created)
	if err := f.factors().CreatePasskey(f.ctx, p); err != nil {
		f.t.Fatalf("CreatePasskey(%s): %v", id, err)
	}
	return p
}

// passkeyByID reads one of u's passkeys back.
func (f *fixture) passkeyByID(u *models.User, id string) *models.Passkey {
	f.t.Helper()
	list, err := f.factors().Passkeys(f.ctx, u.ID)
	if err != nil {
		f.t.Fatalf("Passkeys: %v", err)
	}
	i := slices.IndexFunc(list, func(p models.Passkey) bool { return p.ID == id })
	if i < 0 {
		f.t.Fatalf("passkey %s not found", id)
	}
	return &list[i]
}

// samePasskey fails unless got has want's fields.
func samePasskey(t *testing.T, got, want *models.Passkey) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || string(got.CredentialID) != string(want.CredentialID) ||
		got.Credential != want.Credential || got.SignCount != want.SignCount || got.Name != want.Name ||
		!got.CreatedAt.Equal(want.CreatedAt) || !timeEq(got.LastUsedAt, want.LastUsedAt) {
		t.Fatalf("passkey = %+v, want %+v", got, want)
	}
}
