package storetest

import (
	"errors"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/models"
)

// userCases: CreateUser, UserByEmail, UserByID and SetPasswordHash.
var userCases = []testCase{
	{"CreateUser/StoresUserSessionAndToken", func(t *testing.T, f *fixture) {
		u, s, rt := f.user("alice")
		if rt.ID == 0 {
			t.Fatal("CreateUser did not set the token's id")
		}
		for name, get := range map[string]func() (*models.User, error){
			"UserByEmail": func() (*models.User, error) { return f.st.UserByEmail(f.ctx, "alice@example.com") },
			"UserByID":    func() (*models.User, error) { return f.st.UserByID(f.ctx, u.ID) },
		} {
			got, err := get()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got.ID != u.ID || got.Email != u.Email || got.PasswordHash != u.PasswordHash || got.Role != models.RoleUser ||
				got.CredentialsVersion != 0 || !got.CreatedAt.Equal(base) || got.DeletedAt != nil {
				t.Fatalf("%s = %+v, want %+v", name, got, u)
			}
		}
		gs := f.sess(s.ID)
		if gs.UserID != u.ID || !gs.CreatedAt.Equal(base) || !gs.LastUsedAt.Equal(base) || !gs.ExpiresAt.Equal(at(time.Hour)) || gs.RevokedAt != nil {
			t.Fatalf("session = %+v", gs)
		}
		gt := f.token(rt)
		if gt.ID != rt.ID || gt.SessionID != s.ID || gt.UserID != u.ID || gt.ParentID != nil || !gt.ExpiresAt.Equal(rt.ExpiresAt) ||
			gt.RotatedAt != nil || gt.RevokedAt != nil {
			t.Fatalf("token = %+v", gt)
		}
		if gt.Session == nil || gt.Session.ID != s.ID || gt.User == nil || gt.User.ID != u.ID || gt.User.Email != u.Email {
			t.Fatalf("RefreshTokenByHash must load the session and the user: session=%+v user=%+v", gt.Session, gt.User)
		}
		_, _, bob := f.user("bob")
		if bob.ID == rt.ID {
			t.Fatalf("two tokens got the same id %d", bob.ID)
		}
	}},
	{"CreateUser/EmailTakenWritesNothing", func(t *testing.T, f *fixture) {
		f.user("alice")
		u := &models.User{ID: "u-2", Email: "alice@example.com", PasswordHash: "x", Role: models.RoleUser, CreatedAt: base, UpdatedAt: base}
		s := &models.Session{ID: "s-2", UserID: u.ID, CreatedAt: base, LastUsedAt: base, ExpiresAt: at(time.Hour)}
		rt := f.newToken(s, base)
		if err := f.st.CreateUser(f.ctx, u, s, rt); !errors.Is(err, auth.ErrEmailTaken) {
			t.Fatalf("CreateUser with a registered e-mail: %v, want ErrEmailTaken", err)
		}
		if _, err := f.st.UserByID(f.ctx, "u-2"); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("refused user stored: %v", err)
		}
		if _, err := f.st.SessionByID(f.ctx, "s-2"); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("refused user's session stored: %v", err)
		}
		f.absent(rt, "refused registration")
	}},
	{"CreateUser/AllOrNothing", func(t *testing.T, f *fixture) {
		// The token fails (its hash is taken) after the user and session rows: nothing stays.
		_, _, taken := f.user("alice")
		u := &models.User{ID: "u-bob", Email: "bob@example.com", PasswordHash: "x", Role: models.RoleUser, CreatedAt: base, UpdatedAt: base}
		s := &models.Session{ID: "s-bob", UserID: u.ID, CreatedAt: base, LastUsedAt: base, ExpiresAt: at(time.Hour)}
		rt := &models.RefreshToken{TokenHash: taken.TokenHash, SessionID: s.ID, UserID: u.ID, CreatedAt: base, ExpiresAt: at(time.Hour)}
		err := f.st.CreateUser(f.ctx, u, s, rt)
		if err == nil {
			t.Fatal("CreateUser with a duplicate token hash succeeded")
		}
		if errors.Is(err, auth.ErrEmailTaken) {
			t.Fatalf("a duplicate token hash reported as ErrEmailTaken: %v", err)
		}
		if _, err := f.st.UserByEmail(f.ctx, "bob@example.com"); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("half-written registration: user found (%v)", err)
		}
		if _, err := f.st.SessionByID(f.ctx, "s-bob"); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("half-written registration: session found (%v)", err)
		}
	}},
	{"CreateUser/ConcurrentSameEmailOneWins", func(t *testing.T, f *fixture) {
		for round := range 5 {
			const n = 8
			errs := make([]error, n)
			race(n, func(i int) {
				id := string(rune('a'+round)) + string(rune('a'+i))
				u := &models.User{ID: "u-" + id, Email: string(rune('a'+round)) + "@example.com", PasswordHash: "x", Role: models.RoleUser, CreatedAt: base, UpdatedAt: base}
				s := &models.Session{ID: "s-" + id, UserID: u.ID, CreatedAt: base, LastUsedAt: base, ExpiresAt: at(time.Hour)}
				errs[i] = f.st.CreateUser(f.ctx, u, s, f.newToken(s, base))
			})
			won := 0
			for _, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, auth.ErrEmailTaken):
					t.Fatalf("round %d: %v, want nil or ErrEmailTaken", round, err)
				}
			}
			if won != 1 {
				t.Fatalf("round %d: %d of %d registrations of one e-mail succeeded, want exactly 1", round, won, n)
			}
		}
	}},
	{"UserByEmail/NotFound", func(t *testing.T, f *fixture) {
		f.user("alice")
		for _, email := range []string{"nobody@example.com", "", "alice@example.co"} {
			if u, err := f.st.UserByEmail(f.ctx, email); !errors.Is(err, auth.ErrNotFound) {
				t.Fatalf("UserByEmail(%q) = %+v, %v; want ErrNotFound", email, u, err)
			}
		}
	}},
	{"UserByID/NotFound", func(t *testing.T, f *fixture) {
		f.user("alice")
		for _, id := range []string{"u-nobody", "", "s-alice"} {
			if u, err := f.st.UserByID(f.ctx, id); !errors.Is(err, auth.ErrNotFound) {
				t.Fatalf("UserByID(%q) = %+v, %v; want ErrNotFound", id, u, err)
			}
		}
	}},
	{"SetPasswordHash/ReplacesTheHashItWasGiven", func(t *testing.T, f *fixture) {
		u, _, _ := f.user("alice")
		if err := f.st.SetPasswordHash(f.ctx, u.ID, u.PasswordHash, "rehashed", at(time.Minute)); err != nil {
			t.Fatal(err)
		}
		got := f.userByID(u.ID)
		if got.PasswordHash != "rehashed" || !got.UpdatedAt.Equal(at(time.Minute)) {
			t.Fatalf("after SetPasswordHash: hash %q, updated_at %v", got.PasswordHash, got.UpdatedAt)
		}
		// A rehash is not a password change: sessions keep their credentials version.
		if got.CredentialsVersion != u.CredentialsVersion {
			t.Fatalf("SetPasswordHash moved the credentials version to %d", got.CredentialsVersion)
		}
	}},
	{"SetPasswordHash/ConflictWhenTheHashChanged", func(t *testing.T, f *fixture) {
		u, _, _ := f.user("alice")
		// What a rehash racing a password change sees: the hash it verified is no longer stored.
		for name, old := range map[string]string{"another hash": "stale-hash", "empty": ""} {
			if err := f.st.SetPasswordHash(f.ctx, u.ID, old, "rehashed", at(time.Minute)); !errors.Is(err, auth.ErrConflict) {
				t.Fatalf("%s: SetPasswordHash = %v, want ErrConflict", name, err)
			}
		}
		if got := f.userByID(u.ID); got.PasswordHash != u.PasswordHash || !got.UpdatedAt.Equal(base) {
			t.Fatalf("a refused SetPasswordHash wrote: hash %q, updated_at %v", got.PasswordHash, got.UpdatedAt)
		}
		if err := f.st.SetPasswordHash(f.ctx, "u-nobody", u.PasswordHash, "rehashed", base); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("SetPasswordHash of an unknown user = %v, want ErrConflict", err)
		}
	}},
}
