package auth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/auth/memstore"
	"gqlauth/internal/testdb"
	"gqlauth/models"
	"gqlauth/ratelimit"
)

// The rules of account recovery and e-mail verification (recovery.go), through auth.Service on every
// store that keeps both the accounts and the mail: the in-memory fake below, and store.DB on SQLite
// and Postgres. The mail sender is played by drain, which claims the outbox as the real sender does.

// mailBackend is a store of accounts and mail, as the service is wired in production (store.DB).
type mailBackend interface {
	auth.Store
	auth.MailStore
}

// forEachMailStore runs fn as a parallel subtest per backend, each fresh and empty.
func forEachMailStore(t *testing.T, fn func(t *testing.T, st mailBackend)) {
	t.Helper()
	for _, b := range []struct {
		name string
		open func(t *testing.T) mailBackend
	}{
		{"fake", func(*testing.T) mailBackend { return newFakeMail() }},
		{"sqlite", func(t *testing.T) mailBackend { return openStore(t, testdb.SQLite(t)) }},
		{"postgres", func(t *testing.T) mailBackend { return openStore(t, testdb.Postgres(t)) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b.open(t))
		})
	}
}

const (
	resetURL  = "https://app.example/reset-password?token={token}"
	verifyURL = "https://app.example/verify-email?token={token}"
	newPW     = "a brand new passphrase"
)

// recovery is a domain with a MailStore and the links above; kicks counts KickMail calls.
type recovery struct {
	*domain
	ms    mailBackend
	kicks atomic.Int64
}

func newRecovery(t *testing.T, st mailBackend, opts auth.Options) *recovery {
	t.Helper()
	r := &recovery{ms: st}
	opts.MailStore = st
	opts.PasswordResetURL, opts.EmailVerificationURL = resetURL, verifyURL
	opts.KickMail = func() { r.kicks.Add(1) }
	r.domain = newDomain(t, st, opts)
	return r
}

// drain plays the mail sender: it claims every due message, resolves reset requests (dropping those
// for unknown addresses), marks the rest sent and returns them, oldest first.
func (r *recovery) drain() []auth.Mail {
	r.t.Helper()
	claimed, err := r.ms.ClaimMail(r.ctx, r.clock.Now(), time.Minute, 1000)
	if err != nil {
		r.t.Fatalf("claim: %v", err)
	}
	var sent []auth.Mail
	for _, m := range claimed {
		if m.Kind == auth.KindResetRequest {
			resolved, ok, err := r.svc.ResolveResetRequest(r.ctx, m)
			if err != nil {
				r.t.Fatalf("resolve: %v", err)
			}
			if !ok {
				if err := r.ms.MailDone(r.ctx, m.ID, models.MailDropped, r.clock.Now(), ""); err != nil {
					r.t.Fatal(err)
				}
				continue
			}
			if resolved.ID != m.ID {
				r.t.Fatalf("resolved mail has id %q, want the request's %q", resolved.ID, m.ID)
			}
			m = resolved
		}
		if err := r.ms.MailSent(r.ctx, m.ID, r.clock.Now()); err != nil {
			r.t.Fatal(err)
		}
		sent = append(sent, m)
	}
	return sent
}

// one drains and fails unless exactly one mail of kind to went out; it returns it.
func (r *recovery) one(kind, to string) auth.Mail {
	r.t.Helper()
	sent := r.drain()
	if len(sent) != 1 || sent[0].Kind != kind || sent[0].To != to {
		r.t.Fatalf("sent %+v, want one %s mail to %s", sent, kind, to)
	}
	return sent[0]
}

// none drains and fails if any mail went out.
func (r *recovery) none() {
	r.t.Helper()
	if sent := r.drain(); len(sent) != 0 {
		r.t.Fatalf("sent %+v, want nothing", sent)
	}
}

// tokenOf returns the token of m's link, which must be made from the template tmpl.
func (r *recovery) tokenOf(m auth.Mail, tmpl string) string {
	r.t.Helper()
	u, err := url.Parse(m.Data["link"])
	base, _ := url.Parse(tmpl)
	if err != nil || u.Host != base.Host || u.Path != base.Path || u.Query().Get("token") == "" {
		r.t.Fatalf("link %q does not follow %q", m.Data["link"], tmpl)
	}
	return u.Query().Get("token")
}

// resetToken asks for a reset of email and returns the token mailed to to.
func (r *recovery) resetToken(email, to string) string {
	r.t.Helper()
	if err := r.svc.RequestPasswordReset(r.ctx, email, auth.Client{IP: "192.0.2.1"}); err != nil {
		r.t.Fatalf("requestPasswordReset: %v", err)
	}
	m := r.one(auth.KindPasswordReset, to)
	if m.Data["expires_in"] != "1 hour" {
		r.t.Fatalf("expires_in = %q", m.Data["expires_in"])
	}
	return r.tokenOf(m, resetURL)
}

// deleteAccount deletes the account of email as authctl does (on the fake: hides it).
func (r *recovery) deleteAccount(email string) {
	r.t.Helper()
	if fake, ok := r.ms.(*fakeMail); ok {
		fake.deleteUser(email)
		return
	}
	as, ok := r.ms.(auth.AdminStore)
	if !ok {
		r.t.Fatal("the store cannot delete accounts")
	}
	admin := auth.NewAdmin(as, auth.AdminOptions{Password: cheapParams, Now: r.clock.Now, Logger: slog.New(slog.DiscardHandler)})
	u, err := admin.UserByEmail(r.ctx, email)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := admin.DeleteUser(r.ctx, u.ID); err != nil {
		r.t.Fatal(err)
	}
}

func (r *recovery) user(id string) *models.User {
	r.t.Helper()
	u, err := r.svc.User(r.ctx, id)
	if err != nil || u == nil {
		r.t.Fatalf("user %s: %v", id, err)
	}
	return u
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

func TestPasswordReset(t *testing.T) {
	t.Parallel()
	forEachMailStore(t, func(t *testing.T, st mailBackend) {
		r := newRecovery(t, st, auth.Options{})
		p1 := r.register("ann@example.com")
		r.one(auth.KindVerifyEmail, "ann@example.com")
		p2 := r.login("ann@example.com", pw)
		if r.user(p1.User.ID).EmailVerifiedAt != nil {
			t.Fatal("verified before anything was followed")
		}

		// Any spelling of the address reaches the account; the mail goes to the stored address.
		tok := r.resetToken("  ANN@example.COM ", "ann@example.com")
		kicks := r.kicks.Load()
		got, err := r.svc.ResetPassword(r.ctx, tok, newPW, auth.Client{IP: "192.0.2.9", UserAgent: "ua"})
		if err != nil {
			t.Fatalf("resetPassword: %v", err)
		}
		if r.kicks.Load() == kicks {
			t.Error("the notice did not wake the sender")
		}
		// Every earlier session is revoked, at once; the fresh one works.
		r.wantRevoked(p1)
		r.wantRevoked(p2)
		r.wantAuth(r.svc, got, nil)
		r.refresh(got.RefreshToken)
		if got.User.EmailVerifiedAt == nil || r.user(got.User.ID).EmailVerifiedAt == nil {
			t.Error("the address does not count as verified after a reset")
		}
		// The new password works, the old one not.
		r.login("ann@example.com", newPW)
		_, err = r.svc.Login(r.ctx, "ann@example.com", pw, auth.Client{})
		wantErr(t, err, auth.ErrInvalidCredentials)
		notice := r.one(auth.KindPasswordChanged, "ann@example.com")
		if len(notice.Data) != 0 {
			t.Errorf("notice data %v, want none", notice.Data)
		}
		// Single use.
		_, err = r.svc.ResetPassword(r.ctx, tok, "yet another passphrase", auth.Client{})
		wantErr(t, err, auth.ErrInvalidEmailToken)
		r.login("ann@example.com", newPW)
	})
}

// An unknown address answers as a known one does, and nothing is mailed.
func TestPasswordResetUnknownAddress(t *testing.T) {
	t.Parallel()
	forEachMailStore(t, func(t *testing.T, st mailBackend) {
		r := newRecovery(t, st, auth.Options{})
		r.register("ann@example.com")
		r.drain()
		fake, _ := st.(*fakeMail)
		for _, email := range []string{"nobody@example.com", "ann@example.com"} {
			before := fake.reads()
			if err := r.svc.RequestPasswordReset(r.ctx, email, auth.Client{}); err != nil {
				t.Fatalf("%s: %v", email, err)
			}
			// The request path reads no account: its latency cannot depend on whether one exists.
			if fake != nil && fake.reads() != before {
				t.Fatalf("%s: the request looked accounts up", email)
			}
		}
		sent := r.drain()
		if len(sent) != 1 || sent[0].To != "ann@example.com" || sent[0].Kind != auth.KindPasswordReset {
			t.Fatalf("sent %+v, want the reset of ann only", sent)
		}
		// A deleted account is unknown.
		r.deleteAccount("ann@example.com")
		if err := r.svc.RequestPasswordReset(r.ctx, "ann@example.com", auth.Client{}); err != nil {
			t.Fatal(err)
		}
		r.none()
	})
}

func TestPasswordResetTokens(t *testing.T) {
	t.Parallel()
	forEachMailStore(t, func(t *testing.T, st mailBackend) {
		r := newRecovery(t, st, auth.Options{})
		p := r.register("bob@example.com")
		verify := r.tokenOf(r.one(auth.KindVerifyEmail, "bob@example.com"), verifyURL)

		for _, tok := range []string{"", "garbage", verify[:len(verify)-1] + "A", verify + "="} {
			_, err := r.svc.ResetPassword(r.ctx, tok, newPW, auth.Client{})
			wantErr(t, err, auth.ErrInvalidEmailToken)
		}
		// Purpose-bound: a verification token resets nothing, a reset token verifies nothing.
		_, err := r.svc.ResetPassword(r.ctx, verify, newPW, auth.Client{})
		wantErr(t, err, auth.ErrInvalidEmailToken)
		reset := r.resetToken("bob@example.com", "bob@example.com")
		_, err = r.svc.VerifyEmail(r.ctx, reset)
		wantErr(t, err, auth.ErrInvalidEmailToken)

		// A weak new password is refused before the token is looked at, which stays usable.
		_, err = r.svc.ResetPassword(r.ctx, reset, "short", auth.Client{})
		wantValidation(t, err, "newPassword")
		r.wantAuth(r.svc, p, nil)

		// Only the newest token works, whether the older one was mailed before or after.
		newer := r.resetToken("bob@example.com", "bob@example.com")
		_, err = r.svc.ResetPassword(r.ctx, reset, newPW, auth.Client{})
		wantErr(t, err, auth.ErrInvalidEmailToken)
		for range 2 {
			if err := r.svc.RequestPasswordReset(r.ctx, "bob@example.com", auth.Client{}); err != nil {
				t.Fatal(err)
			}
		}
		sent := r.drain()
		if len(sent) != 2 {
			t.Fatalf("sent %d mails, want 2", len(sent))
		}
		_, err = r.svc.ResetPassword(r.ctx, newer, newPW, auth.Client{})
		wantErr(t, err, auth.ErrInvalidEmailToken)
		_, err = r.svc.ResetPassword(r.ctx, r.tokenOf(sent[0], resetURL), newPW, auth.Client{})
		wantErr(t, err, auth.ErrInvalidEmailToken)

		// Expiry: a token works until its hour is over.
		last := r.tokenOf(sent[1], resetURL)
		r.clock.Advance(time.Hour)
		_, err = r.svc.ResetPassword(r.ctx, last, newPW, auth.Client{})
		wantErr(t, err, auth.ErrInvalidEmailToken)
		r.refresh(p.RefreshToken) // nothing was revoked
		ok := r.resetToken("bob@example.com", "bob@example.com")
		r.clock.Advance(time.Hour - time.Second)
		if _, err := r.svc.ResetPassword(r.ctx, ok, newPW, auth.Client{}); err != nil {
			t.Fatalf("a token one second before its expiry: %v", err)
		}
	})
}

// Two submissions of one reset token at once: exactly one succeeds.
func TestPasswordResetConcurrentUse(t *testing.T) {
	t.Parallel()
	forEachMailStore(t, func(t *testing.T, st mailBackend) {
		r := newRecovery(t, st, auth.Options{})
		r.register("cy@example.com")
		r.drain()
		tok := r.resetToken("cy@example.com", "cy@example.com")
		var wg sync.WaitGroup
		var okCount, invalid atomic.Int64
		for range 4 {
			wg.Go(func() {
				_, err := r.svc.ResetPassword(context.Background(), tok, newPW, auth.Client{})
				switch {
				case err == nil:
					okCount.Add(1)
				case errors.Is(err, auth.ErrInvalidEmailToken):
					invalid.Add(1)
				default:
					t.Errorf("resetPassword: %v", err)
				}
			})
		}
		wg.Wait()
		if okCount.Load() != 1 || invalid.Load() != 3 {
			t.Fatalf("%d succeeded and %d were refused, want 1 and 3", okCount.Load(), invalid.Load())
		}
	})
}

func TestRequestPasswordResetValidationAndLimits(t *testing.T) {
	t.Parallel()
	forEachMailStore(t, func(t *testing.T, st mailBackend) {
		r := newRecovery(t, st, auth.Options{})
		for _, bad := range []string{"", "not an address", "a@b", "x\u200b@example.com"} {
			wantValidation(t, r.svc.RequestPasswordReset(r.ctx, bad, auth.Client{}), "email")
		}
		r.none()

		rr := newRecovery(t, st, auth.Options{
			Limiter:        ratelimit.NewMemory(r.clock.Now),
			ResetEmailRate: ratelimit.Rate{Limit: 2, Window: time.Hour},
			ResetIPRate:    ratelimit.Rate{Limit: 5, Window: time.Hour},
		})
		rr.register("dee@example.com")
		rr.drain()
		// Per address: a known and an unknown address get the same answers.
		for _, email := range []string{"dee@example.com", "ghost@example.com"} {
			var got []bool
			for i := range 3 {
				err := rr.svc.RequestPasswordReset(rr.ctx, email, auth.Client{IP: "198.51.100." + string(rune('1'+i))})
				if err != nil && !errors.Is(err, auth.ErrRateLimited) {
					t.Fatal(err)
				}
				got = append(got, err == nil)
			}
			if !slices.Equal(got, []bool{true, true, false}) {
				t.Fatalf("%s: allowed %v, want the third refused", email, got)
			}
		}
		// Per client address, across e-mail addresses.
		var got []bool
		for _, email := range []string{"a1@example.com", "a2@example.com", "a3@example.com", "a4@example.com", "a5@example.com", "dee@example.com"} {
			err := rr.svc.RequestPasswordReset(rr.ctx, email, auth.Client{IP: "203.0.113.7"})
			got = append(got, err == nil)
		}
		if !slices.Equal(got, []bool{true, true, true, true, true, false}) {
			t.Fatalf("allowed %v, want the sixth refused", got)
		}
	})
}

func TestEmailVerification(t *testing.T) {
	t.Parallel()
	forEachMailStore(t, func(t *testing.T, st mailBackend) {
		r := newRecovery(t, st, auth.Options{EmailVerificationTTL: 30 * time.Minute})
		p := r.register("eve@example.com")
		first := r.one(auth.KindVerifyEmail, "eve@example.com")
		if first.Data["expires_in"] != "30 minutes" {
			t.Fatalf("expires_in = %q", first.Data["expires_in"])
		}
		// Another link on request; both work until one is used (verification links are not superseded).
		ok, err := r.svc.RequestEmailVerification(r.ctx, r.principal(p))
		if err != nil || !ok {
			t.Fatalf("requestEmailVerification: %v, %v", ok, err)
		}
		second := r.one(auth.KindVerifyEmail, "eve@example.com")
		u, err := r.svc.VerifyEmail(r.ctx, r.tokenOf(second, verifyURL))
		if err != nil {
			t.Fatalf("verifyEmail: %v", err)
		}
		if u.EmailVerifiedAt == nil || u.Email != "eve@example.com" || r.user(p.User.ID).EmailVerifiedAt == nil {
			t.Fatalf("user after verifyEmail: %+v", u)
		}
		me, err := r.svc.Me(r.ctx, r.principal(p))
		if err != nil || me.EmailVerifiedAt == nil {
			t.Fatalf("me after verifyEmail: %+v, %v (a stale cache entry?)", me, err)
		}
		_, err = r.svc.VerifyEmail(r.ctx, r.tokenOf(second, verifyURL))
		wantErr(t, err, auth.ErrInvalidEmailToken)
		// Verified: true, and nothing is sent.
		ok, err = r.svc.RequestEmailVerification(r.ctx, r.principal(p))
		if err != nil || !ok {
			t.Fatalf("requestEmailVerification: %v, %v", ok, err)
		}
		r.none()
		// The first link has expired meanwhile? Not yet; after its 30 minutes it has.
		r.clock.Advance(30 * time.Minute)
		_, err = r.svc.VerifyEmail(r.ctx, r.tokenOf(first, verifyURL))
		wantErr(t, err, auth.ErrInvalidEmailToken)
	})
}

func TestRequireEmailVerification(t *testing.T) {
	t.Parallel()
	forEachMailStore(t, func(t *testing.T, st mailBackend) {
		r := newRecovery(t, st, auth.Options{
			RequireEmailVerification: true,
			Limiter:                  ratelimit.NewMemory(nil),
			LoginRate:                ratelimit.Rate{Limit: 3, Window: time.Hour},
		})
		r.register("fay@example.com")
		link := r.tokenOf(r.one(auth.KindVerifyEmail, "fay@example.com"), verifyURL)
		_, err := r.svc.Login(r.ctx, "fay@example.com", "wrong password", auth.Client{})
		wantErr(t, err, auth.ErrInvalidCredentials)
		_, err = r.svc.Login(r.ctx, "nobody@example.com", pw, auth.Client{})
		wantErr(t, err, auth.ErrInvalidCredentials)
		// The right password, many times: EMAIL_NOT_VERIFIED, never counted as a failure.
		for range 5 {
			_, err = r.svc.Login(r.ctx, "fay@example.com", pw, auth.Client{})
			wantErr(t, err, auth.ErrEmailNotVerified)
		}
		if _, err := r.svc.VerifyEmail(r.ctx, link); err != nil {
			t.Fatal(err)
		}
		r.login("fay@example.com", pw)
	})
}

func TestChangeEmail(t *testing.T) {
	t.Parallel()
	forEachMailStore(t, func(t *testing.T, st mailBackend) {
		r := newRecovery(t, st, auth.Options{})
		p := r.register("gus@example.com")
		r.register("taken@example.com")
		r.drain()
		pr := r.principal(p)
		change := func(email, password string) error {
			_, err := r.svc.ChangeEmail(r.ctx, pr, email, password, auth.Client{})
			return err
		}
		wantValidation(t, change("not an address", pw), "newEmail")
		wantValidation(t, change(" GUS@example.com", pw), "newEmail")
		wantErr(t, change("new@example.com", "wrong password"), auth.ErrInvalidCredentials)
		wantErr(t, change("Taken@example.com", pw), auth.ErrEmailTaken)
		r.none()

		if err := change("New@Example.com", pw); err != nil {
			t.Fatalf("changeEmail: %v", err)
		}
		m := r.one(auth.KindChangeEmail, "new@example.com")
		if m.Data["new_email"] != "new@example.com" || m.Data["expires_in"] != "24 hours" {
			t.Fatalf("mail data %v", m.Data)
		}
		tok := r.tokenOf(m, verifyURL)
		// Nothing changes until the link is followed.
		if r.user(p.User.ID).Email != "gus@example.com" {
			t.Fatal("the address changed before the link was followed")
		}
		// A change-email token is not a reset token.
		_, err := r.svc.ResetPassword(r.ctx, tok, newPW, auth.Client{})
		wantErr(t, err, auth.ErrInvalidEmailToken)
		u, err := r.svc.VerifyEmail(r.ctx, tok)
		if err != nil {
			t.Fatalf("verifyEmail: %v", err)
		}
		if u.Email != "new@example.com" || u.EmailVerifiedAt == nil {
			t.Fatalf("user after the change: %+v", u)
		}
		notice := r.one(auth.KindEmailChanged, "gus@example.com")
		if notice.Data["new_email"] != "new@example.com" {
			t.Fatalf("notice data %v", notice.Data)
		}
		r.login("new@example.com", pw)
		_, err = r.svc.Login(r.ctx, "gus@example.com", pw, auth.Client{})
		wantErr(t, err, auth.ErrInvalidCredentials)
		_, err = r.svc.VerifyEmail(r.ctx, tok)
		wantErr(t, err, auth.ErrInvalidEmailToken)

		// Another account takes the address between the request and the link: EMAIL_TAKEN, and the
		// token is not spent.
		if err := change("later@example.com", pw); err != nil {
			t.Fatal(err)
		}
		tok = r.tokenOf(r.one(auth.KindChangeEmail, "later@example.com"), verifyURL)
		r.register("later@example.com")
		r.drain()
		_, err = r.svc.VerifyEmail(r.ctx, tok)
		wantErr(t, err, auth.ErrEmailTaken)
		if r.user(p.User.ID).Email != "new@example.com" {
			t.Fatal("the address changed although it was taken")
		}
	})
}

// changePassword mails the same notice as a reset.
func TestChangePasswordNotice(t *testing.T) {
	t.Parallel()
	forEachMailStore(t, func(t *testing.T, st mailBackend) {
		r := newRecovery(t, st, auth.Options{})
		p := r.register("hal@example.com")
		r.drain()
		if _, err := r.svc.ChangePassword(r.ctx, r.principal(p), pw, newPW, auth.Client{}); err != nil {
			t.Fatal(err)
		}
		r.one(auth.KindPasswordChanged, "hal@example.com")
		_, err := r.svc.ChangePassword(r.ctx, r.principal(p), "wrong password", pw, auth.Client{})
		wantErr(t, err, auth.ErrInvalidCredentials)
		r.none()
	})
}

// Without a MailStore the new operations fail (an internal error, not one of the public kinds), and
// register and changePassword work as before, sending nothing.
func TestNoMailStore(t *testing.T) {
	t.Parallel()
	d := newDomain(t, memstore.New(), auth.Options{})
	p := d.register("ida@example.com")
	if _, err := d.svc.ChangePassword(d.ctx, d.principal(p), pw, newPW, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	errs := []error{d.svc.RequestPasswordReset(d.ctx, "ida@example.com", auth.Client{})}
	wellFormed := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" // the shape of a token: it reaches the store
	_, err := d.svc.ResetPassword(d.ctx, wellFormed, newPW, auth.Client{})
	errs = append(errs, err)
	_, err = d.svc.RequestEmailVerification(d.ctx, d.principal(p))
	errs = append(errs, err)
	_, err = d.svc.VerifyEmail(d.ctx, wellFormed)
	errs = append(errs, err)
	_, err = d.svc.ChangeEmail(d.ctx, d.principal(p), "new@example.com", newPW, auth.Client{})
	errs = append(errs, err)
	_, _, err = d.svc.ResolveResetRequest(d.ctx, auth.Mail{Kind: auth.KindResetRequest, To: "ida@example.com"})
	errs = append(errs, err)
	for i, err := range errs {
		if err == nil || errors.Is(err, auth.ErrInvalidEmailToken) || errors.Is(err, auth.ErrUnavailable) {
			t.Errorf("operation %d: err = %v, want an internal error", i, err)
		}
	}
}

// fakeMail is an in-memory auth.MailStore over memstore's accounts, for the rules alone: the
// account changes that the SQL store makes in one transaction with the token (verified flag, a new
// address) are kept in overlays here, under one mutex. Unlike store.DB it keeps the credentials
// version of a reset password as it was, and the address an account moved away from stays taken.
type fakeMail struct {
	*memstore.Store

	mu       sync.Mutex
	verified map[string]time.Time // user id → when its address was verified
	moved    map[string]string    // user id → the address it moved to
	byEmail  map[string]string    // moved-to address → user id
	tokens   map[string]*models.EmailToken
	outbox   []*fakeMsg
	lastID   int
	lookups  atomic.Int64 // account reads, to show which paths read none
}

type fakeMsg struct {
	m      auth.Mail
	status models.MailStatus
	next   time.Time
	lease  time.Time
}

var _ mailBackend = (*fakeMail)(nil)

func newFakeMail() *fakeMail {
	return &fakeMail{
		Store: memstore.New(), verified: map[string]time.Time{}, moved: map[string]string{},
		byEmail: map[string]string{}, tokens: map[string]*models.EmailToken{},
	}
}

// reads returns how many account reads there were; nil-safe so tests of other backends skip it.
func (f *fakeMail) reads() int64 {
	if f == nil {
		return 0
	}
	return f.lookups.Load()
}

// deleteUser hides the account of email as if deleted: memstore has no deletion, so the account
// moves to an address nobody asks for.
func (f *fakeMail) deleteUser(email string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, err := f.userByEmailLocked(context.Background(), email)
	if err != nil {
		panic(err)
	}
	f.moved[u.ID] = "deleted-" + u.ID + "@invalid"
	f.byEmail[f.moved[u.ID]] = u.ID
}

func (f *fakeMail) overlay(u *models.User) *models.User {
	if at, ok := f.verified[u.ID]; ok {
		u.EmailVerifiedAt = &at
	}
	if e, ok := f.moved[u.ID]; ok {
		u.Email = e
	}
	return u
}

// CreateUser refuses an address an account moved to.
func (f *fakeMail) CreateUser(ctx context.Context, u *models.User, s *models.Session, t *models.RefreshToken) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, taken := f.byEmail[u.Email]; taken {
		return auth.ErrEmailTaken
	}
	return f.Store.CreateUser(ctx, u, s, t)
}

// UserByEmail finds accounts by their current address.
func (f *fakeMail) UserByEmail(ctx context.Context, email string) (*models.User, error) {
	f.lookups.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.userByEmailLocked(ctx, email)
}

func (f *fakeMail) userByEmailLocked(ctx context.Context, email string) (*models.User, error) {
	if id, ok := f.byEmail[email]; ok {
		u, err := f.Store.UserByID(ctx, id)
		if err != nil {
			return nil, err
		}
		return f.overlay(u), nil
	}
	u, err := f.Store.UserByEmail(ctx, email)
	if err != nil {
		return nil, err
	}
	if _, gone := f.moved[u.ID]; gone {
		return nil, auth.ErrNotFound
	}
	return f.overlay(u), nil
}

// UserByID applies the overlays.
func (f *fakeMail) UserByID(ctx context.Context, id string) (*models.User, error) {
	f.lookups.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	u, err := f.Store.UserByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return f.overlay(u), nil
}

// RefreshTokenByHash applies the overlays to the token's user.
func (f *fakeMail) RefreshTokenByHash(ctx context.Context, hash []byte) (*models.RefreshToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, err := f.Store.RefreshTokenByHash(ctx, hash)
	if err == nil && t.User != nil {
		f.overlay(t.User)
	}
	return t, err
}

func (f *fakeMail) enqueueLocked(m auth.Mail, at time.Time) string {
	f.lastID++
	m.ID = fmt.Sprintf("mail-%d", f.lastID)
	m.Data = cloneData(m.Data)
	f.outbox = append(f.outbox, &fakeMsg{m: m, status: models.MailPending, next: at})
	return m.ID
}

func cloneData(d map[string]string) map[string]string {
	if d == nil {
		return nil
	}
	c := make(map[string]string, len(d))
	for k, v := range d {
		c[k] = v
	}
	return c
}

// EnqueueMail implements auth.MailStore.
func (f *fakeMail) EnqueueMail(_ context.Context, m auth.Mail, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.enqueueLocked(m, at)
	return nil
}

// CreateEmailToken implements auth.MailStore.
func (f *fakeMail) CreateEmailToken(_ context.Context, t *models.EmailToken, m auth.Mail, replace string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range f.tokens {
		if bytes.Equal(o.TokenHash, t.TokenHash) {
			return errors.New("fake: duplicate token hash")
		}
	}
	var target *fakeMsg
	if replace != "" {
		for _, msg := range f.outbox {
			if msg.m.ID == replace {
				target = msg
			}
		}
		if target == nil {
			return auth.ErrNotFound
		}
	}
	if t.Purpose == models.PurposePasswordReset {
		for _, o := range f.tokens {
			if o.UserID == t.UserID && o.Purpose == t.Purpose && o.UsedAt == nil {
				at := t.CreatedAt
				o.UsedAt = &at
			}
		}
	}
	c := *t
	f.tokens[t.ID] = &c
	if target != nil {
		m.ID, m.Data = replace, cloneData(m.Data)
		target.m = m
		return nil
	}
	f.enqueueLocked(m, t.CreatedAt)
	return nil
}

// EmailTokenByHash implements auth.MailStore.
func (f *fakeMail) EmailTokenByHash(_ context.Context, hash []byte) (*models.EmailToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.tokens {
		if bytes.Equal(t.TokenHash, hash) {
			c := *t
			return &c, nil
		}
	}
	return nil, auth.ErrNotFound
}

// ResetPassword implements auth.MailStore.
func (f *fakeMail) ResetPassword(ctx context.Context, r auth.PasswordReset) ([]string, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tokens[r.TokenID]
	if t == nil || t.UsedAt != nil {
		return nil, time.Time{}, auth.ErrConflict
	}
	u, err := f.Store.UserByID(ctx, r.UserID)
	if err != nil {
		return nil, time.Time{}, auth.ErrConflict
	}
	if err := f.SetPasswordHash(ctx, u.ID, u.PasswordHash, r.NewHash, r.At); err != nil {
		return nil, time.Time{}, err
	}
	at := r.At
	t.UsedAt = &at
	if _, ok := f.verified[u.ID]; !ok {
		f.verified[u.ID] = at
	}
	clock := func() time.Time { return at }
	ids, revokedAt, err := f.RevokeSessions(ctx, auth.SessionFilter{UserID: u.ID}, clock)
	if err != nil {
		return nil, time.Time{}, err
	}
	if r.Session != nil {
		if _, _, err := f.CreateSession(ctx, r.Session, r.Token, auth.SessionCheck{CredentialsVersion: u.CredentialsVersion, Now: clock}); err != nil {
			return nil, time.Time{}, err
		}
	}
	if r.Challenge != nil {
		r.Challenge.CredentialsVersion = u.CredentialsVersion // the fake keeps the version (SetPasswordHash)
		if err := f.CreateChallenge(ctx, r.Challenge); err != nil {
			return nil, time.Time{}, err
		}
	}
	f.enqueueLocked(r.Notice, at)
	return ids, revokedAt, nil
}

// VerifyEmail implements auth.MailStore.
func (f *fakeMail) VerifyEmail(ctx context.Context, t *models.EmailToken, at time.Time, notice *auth.Mail) (*models.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	stored := f.tokens[t.ID]
	if stored == nil || stored.UsedAt != nil {
		return nil, auth.ErrConflict
	}
	u, err := f.Store.UserByID(ctx, t.UserID)
	if err != nil {
		return nil, auth.ErrConflict
	}
	if t.Purpose == models.PurposeChangeEmail {
		to := *t.NewEmail
		if other, err := f.userByEmailLocked(ctx, to); err == nil && other.ID != u.ID {
			return nil, auth.ErrEmailTaken
		}
		if prev, ok := f.moved[u.ID]; ok {
			delete(f.byEmail, prev)
		}
		f.moved[u.ID], f.byEmail[to] = to, u.ID
		if notice != nil {
			f.enqueueLocked(*notice, at)
		}
	}
	stored.UsedAt = &at
	if _, ok := f.verified[u.ID]; !ok {
		f.verified[u.ID] = at
	}
	return f.overlay(u), nil
}

// ClaimMail implements auth.MailStore.
func (f *fakeMail) ClaimMail(_ context.Context, now time.Time, lease time.Duration, n int) ([]auth.Mail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []auth.Mail
	for _, msg := range f.outbox {
		if len(out) == n {
			break
		}
		if msg.status != models.MailPending || msg.next.After(now) || msg.lease.After(now) {
			continue
		}
		msg.lease = now.Add(lease)
		m := msg.m
		m.Data = cloneData(m.Data)
		out = append(out, m)
	}
	return out, nil
}

func (f *fakeMail) msg(id string) (*fakeMsg, error) {
	for _, msg := range f.outbox {
		if msg.m.ID == id {
			return msg, nil
		}
	}
	return nil, auth.ErrNotFound
}

// MailSent implements auth.MailStore.
func (f *fakeMail) MailSent(_ context.Context, id string, _ time.Time) error {
	return f.MailDone(context.Background(), id, models.MailSent, time.Time{}, "")
}

// MailRetry implements auth.MailStore.
func (f *fakeMail) MailRetry(_ context.Context, id string, next time.Time, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	msg, err := f.msg(id)
	if err != nil {
		return err
	}
	msg.m.Attempts++
	msg.next, msg.lease = next, time.Time{}
	return nil
}

// MailDone implements auth.MailStore.
func (f *fakeMail) MailDone(_ context.Context, id string, status models.MailStatus, _ time.Time, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	msg, err := f.msg(id)
	if err != nil {
		return err
	}
	msg.status, msg.m.Data = status, nil
	return nil
}
