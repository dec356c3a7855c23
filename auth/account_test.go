package auth_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/models"
	"gqlauth/password"
	"gqlauth/token"
)

// Registration, login, access tokens and accounts (ported from graph's api and hardening tests).

func TestRegisterLoginMe(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{})
		reg := d.register("  Alice@Example.COM ")
		if reg.ExpiresIn != 900 || reg.RefreshToken == "" || reg.AccessToken == "" || reg.SessionID == "" {
			t.Fatalf("register pair: %+v", reg)
		}
		u := reg.User
		if u.Email != "alice@example.com" || u.Role != models.RoleUser || u.ID == "" || !u.CreatedAt.Equal(d.clock.Now()) {
			t.Fatalf("registered user: %+v", u)
		}
		// exp has whole seconds.
		if got := reg.AccessTokenExpiresAt.Sub(d.clock.Now()); got <= accessTTL-time.Second || got > accessTTL {
			t.Fatalf("access token expires in %s, want 15m", got)
		}
		if got := reg.RefreshTokenExpiresAt.Sub(d.clock.Now()); got != 720*time.Hour {
			t.Fatalf("refresh token expires in %s, want 720h", got)
		}
		p := d.principal(reg)
		if p.UserID != u.ID || p.SessionID != reg.SessionID || p.Role != models.RoleUser || !p.ExpiresAt.Equal(reg.AccessTokenExpiresAt) {
			t.Fatalf("principal = %+v", p)
		}
		me, err := d.svc.Me(d.ctx, p)
		if err != nil || me.ID != u.ID || me.Email != u.Email {
			t.Fatalf("me = %+v, %v", me, err)
		}

		// E-mail is case-insensitive at login; every login is a new session.
		li := d.login("ALICE@example.com", pw)
		if li.User.ID != u.ID || li.RefreshToken == reg.RefreshToken || li.SessionID == reg.SessionID {
			t.Fatalf("login pair: %+v", li)
		}
		d.principal(li)
		if n := len(d.sessions(li)); n != 2 {
			t.Fatalf("%d sessions after register+login, want 2", n)
		}
	})
}

func TestRegisterValidation(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{})
		d.register("taken@example.com")
		for _, tc := range []struct {
			name, email, pw, field string
			err                    error
		}{
			{"empty email", "", pw, "email", nil},
			{"no at", "alice.example.com", pw, "email", nil},
			{"display name", "Alice <alice@example.com>", pw, "email", nil},
			{"no domain dot", "alice@localhost", pw, "email", nil},
			{"too long email", strings.Repeat("a", 250) + "@example.com", pw, "email", nil},
			{"short password", "bob@example.com", "1234567", "password", nil},
			{"long password", "bob@example.com", strings.Repeat("p", 257), "password", nil},
			{"taken", "taken@example.com", pw, "", auth.ErrEmailTaken},
			{"taken other case", "  TAKEN@Example.com", pw, "", auth.ErrEmailTaken},
		} {
			_, err := d.svc.Register(d.ctx, tc.email, tc.pw, auth.Client{})
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("%s: %v, want %v", tc.name, err, tc.err)
				}
				continue
			}
			wantValidation(t, err, tc.field)
		}
		// The bounds themselves are allowed: 8 and 256 characters (multi-byte characters count once).
		for email, password := range map[string]string{"eight@example.com": "12345678", "long@example.com": strings.Repeat("é", 256)} {
			if _, err := d.svc.Register(d.ctx, email, password, auth.Client{}); err != nil {
				t.Fatalf("register %s: %v", email, err)
			}
		}
	})
}

func TestLoginInvalidCredentials(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{})
		d.register("alice@example.com")
		_, wrong := d.svc.Login(d.ctx, "alice@example.com", "wrong password", auth.Client{})
		_, unknown := d.svc.Login(d.ctx, "nobody@example.com", pw, auth.Client{})
		if wrong != auth.ErrInvalidCredentials || unknown != auth.ErrInvalidCredentials { //nolint:errorlint // the very same value, not a wrapped one
			// The very same error value: nothing tells an unknown e-mail from a wrong password.
			t.Fatalf("wrong password: %v; unknown e-mail: %v; want ErrInvalidCredentials for both", wrong, unknown)
		}
		_, err := d.svc.Login(d.ctx, "not-an-email", pw, auth.Client{})
		wantValidation(t, err, "email")
		_, err = d.svc.Login(d.ctx, "alice@example.com", strings.Repeat("p", 257), auth.Client{})
		wantValidation(t, err, "password")
	})
}

// Access tokens: which are refused, and how (ported from graph's TestAuthDirective, without HTTP).
func TestAuthenticate(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{})
		alice := d.register("alice@example.com")
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		other, err := token.NewEdDSAIssuer(key, token.Options{Issuer: "i", Audience: "a", TTL: accessTTL, Now: d.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		foreign, _, err := other.Issue(alice.User.ID, alice.SessionID, "USER")
		if err != nil {
			t.Fatal(err)
		}
		for name, raw := range map[string]string{
			"empty":                   "",
			"garbage":                 "garbage",
			"refresh token as access": alice.RefreshToken,
			"another issuer's token":  foreign,
			"tampered":                alice.AccessToken[:len(alice.AccessToken)-4] + "AAAA",
		} {
			if _, err := d.svc.Authenticate(d.ctx, raw); !errors.Is(err, auth.ErrTokenInvalid) {
				t.Fatalf("%s: %v, want ErrTokenInvalid", name, err)
			}
		}
		d.wantAuth(d.svc, alice, nil)
		// Expired: past the TTL and the leeway (exp has whole seconds, so "just before" is a second early).
		d.clock.Advance(accessTTL - time.Second)
		d.wantAuth(d.svc, alice, nil)
		d.clock.Advance(time.Second + leeway + time.Second)
		d.wantAuth(d.svc, alice, auth.ErrTokenExpired)
		// A refresh gives a working one again.
		d.wantAuth(d.svc, d.refresh(alice.RefreshToken), nil)
	})
}

func TestUserAndAuthorize(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{})
		alice, bob := d.register("alice@example.com"), d.register("bob@example.com")
		p := d.principal(alice)
		if err := auth.Authorize(p, models.RoleAdmin); !errors.Is(err, auth.ErrForbidden) {
			t.Fatalf("a USER asking for ADMIN: %v, want ErrForbidden", err)
		}
		if err := auth.Authorize(p, models.RoleUser); err != nil {
			t.Fatal(err)
		}
		if err := auth.Authorize(&auth.Principal{Role: models.RoleAdmin}, models.RoleUser); err != nil {
			t.Fatalf("an ADMIN is at least a USER: %v", err)
		}
		got, err := d.svc.User(d.ctx, bob.User.ID)
		if err != nil || got == nil || got.Email != "bob@example.com" {
			t.Fatalf("User(bob) = %+v, %v", got, err)
		}
		// Unknown and malformed ids match nothing, without an error (a NUL byte never reaches Postgres).
		for _, id := range []string{"no-such-user", "00000000-0000-4000-8000-000000000000", "a\x00b", "\x00", strings.Repeat("9", 36), alice.User.ID + "\x00", strings.ToUpper(alice.User.ID) + "x"} {
			if got, err := d.svc.User(d.ctx, id); err != nil || got != nil {
				t.Fatalf("User(%q) = %+v, %v; want nil, nil", id, got, err)
			}
			if ok, err := d.svc.RevokeSession(d.ctx, p, id); err != nil || ok {
				t.Fatalf("RevokeSession(%q) = %v, %v; want false, nil", id, ok, err)
			}
		}
		d.wantAuth(d.svc, alice, nil)
	})
}

// Stored hashes are upgraded at login when the configured argon2id parameters change, and the
// upgrade is not a password change: sessions survive it.
func TestRehashOnLogin(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{})
		p := d.register("alice@example.com")
		stronger := password.Params{Memory: 128, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
		upgraded := d.replica(auth.Options{Password: stronger})
		if _, err := upgraded.Login(d.ctx, "alice@example.com", pw, auth.Client{}); err != nil {
			t.Fatal(err)
		}
		u, err := st.UserByID(d.ctx, p.User.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=128,t=2,p=1$") {
			t.Fatalf("hash not upgraded: %.30s", u.PasswordHash)
		}
		if u.CredentialsVersion != 0 {
			t.Fatalf("a rehash moved the credentials version to %d", u.CredentialsVersion)
		}
		for _, svc := range []*auth.Service{upgraded, d.svc} {
			if _, err := svc.Login(d.ctx, "alice@example.com", pw, auth.Client{}); err != nil {
				t.Fatalf("login after the upgrade: %v", err)
			}
		}
		d.wantAuth(d.svc, p, nil)
		d.refresh(p.RefreshToken)
	})
}

// Headers may carry bytes that are not UTF-8, and any length; Postgres refuses invalid UTF-8 in text
// columns, so the service cleans them before they reach the store.
func TestUnusualClientDetails(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newDomain(t, st, auth.Options{RefreshReuseGrace: 10 * time.Second})
		d.register("alice@example.com")
		for _, c := range []auth.Client{
			{UserAgent: "agent \xff\xfe/1.0", IP: "192.0.2.1\x00"},
			{UserAgent: strings.Repeat("é", 600), IP: strings.Repeat("1", 100)},
			{UserAgent: "nul\x00byte"},
		} {
			d.clock.Advance(time.Second) // so the new session is listed first
			p := d.login("alice@example.com", pw, c)
			d.refresh(p.RefreshToken, c)
			s := d.sessions(p)[0]
			if s.UserAgent == nil || len(*s.UserAgent) > 512 || strings.ContainsRune(*s.UserAgent, 0) {
				t.Fatalf("user agent stored as %q", deref(s.UserAgent))
			}
			if s.IP != nil && (len(*s.IP) > 64 || strings.ContainsRune(*s.IP, 0)) {
				t.Fatalf("ip stored as %q", *s.IP)
			}
		}
	})
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
