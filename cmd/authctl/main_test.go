package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"gqlauth/auth"
	"gqlauth/internal/testdb"
	"gqlauth/models"
	"gqlauth/password"
	"gqlauth/store"
	"gqlauth/token"
)

type result struct {
	code           int
	stdout, stderr string
}

// ctl runs authctl with env as its whole environment.
func ctl(env map[string]string, stdin string, args ...string) result {
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	return result{code, out.String(), errOut.String()}
}

func (r result) want(t *testing.T, code int, stdout, stderr string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stdout, stdout) || !strings.Contains(r.stderr, stderr) {
		t.Fatalf("exit %d (want %d)\nstdout: %q (want %q)\nstderr: %q (want %q)", r.code, code, r.stdout, stdout, r.stderr, stderr)
	}
}

func TestAuthctl(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		dir := t.TempDir()
		env := map[string]string{"DATA_DIR": dir, "DATABASE_URL": dsn}
		ctx := context.Background()

		ctl(env, "", "migrate").want(t, 0, "schema is up to date", "")

		// Create: the id is printed, the e-mail normalized, the hash verifies.
		r := ctl(env, "correct horse battery\n", "user", "create", "-email", " Alice@Example.com ")
		r.want(t, 0, "", "")
		id := strings.TrimSpace(r.stdout)
		if _, err := uuid.Parse(id); err != nil {
			t.Fatalf("stdout %q is not a user id", r.stdout)
		}
		db, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		u, err := db.UserByEmail(ctx, "alice@example.com")
		if err != nil || u.ID != id || u.Role != models.RoleUser {
			t.Fatalf("user = %+v, %v", u, err)
		}
		if ok, rehash, err := password.Verify("correct horse battery", u.PasswordHash, password.Default); !ok || rehash || err != nil {
			t.Fatalf("stored hash: ok=%v rehash=%v err=%v", ok, rehash, err)
		}
		// Logging in works through the auth service, twice (two sessions).
		issuer, err := token.NewHS256Issuer(bytes.Repeat([]byte("k"), 32), token.Options{Issuer: "gqlauth", Audience: "gqlauth", TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := auth.NewService(db, issuer, auth.Options{RefreshTokenTTL: time.Hour, Password: password.Default, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := svc.Login(ctx, "alice@example.com", "correct horse battery", auth.Client{IP: "192.0.2.1"}); err != nil {
				t.Fatalf("login: %v", err)
			}
		}

		// Refusals.
		ctl(env, "another password\n", "user", "create", "-email", "ALICE@example.com").
			want(t, 1, "", "authctl: a user with e-mail alice@example.com already exists\n")
		ctl(env, "short\n", "user", "create", "-email", "bob@example.com").
			want(t, 1, "", "invalid password: must be at least 8 characters")
		ctl(env, "", "user", "create", "-email", "bob@example.com").
			want(t, 1, "", "invalid password")
		ctl(env, "long enough\n", "user", "create", "-email", "not an address").
			want(t, 1, "", "invalid email")
		ctl(env, "long enough\n", "user", "create").want(t, 2, "", "-email is required")
		ctl(env, "long enough\n", "user", "create", "-email", "bob@example.com", "-role", "ROOT").
			want(t, 2, "", "-role must be USER or ADMIN")
		if _, err := db.UserByEmail(ctx, "bob@example.com"); err == nil {
			t.Fatal("a refused create stored a user")
		}

		// -role, and a CRLF line ending (the \r is not part of the password).
		r = ctl(env, "windows password\r\n", "user", "create", "-email", "carol@example.com", "-role", "admin")
		r.want(t, 0, "", "")
		carol, err := db.UserByEmail(ctx, "carol@example.com")
		if err != nil || carol.Role != models.RoleAdmin {
			t.Fatalf("carol = %+v, %v", carol, err)
		}
		if ok, _, _ := password.Verify("windows password", carol.PasswordHash, password.Default); !ok {
			t.Fatal("CRLF not stripped from the password")
		}

		// set-role.
		ctl(env, "", "user", "set-role", "-email", "alice@example.com", "-role", "ADMIN").
			want(t, 0, "alice@example.com: role ADMIN (was USER)", "")
		if u, err := db.UserByID(ctx, id); err != nil || u.Role != models.RoleAdmin {
			t.Fatalf("after set-role: %+v, %v", u, err)
		}
		ctl(env, "", "user", "set-role", "-email", "nobody@example.com", "-role", "ADMIN").
			want(t, 1, "", "no user with e-mail nobody@example.com")
		ctl(env, "", "user", "set-role", "-email", "alice@example.com").want(t, 2, "", "-role is required")

		// revoke-sessions.
		ctl(env, "", "user", "revoke-sessions", "-email", "alice@example.com").want(t, 0, "revoked 2 sessions of alice@example.com", "")
		if live, err := db.Sessions(ctx, id, time.Now().UTC()); err != nil || len(live) != 0 {
			t.Fatalf("live sessions after revoke: %d, %v", len(live), err)
		}
		ctl(env, "", "user", "revoke-sessions", "-email", "alice@example.com").want(t, 0, "revoked 0 sessions", "")
		ctl(env, "", "user", "revoke-sessions", "-email", "nobody@example.com").want(t, 1, "", "no user")

		// purge: a session that expired long ago goes with its token; the recently revoked stay.
		old := time.Now().UTC().Add(-400 * time.Hour).Truncate(time.Microsecond)
		s := &models.Session{ID: uuid.NewString(), UserID: id, CreatedAt: old, LastUsedAt: old, ExpiresAt: old.Add(time.Hour)}
		rt := &models.RefreshToken{TokenHash: bytes.Repeat([]byte{7}, 32), SessionID: s.ID, UserID: id, CreatedAt: old, ExpiresAt: s.ExpiresAt}
		if _, _, err := db.CreateSession(ctx, s, rt, auth.SessionCheck{Now: time.Now}); err != nil {
			t.Fatal(err)
		}
		ctl(env, "", "purge").want(t, 0, "purged 2 rows", "")
		ctl(env, "", "purge", "-retention", "1h").want(t, 0, "purged 0 rows", "")
		ctl(env, "", "purge", "-retention", "1m").want(t, 2, "", "-retention must be at least")
		ctl(env, "", "purge", "-retention", "soon").want(t, 2, "", "invalid value")
		var n int64
		db.Gorm().Model(&models.Session{}).Where("user_id = ?", id).Count(&n)
		if n != 2 {
			t.Fatalf("%d sessions of alice left, want the 2 recently revoked", n)
		}
	})
}

func TestAuthctlUsage(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"DATA_DIR": dir, "DATABASE_URL": filepath.Join(dir, "a.db")}
	ctl(env, "", "frobnicate").want(t, 2, "", "authctl: unknown command \"frobnicate\"\n\nauthctl administers")
	ctl(env, "").want(t, 2, "", "Usage:")
	ctl(env, "", "user").want(t, 2, "", "user: missing subcommand")
	ctl(env, "", "user", "frobnicate").want(t, 2, "", "unknown command \"user frobnicate\"")
	ctl(env, "", "migrate", "extra").want(t, 2, "", "unexpected argument \"extra\"")
	ctl(env, "", "user", "create", "-nope").want(t, 2, "", "flag provided but not defined: -nope")
	for _, args := range [][]string{{"-h"}, {"help"}, {"user", "-h"}, {"user", "create", "-h"}, {"purge", "-help"}} {
		if r := ctl(env, "", args...); r.code != 0 || !strings.Contains(r.stdout, "Usage:") || r.stderr != "" {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	// Usage errors are found before the configuration is read or the database opened.
	ctl(map[string]string{"ACCESS_TOKEN_TTL": "forever"}, "", "nope").want(t, 2, "", "unknown command")

	ctl(env, "", "keys", "rotate").want(t, 1, "", "authctl: keys rotate: ") // dispatched to rotateKeys (keys.go)

	// A bad configuration is an error naming the variable; nothing is created.
	bad := map[string]string{"DATA_DIR": dir, "DATABASE_URL": filepath.Join(dir, "b.db"), "ACCESS_TOKEN_TTL": "forever"}
	ctl(bad, "", "migrate").want(t, 1, "", "ACCESS_TOKEN_TTL")
	ctl(bad, "long enough\n", "user", "create", "-email", "a@example.com").want(t, 1, "", "configuration")
	if _, err := os.Stat(filepath.Join(dir, "b.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("database created despite the bad configuration (stat: %v)", err)
	}
}

// A deleted user's access tokens (an administrator's included) kept working until they expired: the
// revocation set knows only revocations. "user delete" revokes every session in the same transaction
// that deletes the account, so running instances refuse the tokens within a poll, and an instance
// started afterwards refuses them too (the revoked rows stay until the purge).
func TestUserDeleteRevokesFirst(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		dir := t.TempDir()
		env := map[string]string{"DATA_DIR": dir, "DATABASE_URL": dsn}
		ctx := context.Background()
		ctl(env, "correct horse battery\n", "user", "create", "-email", "root@example.com", "-role", "ADMIN").want(t, 0, "", "")
		issuer, err := token.NewHS256Issuer(bytes.Repeat([]byte("k"), 32), token.Options{Issuer: "gqlauth", Audience: "gqlauth", TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		// Two running instances, each with its own connection pool and revocation cache.
		instance := func() *auth.Service {
			db, err := store.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			svc, err := auth.NewService(db, issuer, auth.Options{RefreshTokenTTL: time.Hour, Password: password.Default,
				RevocationPollInterval: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			runCtx, cancel := context.WithCancel(ctx)
			t.Cleanup(cancel)
			svc.Start(runCtx)
			return svc
		}
		a, b := instance(), instance()
		p, err := a.Login(ctx, "root@example.com", "correct horse battery", auth.Client{})
		if err != nil {
			t.Fatal(err)
		}
		for _, svc := range []*auth.Service{a, b} {
			if pr, err := svc.Authenticate(ctx, p.AccessToken); err != nil || pr.Role != models.RoleAdmin {
				t.Fatalf("before the deletion: %+v, %v", pr, err)
			}
		}

		ctl(env, "", "user", "delete", "-email", "root@example.com").want(t, 0, "revoked its 1 sessions", "")

		deadline := time.Now().Add(3 * time.Second)
		for _, svc := range []*auth.Service{a, b} {
			for {
				_, err := svc.Authenticate(ctx, p.AccessToken)
				if errors.Is(err, auth.ErrSessionRevoked) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("an instance still accepts a deleted administrator's access token: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		if _, err := instance().Authenticate(ctx, p.AccessToken); !errors.Is(err, auth.ErrSessionRevoked) {
			t.Fatalf("an instance started after the deletion: %v, want ErrSessionRevoked", err)
		}
		if u, err := a.User(ctx, p.User.ID); u != nil || err != nil {
			t.Fatalf("user(id) of a deleted user: %+v, %v", u, err)
		}
		if _, err := a.Refresh(ctx, p.RefreshToken, auth.Client{}); !errors.Is(err, auth.ErrRefreshTokenInvalid) {
			t.Fatalf("refresh: %v", err)
		}
		if _, err := a.Login(ctx, "root@example.com", "correct horse battery", auth.Client{}); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("login of a deleted user: %v", err)
		}
		ctl(env, "", "user", "delete", "-email", "root@example.com").want(t, 1, "", "no user with e-mail root@example.com")
		// The address is free again.
		ctl(env, "another password\n", "user", "create", "-email", "root@example.com").want(t, 0, "", "")

		// The purge removes the deleted row once the retention has passed, not before.
		db, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		count := func() int64 {
			var n int64
			db.Gorm().Model(&models.User{}).Where("id = ?", p.User.ID).Count(&n)
			return n
		}
		if _, err := db.Purge(ctx, time.Now().Add(-time.Hour), 100); err != nil || count() != 1 {
			t.Fatalf("purged too early: %v, %d rows", err, count())
		}
		if _, err := db.Purge(ctx, time.Now().Add(time.Hour), 100); err != nil || count() != 0 {
			t.Fatalf("purge after the retention: %v, %d rows", err, count())
		}
	})
}

// user disable-totp turns a locked-out user's TOTP off, deletes the recovery codes, and audits it.
func TestUserDisableTOTP(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		dir := t.TempDir()
		env := map[string]string{"DATA_DIR": dir, "DATABASE_URL": dsn}
		ctx := context.Background()
		r := ctl(env, "correct horse battery\n", "user", "create", "-email", "lost@example.com")
		r.want(t, 0, "", "")
		id := strings.TrimSpace(r.stdout)
		db, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		now := time.Now().UTC().Truncate(time.Microsecond)
		code := bytes.Repeat([]byte{9}, 32)
		if err := db.SetPendingTOTP(ctx, id, []byte("sealed"), now); err != nil {
			t.Fatal(err)
		}
		if err := db.EnableTOTP(ctx, id, []byte("sealed"), 1, []models.RecoveryCode{{UserID: id, CodeHash: code, CreatedAt: now}}, now); err != nil {
			t.Fatal(err)
		}

		ctl(env, "", "user", "disable-totp", "-email", "Lost@Example.com").want(t, 0, "disabled TOTP of lost@example.com", "event=admin_disable_totp")
		u, err := db.UserByID(ctx, id)
		if err != nil || u.TOTPEnabledAt != nil || u.TOTPSecret != nil {
			t.Fatalf("after disable-totp: %+v, %v", u, err)
		}
		if err := db.UseRecoveryCode(ctx, id, code, now); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("a recovery code after disable-totp: %v", err)
		}
		ctl(env, "", "user", "disable-totp", "-email", "lost@example.com").want(t, 1, "", "TOTP is not enabled for lost@example.com")
		ctl(env, "", "user", "disable-totp", "-email", "nobody@example.com").want(t, 1, "", "no user with e-mail nobody@example.com")
		ctl(env, "", "user", "disable-totp").want(t, 2, "", "-email is required")
	})
}
