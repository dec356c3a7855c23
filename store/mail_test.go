package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"gqlauth/auth"
	"gqlauth/internal/testdb"
	"gqlauth/models"
	"gqlauth/store"
)

// mailFixture makes e-mail tokens and reads the outbox of one database.
type mailFixture struct {
	t   *testing.T
	db  *store.DB
	now time.Time
}

func newMailFixture(t *testing.T, dsn string) *mailFixture {
	return &mailFixture{t: t, db: mustOpen(t, dsn), now: time.Now().UTC().Truncate(time.Microsecond)}
}

// rawToken is a fresh raw token and its hash, as auth makes them.
func rawToken(t *testing.T) (string, []byte) {
	t.Helper()
	raw := base64.RawURLEncoding.EncodeToString([]byte(uuid.NewString() + uuid.NewString())[:32])
	h := sha256.Sum256([]byte(raw))
	return raw, h[:]
}

// token stores a token of purpose for u, valid for ttl from now, with its mail, and returns it with
// its raw value.
func (f *mailFixture) token(userID string, purpose models.EmailPurpose, ttl time.Duration, newEmail *string) (*models.EmailToken, string) {
	f.t.Helper()
	raw, hash := rawToken(f.t)
	tok := &models.EmailToken{ID: uuid.NewString(), UserID: userID, Purpose: purpose, TokenHash: hash, NewEmail: newEmail,
		CreatedAt: f.now, ExpiresAt: f.now.Add(ttl)}
	m := auth.Mail{Kind: auth.KindVerifyEmail, To: "to@example.com", Data: map[string]string{"link": "https://app.example/t/" + raw, "expires_in": "1 hour"}}
	if err := f.db.CreateEmailToken(context.Background(), tok, m, ""); err != nil {
		f.t.Fatalf("CreateEmailToken: %v", err)
	}
	return tok, raw
}

// outbox lists every message, oldest first.
func (f *mailFixture) outbox() []models.OutboxMail {
	f.t.Helper()
	var rows []models.OutboxMail
	if err := f.db.Gorm().Order("created_at, id").Find(&rows).Error; err != nil {
		f.t.Fatal(err)
	}
	return rows
}

func (f *mailFixture) mail(id string) models.OutboxMail {
	f.t.Helper()
	var row models.OutboxMail
	if err := f.db.Gorm().Where("id = ?", id).Take(&row).Error; err != nil {
		f.t.Fatalf("mail %s: %v", id, err)
	}
	return row
}

func (f *mailFixture) enqueue(kind, to string, at time.Time, data map[string]string) {
	f.t.Helper()
	if err := f.db.EnqueueMail(context.Background(), auth.Mail{Kind: kind, To: to, Data: data}, at); err != nil {
		f.t.Fatalf("EnqueueMail: %v", err)
	}
}

func (f *mailFixture) claim(at time.Time, lease time.Duration, n int) []auth.Mail {
	f.t.Helper()
	list, err := f.db.ClaimMail(context.Background(), at, lease, n)
	if err != nil {
		f.t.Fatalf("ClaimMail: %v", err)
	}
	return list
}

func (f *mailFixture) user(id string) *models.User {
	f.t.Helper()
	u, err := f.db.UserByID(context.Background(), id)
	if err != nil {
		f.t.Fatalf("user %s: %v", id, err)
	}
	return u
}

func mailIDs(list []auth.Mail) []string {
	ids := make([]string, len(list))
	for i, m := range list {
		ids[i] = m.ID
	}
	return ids
}

// Queued messages are claimed oldest first once due, with their data; a claimed message is leased
// and nobody else gets it until the lease is over, when it is claimable again.
func TestClaimMail(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		f := newMailFixture(t, dsn)
		now := f.now
		f.enqueue(auth.KindPasswordChanged, "b@example.com", now.Add(-time.Minute), nil)
		f.enqueue(auth.KindVerifyEmail, "a@example.com", now.Add(-2*time.Minute), map[string]string{"link": "L", "expires_in": "1 day"})
		f.enqueue(auth.KindEmailChanged, "c@example.com", now.Add(time.Minute), map[string]string{"new_email": "n@example.com"})

		if got := f.claim(now, time.Minute, 0); len(got) != 0 {
			t.Fatalf("n=0 claimed %d", len(got))
		}
		first := f.claim(now, time.Minute, 1)
		if len(first) != 1 || first[0].To != "a@example.com" || first[0].Kind != auth.KindVerifyEmail ||
			first[0].Data["link"] != "L" || first[0].Data["expires_in"] != "1 day" || first[0].Attempts != 0 || first[0].ID == "" {
			t.Fatalf("first claim: %+v", first)
		}
		second := f.claim(now, time.Minute, 10)
		if len(second) != 1 || second[0].To != "b@example.com" || second[0].Data != nil {
			t.Fatalf("second claim (the future message is not due): %+v", second)
		}
		if got := f.claim(now.Add(30*time.Second), time.Minute, 10); len(got) != 0 {
			t.Fatalf("leased messages claimed again: %+v", got)
		}
		// Two minutes on: both leases are over and the third message is due.
		later := f.claim(now.Add(2*time.Minute), time.Minute, 10)
		if want := []string{first[0].ID, second[0].ID}; len(later) != 3 || later[0].ID != want[0] || later[1].ID != want[1] ||
			later[2].To != "c@example.com" || later[2].Data["new_email"] != "n@example.com" {
			t.Fatalf("after the leases: %+v", later)
		}
		if row := f.mail(later[0].ID); row.LeasedUntil == nil || !row.LeasedUntil.Equal(now.Add(3*time.Minute)) || row.Status != models.MailPending {
			t.Fatalf("row after claim: %+v", row)
		}
	})
}

// Sent, retried and ended messages: each records what the contract says, sent and ended ones keep no
// data, and a message that is finished is not retried or ended again.
func TestMailOutcomes(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		f := newMailFixture(t, dsn)
		ctx := context.Background()
		now := f.now
		for _, to := range []string{"sent", "retried", "failed", "dropped"} {
			f.enqueue(auth.KindPasswordReset, to+"@example.com", now, map[string]string{"link": "https://x/secret-" + to})
			now = now.Add(time.Microsecond) // distinct created_at: the claim order is known
		}
		claimed := f.claim(now, time.Minute, 10)
		if len(claimed) != 4 {
			t.Fatalf("claimed %d", len(claimed))
		}
		sent, retried, failed, dropped := claimed[0].ID, claimed[1].ID, claimed[2].ID, claimed[3].ID

		at := now.Add(time.Second)
		if err := f.db.MailSent(ctx, sent, at); err != nil {
			t.Fatal(err)
		}
		row := f.mail(sent)
		if row.Status != models.MailSent || row.Data != "" || row.SentAt == nil || !row.SentAt.Equal(at) || row.LeasedUntil != nil || row.Attempts != 1 {
			t.Fatalf("sent row: %+v", row)
		}

		longErr := strings.Repeat("é", 600) + "\xff"
		next := now.Add(time.Hour)
		if err := f.db.MailRetry(ctx, retried, next, longErr); err != nil {
			t.Fatal(err)
		}
		row = f.mail(retried)
		if row.Status != models.MailPending || row.Attempts != 1 || !row.NextAttemptAt.Equal(next) || row.LeasedUntil != nil ||
			len([]rune(row.LastError)) != 512 || row.Data == "" {
			t.Fatalf("retried row: %+v (last error %d characters)", row, len([]rune(row.LastError)))
		}
		if err := f.db.MailDone(ctx, failed, models.MailFailed, at, "550 no such user"); err != nil {
			t.Fatal(err)
		}
		row = f.mail(failed)
		if row.Status != models.MailFailed || row.Data != "" || row.Attempts != 1 || row.LastError != "550 no such user" || row.LeasedUntil != nil || row.SentAt != nil {
			t.Fatalf("failed row: %+v", row)
		}
		if err := f.db.MailDone(ctx, dropped, models.MailDropped, at, ""); err != nil {
			t.Fatal(err)
		}
		if row = f.mail(dropped); row.Status != models.MailDropped || row.Data != "" || row.Attempts != 0 {
			t.Fatalf("dropped row: %+v", row)
		}

		if got := f.claim(next.Add(-time.Second), time.Minute, 10); len(got) != 0 {
			t.Fatalf("claimed before its next attempt: %+v", got)
		}
		again := f.claim(next, time.Minute, 10)
		if len(again) != 1 || again[0].ID != retried || again[0].Attempts != 1 || again[0].Data["link"] == "" {
			t.Fatalf("retry claim: %+v", again)
		}

		// Finished messages stay finished; unknown ids are not found; a pending status ends nothing.
		if err := f.db.MailRetry(ctx, sent, next, "late"); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("retry of a sent message: %v, want ErrConflict", err)
		}
		if err := f.db.MailDone(ctx, sent, models.MailFailed, at, "late"); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("failing a sent message: %v, want ErrConflict", err)
		}
		if row = f.mail(sent); row.Status != models.MailSent || row.LastError != "" {
			t.Fatalf("sent row changed: %+v", row)
		}
		if err := f.db.MailDone(ctx, retried, models.MailPending, at, ""); err == nil {
			t.Fatal("MailDone with status pending accepted")
		}
		for name, err := range map[string]error{
			"sent":  f.db.MailSent(ctx, "nope", at),
			"retry": f.db.MailRetry(ctx, "nope", next, ""),
			"done":  f.db.MailDone(ctx, "nope", models.MailDropped, at, ""),
		} {
			if !errors.Is(err, auth.ErrNotFound) {
				t.Errorf("%s of an unknown message: %v, want ErrNotFound", name, err)
			}
		}
		// A replica whose lease ran out may still deliver a message another replica gave up: it was
		// sent, so that is what is recorded.
		if err := f.db.MailSent(ctx, failed, at); err != nil {
			t.Fatal(err)
		}
		if row = f.mail(failed); row.Status != models.MailSent || row.Attempts != 2 {
			t.Fatalf("late send: %+v", row)
		}
	})
}

// Replicas claiming at once never get the same message, and between them get every message.
func TestClaimMailConcurrent(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		f := newMailFixture(t, dsn)
		other := mustOpen(t, dsn)
		const rounds, perRound = 20, 7
		seen := map[string]bool{}
		for round := range rounds {
			for i := range perRound {
				f.enqueue(auth.KindPasswordChanged, fmt.Sprintf("r%d-%d@example.com", round, i), f.now, nil)
			}
			var wg sync.WaitGroup
			var got [2][]auth.Mail
			var errs [2]error
			for i, db := range []*store.DB{f.db, other} {
				wg.Go(func() { got[i], errs[i] = db.ClaimMail(context.Background(), f.now, time.Hour, 4) })
			}
			wg.Wait()
			if err := errors.Join(errs[0], errs[1]); err != nil {
				t.Fatal(err)
			}
			for _, id := range append(mailIDs(got[0]), mailIDs(got[1])...) {
				if seen[id] {
					t.Fatalf("round %d: message %s claimed twice", round, id)
				}
				seen[id] = true
			}
			// Whatever this round left is claimed by the next rounds (or the final sweep).
		}
		rest := f.claim(f.now, time.Hour, 1000)
		for _, id := range mailIDs(rest) {
			if seen[id] {
				t.Fatalf("message %s claimed twice", id)
			}
			seen[id] = true
		}
		if len(seen) != rounds*perRound {
			t.Fatalf("%d messages claimed, want %d", len(seen), rounds*perRound)
		}
	})
}

// A token is stored with its mail; a new reset token supersedes the older ones of its user (and only
// those); a token for an unknown or deleted user writes nothing.
func TestCreateEmailToken(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		f := newMailFixture(t, dsn)
		ctx := context.Background()
		alice := seed(t, f.db, "alice", f.now).user
		bob := seed(t, f.db, "bob", f.now).user

		verify, _ := f.token(alice.ID, models.PurposeVerifyEmail, 24*time.Hour, nil)
		old, _ := f.token(alice.ID, models.PurposePasswordReset, time.Hour, nil)
		bobs, _ := f.token(bob.ID, models.PurposePasswordReset, time.Hour, nil)
		newer, _ := f.token(alice.ID, models.PurposePasswordReset, time.Hour, nil)

		got, err := f.db.EmailTokenByHash(ctx, newer.TokenHash)
		if err != nil || got.ID != newer.ID || got.UserID != alice.ID || got.Purpose != models.PurposePasswordReset || got.UsedAt != nil ||
			!got.ExpiresAt.Equal(newer.ExpiresAt) {
			t.Fatalf("EmailTokenByHash = %+v, %v", got, err)
		}
		if got, err := f.db.EmailTokenByHash(ctx, old.TokenHash); err != nil || got.UsedAt == nil {
			t.Fatalf("older reset token not superseded: %+v, %v", got, err)
		}
		for _, tok := range []*models.EmailToken{verify, bobs} {
			if got, err := f.db.EmailTokenByHash(ctx, tok.TokenHash); err != nil || got.UsedAt != nil {
				t.Fatalf("token %s (%s of %s) superseded by alice's reset: %+v, %v", tok.ID, tok.Purpose, tok.UserID, got, err)
			}
		}
		if _, err := f.db.EmailTokenByHash(ctx, make([]byte, 32)); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("unknown hash: %v, want ErrNotFound", err)
		}
		if rows := f.outbox(); len(rows) != 4 || rows[0].Status != models.MailPending || rows[0].Kind != auth.KindVerifyEmail ||
			!strings.Contains(rows[0].Data, `"link":"https://app.example/t/`) {
			t.Fatalf("outbox: %+v", rows)
		}

		// Unknown and deleted users: no token, no mail.
		if _, err := f.db.DeleteUser(ctx, bob.ID, time.Now); err != nil {
			t.Fatal(err)
		}
		for _, userID := range []string{"u-nobody", bob.ID} {
			_, hash := rawToken(t)
			tok := &models.EmailToken{ID: uuid.NewString(), UserID: userID, Purpose: models.PurposePasswordReset, TokenHash: hash, CreatedAt: f.now, ExpiresAt: f.now.Add(time.Hour)}
			if err := f.db.CreateEmailToken(ctx, tok, auth.Mail{Kind: auth.KindPasswordReset, To: "x@example.com"}, ""); !errors.Is(err, auth.ErrNotFound) {
				t.Fatalf("token for %s: %v, want ErrNotFound", userID, err)
			}
			if _, err := f.db.EmailTokenByHash(ctx, hash); !errors.Is(err, auth.ErrNotFound) {
				t.Fatalf("token for %s stored: %v", userID, err)
			}
		}
		if got, err := f.db.EmailTokenByHash(ctx, bobs.TokenHash); err != nil || got.UsedAt != nil {
			t.Fatalf("a refused token superseded bob's: %+v, %v", got, err)
		}
		if n := len(f.outbox()); n != 4 {
			t.Fatalf("%d messages after refused tokens, want 4", n)
		}
	})
}

// A reset request resolves in place: its outbox row becomes the reset mail (same id, lease kept), once;
// a second resolution (a replica whose lease ran out) is refused and stores no token.
func TestCreateEmailTokenReplacesTheRequest(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		f := newMailFixture(t, dsn)
		ctx := context.Background()
		alice := seed(t, f.db, "alice", f.now).user
		f.enqueue(auth.KindResetRequest, alice.Email, f.now, map[string]string{"email": alice.Email})
		req := f.claim(f.now, time.Minute, 1)
		if len(req) != 1 {
			t.Fatalf("claimed %d", len(req))
		}
		leased := f.mail(req[0].ID).LeasedUntil

		resolve := func() (*models.EmailToken, error) {
			raw, hash := rawToken(t)
			tok := &models.EmailToken{ID: uuid.NewString(), UserID: alice.ID, Purpose: models.PurposePasswordReset, TokenHash: hash, CreatedAt: f.now, ExpiresAt: f.now.Add(time.Hour)}
			m := auth.Mail{Kind: auth.KindPasswordReset, To: alice.Email, Data: map[string]string{"link": "https://app.example/reset/" + raw, "expires_in": "1 hour"}}
			return tok, f.db.CreateEmailToken(ctx, tok, m, req[0].ID)
		}
		tok, err := resolve()
		if err != nil {
			t.Fatal(err)
		}
		rows := f.outbox()
		if len(rows) != 1 || rows[0].ID != req[0].ID || rows[0].Kind != auth.KindPasswordReset || rows[0].To != alice.Email ||
			!strings.Contains(rows[0].Data, "https://app.example/reset/") || rows[0].Status != models.MailPending ||
			rows[0].LeasedUntil == nil || !rows[0].LeasedUntil.Equal(*leased) {
			t.Fatalf("outbox after resolving: %+v", rows)
		}
		second, err := resolve()
		if !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("second resolution: %v, want ErrConflict", err)
		}
		if _, err := f.db.EmailTokenByHash(ctx, second.TokenHash); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("refused resolution stored its token: %v", err)
		}
		if got, err := f.db.EmailTokenByHash(ctx, tok.TokenHash); err != nil || got.UsedAt != nil {
			t.Fatalf("refused resolution superseded the first token: %+v, %v", got, err)
		}
		if rows := f.outbox(); len(rows) != 1 || rows[0].Data != f.mail(req[0].ID).Data {
			t.Fatalf("outbox after the refused resolution: %+v", rows)
		}
		// Unknown request id: refused too.
		req[0].ID = "nope"
		if _, err := resolve(); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("resolution of an unknown request: %v, want ErrConflict", err)
		}
	})
}

// resetFor is a PasswordReset of tok with a fresh session and a notice.
func resetFor(f *mailFixture, tok *models.EmailToken, sessionID string, at time.Time) auth.PasswordReset {
	_, hash := rawToken(f.t)
	s := &models.Session{ID: sessionID, UserID: tok.UserID, CreatedAt: at, LastUsedAt: at, ExpiresAt: at.Add(time.Hour)}
	rt := &models.RefreshToken{TokenHash: hash, SessionID: s.ID, UserID: tok.UserID, CreatedAt: at, ExpiresAt: s.ExpiresAt}
	return auth.PasswordReset{TokenID: tok.ID, UserID: tok.UserID, NewHash: "new-hash-" + sessionID, At: at, Session: s, Token: rt,
		Notice: auth.Mail{Kind: auth.KindPasswordChanged, To: "alice@example.com"}}
}

// A reset changes the password and the credentials version, verifies the address, revokes every
// session (visible to RevokedSince, with their refresh tokens), opens the new session and queues the
// notice; a used, superseded, expired or other-purpose token writes nothing.
func TestResetPassword(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		f := newMailFixture(t, dsn)
		ctx := context.Background()
		a := seed(t, f.db, "alice", f.now)
		second, _ := (&purgeFixture{t: t, db: f.db, now: f.now}).session(a.user, "s-alice-2", time.Hour, nil)
		before := f.user(a.user.ID)

		superseded, _ := f.token(a.user.ID, models.PurposePasswordReset, time.Hour, nil)
		tok, _ := f.token(a.user.ID, models.PurposePasswordReset, time.Hour, nil)
		verify, _ := f.token(a.user.ID, models.PurposeVerifyEmail, time.Hour, nil)
		mails := len(f.outbox())

		// Refused: a superseded token, a verification token, an expired one (at its expiry).
		for name, r := range map[string]auth.PasswordReset{
			"superseded": resetFor(f, superseded, "s-x1", f.now),
			"verify":     resetFor(f, verify, "s-x2", f.now),
			"expired":    resetFor(f, tok, "s-x3", tok.ExpiresAt),
		} {
			if ids, _, err := f.db.ResetPassword(ctx, r); !errors.Is(err, auth.ErrConflict) || ids != nil {
				t.Fatalf("%s: %v, %v; want ErrConflict", name, ids, err)
			}
		}
		assertUntouched := func(when string) {
			t.Helper()
			u := f.user(a.user.ID)
			if u.PasswordHash != before.PasswordHash || u.CredentialsVersion != before.CredentialsVersion || u.EmailVerifiedAt != nil {
				t.Fatalf("%s: user changed: %+v", when, u)
			}
			if n := count(t, f.db, &models.Session{}, "revoked_at IS NOT NULL"); n != 0 {
				t.Fatalf("%s: %d sessions revoked", when, n)
			}
			if n := count(t, f.db, &models.Session{}, "id LIKE 's-x%'"); n != 0 {
				t.Fatalf("%s: %d new sessions", when, n)
			}
			if n := len(f.outbox()); n != mails {
				t.Fatalf("%s: %d messages, want %d", when, n, mails)
			}
		}
		assertUntouched("refused resets")

		r := resetFor(f, tok, "s-new", f.now)
		ids, at, err := f.db.ResetPassword(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 2 || !(ids[0] == a.session.ID || ids[1] == a.session.ID) || !(ids[0] == second || ids[1] == second) {
			t.Fatalf("revoked %v, want %s and %s", ids, a.session.ID, second)
		}
		if at.Before(f.now) || at.After(time.Now().Add(time.Second)) {
			t.Fatalf("revocation time %v, want from %v on", at, f.now)
		}
		u := f.user(a.user.ID)
		if u.PasswordHash != r.NewHash || u.CredentialsVersion != before.CredentialsVersion+1 || u.EmailVerifiedAt == nil || !u.EmailVerifiedAt.Equal(f.now) {
			t.Fatalf("user after reset: %+v", u)
		}
		revs, err := f.db.RevokedSince(ctx, at.Add(-time.Second))
		if err != nil || len(revs) != 2 {
			t.Fatalf("RevokedSince = %+v, %v; want both sessions", revs, err)
		}
		for _, rv := range revs {
			if !rv.RevokedAt.Equal(at) {
				t.Fatalf("revocation %+v, want at %v", rv, at)
			}
		}
		if n := count(t, f.db, &models.RefreshToken{}, "session_id IN ? AND revoked_at IS NULL", ids); n != 0 {
			t.Fatalf("%d live refresh tokens of revoked sessions", n)
		}
		if s, err := f.db.SessionByID(ctx, "s-new"); err != nil || s.RevokedAt != nil {
			t.Fatalf("new session: %+v, %v", s, err)
		}
		if got, err := f.db.RefreshTokenByHash(ctx, r.Token.TokenHash); err != nil || got.RevokedAt != nil {
			t.Fatalf("new refresh token: %+v, %v", got, err)
		}
		if got, _ := f.db.EmailTokenByHash(ctx, tok.TokenHash); got.UsedAt == nil {
			t.Fatal("token not marked used")
		}
		if n := len(f.outbox()); n != mails+1 || count(t, f.db, &models.OutboxMail{}, "kind = ? AND to_address = ?", auth.KindPasswordChanged, "alice@example.com") != 1 {
			t.Fatalf("notice not queued: %d messages", n)
		}
		// A login that verified the old password cannot open a session now.
		if _, _, err := f.db.CreateSession(ctx, &models.Session{ID: "s-late", UserID: a.user.ID, CreatedAt: f.now, LastUsedAt: f.now, ExpiresAt: f.now.Add(time.Hour)},
			&models.RefreshToken{TokenHash: bytes.Repeat([]byte{7}, 32), SessionID: "s-late", UserID: a.user.ID, CreatedAt: f.now, ExpiresAt: f.now.Add(time.Hour)},
			auth.SessionCheck{CredentialsVersion: before.CredentialsVersion, Now: time.Now}); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("session with the old credentials version: %v, want ErrConflict", err)
		}

		// The same token again: refused, nothing written.
		before, mails = f.user(a.user.ID), len(f.outbox())
		if _, _, err := f.db.ResetPassword(ctx, resetFor(f, tok, "s-x4", f.now)); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("second use: %v, want ErrConflict", err)
		}
		if u := f.user(a.user.ID); u.PasswordHash != before.PasswordHash || u.CredentialsVersion != before.CredentialsVersion {
			t.Fatalf("second use changed the user: %+v", u)
		}
		if _, err := f.db.SessionByID(ctx, "s-x4"); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("second use opened a session: %v", err)
		}
		if s, _ := f.db.SessionByID(ctx, "s-new"); s.RevokedAt != nil {
			t.Fatal("second use revoked the new session")
		}
		if n := len(f.outbox()); n != mails {
			t.Fatalf("second use queued mail: %d messages, want %d", n, mails)
		}

		// A deleted user: not found.
		last, _ := f.token(a.user.ID, models.PurposePasswordReset, time.Hour, nil)
		if _, err := f.db.DeleteUser(ctx, a.user.ID, time.Now); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.db.ResetPassword(ctx, resetFor(f, last, "s-x5", f.now)); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("reset of a deleted user: %v, want ErrNotFound", err)
		}
	})
}

// Verification marks the address verified once; a change-email token moves the account to the new
// address and queues the notice, unless another account has the address (EMAIL_TAKEN, nothing
// written).
func TestVerifyEmail(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		f := newMailFixture(t, dsn)
		ctx := context.Background()
		alice := seed(t, f.db, "alice", f.now).user
		seed(t, f.db, "bob", f.now)

		verify, _ := f.token(alice.ID, models.PurposeVerifyEmail, time.Hour, nil)
		at := f.now.Add(time.Minute)
		u, err := f.db.VerifyEmail(ctx, verify, at, nil)
		if err != nil || u.ID != alice.ID || u.EmailVerifiedAt == nil || !u.EmailVerifiedAt.Equal(at) || u.Email != alice.Email {
			t.Fatalf("VerifyEmail = %+v, %v", u, err)
		}
		if _, err := f.db.VerifyEmail(ctx, verify, at, nil); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("second use: %v, want ErrConflict", err)
		}
		// A second verification token keeps the first verification time.
		again, _ := f.token(alice.ID, models.PurposeVerifyEmail, time.Hour, nil)
		if u, err := f.db.VerifyEmail(ctx, again, at.Add(time.Minute), nil); err != nil || !u.EmailVerifiedAt.Equal(at) {
			t.Fatalf("re-verification: %+v, %v", u, err)
		}
		expired, _ := f.token(alice.ID, models.PurposeVerifyEmail, time.Hour, nil)
		if _, err := f.db.VerifyEmail(ctx, expired, expired.ExpiresAt, nil); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("expired token: %v, want ErrConflict", err)
		}
		reset, _ := f.token(alice.ID, models.PurposePasswordReset, time.Hour, nil)
		if _, err := f.db.VerifyEmail(ctx, reset, at, nil); err == nil {
			t.Fatal("a reset token verified the address")
		}

		// Change to bob's address: taken, and nothing is written.
		mails := len(f.outbox())
		taken, _ := f.token(alice.ID, models.PurposeChangeEmail, time.Hour, new("bob@example.com"))
		mails++
		notice := &auth.Mail{Kind: auth.KindEmailChanged, To: alice.Email, Data: map[string]string{"new_email": "bob@example.com"}}
		if _, err := f.db.VerifyEmail(ctx, taken, at, notice); !errors.Is(err, auth.ErrEmailTaken) {
			t.Fatalf("change to a taken address: %v, want ErrEmailTaken", err)
		}
		if got, _ := f.db.EmailTokenByHash(ctx, taken.TokenHash); got.UsedAt != nil {
			t.Fatal("EMAIL_TAKEN used the token")
		}
		if u := f.user(alice.ID); u.Email != alice.Email {
			t.Fatalf("EMAIL_TAKEN changed the address to %s", u.Email)
		}
		if n := len(f.outbox()); n != mails {
			t.Fatalf("EMAIL_TAKEN queued mail: %d messages, want %d", n, mails)
		}

		// Change to a free address.
		change, _ := f.token(alice.ID, models.PurposeChangeEmail, time.Hour, new("alice2@example.com"))
		notice.Data["new_email"] = "alice2@example.com"
		u, err = f.db.VerifyEmail(ctx, change, f.now.Add(2*time.Minute), notice)
		if err != nil || u.Email != "alice2@example.com" || !u.EmailVerifiedAt.Equal(f.now.Add(2*time.Minute)) {
			t.Fatalf("change: %+v, %v", u, err)
		}
		var notices []models.OutboxMail
		if err := f.db.Gorm().Where("kind = ?", auth.KindEmailChanged).Find(&notices).Error; err != nil {
			t.Fatal(err)
		}
		if n := len(f.outbox()); n != mails+2 || len(notices) != 1 || notices[0].To != alice.Email || !strings.Contains(notices[0].Data, "alice2@example.com") {
			t.Fatalf("notice: %d messages, %+v", n, notices)
		}
		if _, err := f.db.UserByEmail(ctx, "alice2@example.com"); err != nil {
			t.Fatal(err)
		}
		// The old address is free again.
		if _, err := f.db.UserByEmail(ctx, alice.Email); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("old address: %v", err)
		}
	})
}

// No column holds a raw token: tokens are stored as hashes, and a mail's link leaves the outbox when
// the mail is sent or given up. The whole database is searched for the raw tokens and their bytes.
func TestNoRawTokenAtRest(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		f := newMailFixture(t, dsn)
		ctx := context.Background()
		alice := seed(t, f.db, "alice", f.now).user
		_, rawReset := f.token(alice.ID, models.PurposePasswordReset, time.Hour, nil)
		_, rawVerify := f.token(alice.ID, models.PurposeVerifyEmail, time.Hour, nil)
		// A reset for an unknown address, dropped.
		f.enqueue(auth.KindResetRequest, "nobody@example.com", f.now, map[string]string{"email": "nobody@example.com"})

		// No table has a token column but the hashes.
		tables, err := f.db.Gorm().Migrator().GetTables()
		if err != nil {
			t.Fatal(err)
		}
		for _, table := range tables {
			cols, err := f.db.Gorm().Migrator().ColumnTypes(table)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cols {
				if strings.Contains(c.Name(), "token") && c.Name() != "token_hash" {
					t.Fatalf("%s has a column %s", table, c.Name())
				}
			}
		}

		if !dumpContains(t, f.db, rawReset) {
			t.Fatal("the queued mail's link is missing (the search would find nothing)")
		}
		list := f.claim(f.now, time.Minute, 10)
		if len(list) != 3 {
			t.Fatalf("claimed %d", len(list))
		}
		for i, m := range list {
			var err error
			switch i {
			case 0:
				err = f.db.MailSent(ctx, m.ID, f.now)
			case 1:
				err = f.db.MailDone(ctx, m.ID, models.MailFailed, f.now, "gave up")
			default:
				err = f.db.MailDone(ctx, m.ID, models.MailDropped, f.now, "")
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, raw := range []string{rawReset, rawVerify} {
			if dumpContains(t, f.db, raw) {
				t.Fatalf("raw token %s… found in the database", raw[:6])
			}
		}
		if n := count(t, f.db, &models.OutboxMail{}, "data <> ''"); n != 0 {
			t.Fatalf("%d finished messages keep data", n)
		}
	})
}

// dumpContains reports whether any value of any table (text, or bytes as they are and as base64url)
// contains raw.
func dumpContains(t *testing.T, db *store.DB, raw string) bool {
	t.Helper()
	tables, err := db.Gorm().Migrator().GetTables()
	if err != nil {
		t.Fatal(err)
	}
	decoded, _ := base64.RawURLEncoding.DecodeString(raw)
	for _, table := range tables {
		var rows []map[string]any
		if err := db.Gorm().Table(table).Find(&rows).Error; err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		for _, row := range rows {
			for _, v := range row {
				var b []byte
				switch v := v.(type) {
				case string:
					b = []byte(v)
				case []byte:
					b = v
				default:
					continue
				}
				if bytes.Contains(b, []byte(raw)) || (len(decoded) > 0 && bytes.Contains(b, decoded)) {
					return true
				}
			}
		}
	}
	return false
}

// The janitor deletes e-mail tokens that expired or were used before the retention, and messages
// that finished before it; it keeps the rest, pending messages above all.
func TestPurgeMail(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		f := newMailFixture(t, dsn)
		ctx := context.Background()
		alice := seed(t, f.db, "alice", f.now).user
		before := f.now.Add(-time.Hour)
		g := f.db.Gorm()
		mk := func(id string, expires time.Duration, used *time.Duration) {
			_, hash := rawToken(t)
			tok := &models.EmailToken{ID: id, UserID: alice.ID, Purpose: models.PurposeVerifyEmail, TokenHash: hash,
				CreatedAt: f.now.Add(-48 * time.Hour), ExpiresAt: f.now.Add(expires)}
			if used != nil {
				at := f.now.Add(*used)
				tok.UsedAt = &at
			}
			if err := g.Omit("User").Create(tok).Error; err != nil {
				t.Fatal(err)
			}
		}
		mk("t-live", time.Hour, nil)
		mk("t-used-recently", time.Hour, dur(-time.Minute))
		mk("t-expired-recently", -time.Minute, nil)
		mk("t-expired", -2*time.Hour, nil)
		mk("t-used", time.Hour, dur(-2*time.Hour))

		msg := func(id string, status models.MailStatus, at time.Duration) {
			row := &models.OutboxMail{ID: id, Kind: auth.KindPasswordChanged, To: "a@example.com", Status: status,
				NextAttemptAt: f.now.Add(at), CreatedAt: f.now.Add(-48 * time.Hour)}
			if err := g.Create(row).Error; err != nil {
				t.Fatal(err)
			}
		}
		msg("m-pending-old", models.MailPending, -2*time.Hour)
		msg("m-sent-recently", models.MailSent, -time.Minute)
		msg("m-sent", models.MailSent, -2*time.Hour)
		msg("m-failed", models.MailFailed, -2*time.Hour)
		msg("m-dropped", models.MailDropped, -2*time.Hour)

		deleted, err := f.db.Purge(ctx, before, 2)
		if err != nil {
			t.Fatal(err)
		}
		if deleted != 5 {
			t.Fatalf("deleted %d, want 5", deleted)
		}
		var tokens, mails []string
		if err := g.Model(&models.EmailToken{}).Order("id").Pluck("id", &tokens).Error; err != nil {
			t.Fatal(err)
		}
		if err := g.Model(&models.OutboxMail{}).Order("id").Pluck("id", &mails).Error; err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(tokens, ","); got != "t-expired-recently,t-live,t-used-recently" {
			t.Fatalf("tokens left: %s", got)
		}
		if got := strings.Join(mails, ","); got != "m-pending-old,m-sent-recently" {
			t.Fatalf("messages left: %s", got)
		}
		if deleted, err := f.db.Purge(ctx, before, 2); err != nil || deleted != 0 {
			t.Fatalf("second purge: %d, %v", deleted, err)
		}
	})
}

// Requests racing with one reset token: exactly one resets the password.
func TestResetPasswordConcurrentSingleUse(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		f := newMailFixture(t, dsn)
		other := mustOpen(t, dsn)
		alice := seed(t, f.db, "alice", f.now).user
		for round := range 5 {
			tok, _ := f.token(alice.ID, models.PurposePasswordReset, time.Hour, nil)
			var wg sync.WaitGroup
			var errs [4]error
			for i := range errs {
				db := []*store.DB{f.db, other}[i%2]
				r := resetFor(f, tok, fmt.Sprintf("s-%d-%d", round, i), f.now)
				wg.Go(func() { _, _, errs[i] = db.ResetPassword(context.Background(), r) })
			}
			wg.Wait()
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
				t.Fatalf("round %d: %d resets succeeded, want 1", round, won)
			}
			if n := count(t, f.db, &models.Session{}, "id LIKE ? AND revoked_at IS NULL", fmt.Sprintf("s-%d-%%", round)); n != 1 {
				t.Fatalf("round %d: %d new live sessions, want 1", round, n)
			}
		}
	})
}

// PendingMail counts what waits in the outbox: pending messages, not sent or dropped ones.
func TestPendingMail(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		db := mustOpen(t, dsn)
		ctx := context.Background()
		now := time.Now()
		for range 3 {
			if err := db.EnqueueMail(ctx, auth.Mail{Kind: auth.KindPasswordChanged, To: "a@example.com"}, now); err != nil {
				t.Fatal(err)
			}
		}
		ms, err := db.ClaimMail(ctx, now, time.Minute, 1)
		if err != nil || len(ms) != 1 {
			t.Fatalf("claim: %v %v", ms, err)
		}
		if err := db.MailSent(ctx, ms[0].ID, now); err != nil {
			t.Fatal(err)
		}
		if n, err := db.PendingMail(ctx); err != nil || n != 2 {
			t.Fatalf("PendingMail = %d, %v; want 2", n, err)
		}
	})
}
