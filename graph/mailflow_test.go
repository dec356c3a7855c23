package graph_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"gqlauth/internal/apptest"
	"gqlauth/internal/mailpit"
	"gqlauth/internal/tcpproxy"
	"gqlauth/internal/testdb"
)

// Account recovery and e-mail verification, end to end: through the real handler and the real mail
// sender, delivered by a real SMTP server (Mailpit) and read back through its API.

const (
	mfRequestResetQ = `mutation($e: String!) { requestPasswordReset(email: $e) }`
	mfResetQ        = `mutation($i: ResetPasswordInput!) { resetPassword(input: $i) { ` + apptest.PayloadFields + ` } }`
	mfVerifyQ       = `mutation($t: String!) { verifyEmail(token: $t) { id email emailVerified } }`
	mfRequestVerifQ = `mutation { requestEmailVerification }`
	mfChangeEmailQ  = `mutation($i: ChangeEmailInput!) { changeEmail(input: $i) }`
	mfVerifiedQ     = `{ me { email emailVerified } }`
	mailWait        = 10 * time.Second
)

// mailEnv starts a server on dsn that sends its mail to the test Mailpit; vars override.
func mailEnv(t *testing.T, dsn string, vars map[string]string, realTime bool) (*apptest.Env, *mailpit.Client) {
	t.Helper()
	smtpURL, apiURL := testdb.Mailpit(t)
	all := map[string]string{"SMTP_URL": smtpURL, "MAIL_FROM": "gqlauth tests <no-reply@example.com>"}
	for k, v := range vars {
		all[k] = v
	}
	return apptest.New(t, dsn, apptest.Options{Vars: all, RealTime: realTime}), mailpit.New(apiURL)
}

var linkToken = regexp.MustCompile(`[?&]token=([^\s&"<>]+)`)

// tokenIn returns the token of the link in a mail's text part.
func tokenIn(t *testing.T, m *mailpit.Message) string {
	t.Helper()
	sub := linkToken.FindStringSubmatch(m.Text)
	if sub == nil {
		t.Fatalf("no link with a token in the mail %q:\n%s", m.Subject, m.Text)
	}
	tok, err := url.QueryUnescape(sub[1])
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func resetVars(token, pw string) map[string]any {
	return map[string]any{"i": map[string]any{"token": token, "newPassword": pw}}
}

// The whole reset: the link arrives, a weak new password is refused and leaves the token usable, the
// reset revokes every session, verifies the address, logs in, and mails a notice; the token then
// never works again.
func TestPasswordReset(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e, mp := mailEnv(t, dsn, nil, false)
		addr := mailpit.Address(t)
		old := e.Register(addr, pw)
		verification := mp.WaitOne(t, addr, mailWait) // register's verification mail
		if !strings.Contains(verification.Subject, "Verify") {
			t.Fatalf("first mail: %q", verification.Subject)
		}

		apptest.WantOK(t, e.Post(mfRequestResetQ, map[string]any{"e": strings.ToUpper(addr)}))
		mails := mp.WaitFor(t, addr, 2, mailWait)
		reset := mails[1]
		if !strings.Contains(reset.Subject, "Reset your password") || reset.HTML == "" || strings.Contains(reset.Text, pw) {
			t.Fatalf("reset mail: subject %q, html %d bytes:\n%s", reset.Subject, len(reset.HTML), reset.Text)
		}
		tok := tokenIn(t, reset)

		apptest.WantCode(t, e.Post(mfResetQ, resetVars(tok, "short")), "BAD_USER_INPUT", "")
		r := e.Post(mfResetQ, resetVars(tok, "short"))
		if f, _ := r.Errors[0].Extensions["field"].(string); f != "newPassword" {
			t.Fatalf("field = %q, want newPassword", f)
		}
		const newPW = "a brand new password"
		p := e.MustPair(e.Post(mfResetQ, resetVars(tok, newPW)), "resetPassword")
		if !p.User.EmailVerified || p.User.Email != addr {
			t.Fatalf("user after reset: %+v", p.User)
		}
		apptest.WantCode(t, e.Me(old.AccessToken), "UNAUTHENTICATED", "SESSION_REVOKED")
		apptest.WantCode(t, e.Refresh(old.RefreshToken), "INVALID_REFRESH_TOKEN", "")
		apptest.WantOK(t, e.Me(p.AccessToken))
		apptest.WantCode(t, e.Post(loginQ, loginVars(addr, pw)), "INVALID_CREDENTIALS", "")
		e.Login(addr, newPW)

		apptest.WantCode(t, e.Post(mfResetQ, resetVars(tok, "yet another password")), "INVALID_EMAIL_TOKEN", "")
		notice := mp.WaitFor(t, addr, 3, mailWait)[2]
		if !strings.Contains(notice.Subject, "password was changed") {
			t.Fatalf("notice: %q", notice.Subject)
		}
		waitOutboxDone(t, e)
		m := metrics(t, e)
		for _, want := range []string{
			`gqlauth_mail_total{kind="password_reset",outcome="sent"} 1`,
			`gqlauth_mail_total{kind="password_changed",outcome="sent"} 1`,
			`gqlauth_mail_total{kind="verify_email",outcome="sent"} 1`,
			"gqlauth_mail_queued 0",
		} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %q", want)
			}
		}
	})
}

// Only the newest reset link works; a link expires after PASSWORD_RESET_TTL; a token of one purpose
// never works for the other.
func TestResetTokenRules(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e, mp := mailEnv(t, dsn, map[string]string{"PASSWORD_RESET_TTL": "1h"}, false)
		addr := mailpit.Address(t)
		e.Register(addr, pw)
		verify := tokenIn(t, mp.WaitOne(t, addr, mailWait))

		apptest.WantOK(t, e.Post(mfRequestResetQ, map[string]any{"e": addr}))
		first := tokenIn(t, mp.WaitFor(t, addr, 2, mailWait)[1])
		apptest.WantOK(t, e.Post(mfRequestResetQ, map[string]any{"e": addr}))
		second := tokenIn(t, mp.WaitFor(t, addr, 3, mailWait)[2])

		apptest.WantCode(t, e.Post(mfResetQ, resetVars(first, "a brand new password")), "INVALID_EMAIL_TOKEN", "")
		apptest.WantCode(t, e.Post(mfResetQ, resetVars(verify, "a brand new password")), "INVALID_EMAIL_TOKEN", "")
		apptest.WantCode(t, e.Post(mfVerifyQ, map[string]any{"t": second}), "INVALID_EMAIL_TOKEN", "")
		apptest.WantCode(t, e.Post(mfResetQ, resetVars("garbage", "a brand new password")), "INVALID_EMAIL_TOKEN", "")

		e.Clock.Advance(time.Hour + time.Second)
		apptest.WantCode(t, e.Post(mfResetQ, resetVars(second, "a brand new password")), "INVALID_EMAIL_TOKEN", "")
		e.Login(addr, pw) // nothing changed
	})
}

// An unknown address gets the same answer and no mail; the limits answer alike for known and
// unknown addresses.
func TestResetRequestsRevealNothing(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e, mp := mailEnv(t, dsn, map[string]string{"RESET_EMAIL_RATE_LIMIT": "2/1h", "RESET_IP_RATE_LIMIT": "off"}, false)
		known, unknown := mailpit.Address(t), mailpit.Address(t)
		e.Register(known, pw)
		mp.WaitOne(t, known, mailWait)
		for _, addr := range []string{known, unknown} {
			for range 2 {
				r := e.Post(mfRequestResetQ, map[string]any{"e": addr})
				apptest.WantOK(t, r)
				if !strings.Contains(r.Raw, `"requestPasswordReset":true`) {
					t.Fatalf("answer for %s: %s", addr, r.Raw)
				}
			}
			apptest.WantCode(t, e.Post(mfRequestResetQ, map[string]any{"e": addr}), "RATE_LIMITED", "")
		}
		apptest.WantCode(t, e.Post(mfRequestResetQ, map[string]any{"e": "not an address"}), "BAD_USER_INPUT", "")
		mp.WaitFor(t, known, 3, mailWait) // verification + 2 resets
		waitOutboxDone(t, e)              // the unknown address's requests were dropped by now
		if n := mp.Count(t, unknown); n != 0 {
			t.Fatalf("%d mails to an unknown address", n)
		}
	})
}

// Registration mails a verification link; following it verifies the address; asking again once
// verified sends nothing.
func TestEmailVerification(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e, mp := mailEnv(t, dsn, nil, false)
		addr := mailpit.Address(t)
		p := e.Register(addr, pw)
		if strings.Contains(e.Post(mfVerifiedQ, nil, apptest.Bearer(p.AccessToken)...).Raw, `"emailVerified":true`) {
			t.Fatal("verified before following the link")
		}
		apptest.WantOK(t, e.Post(mfRequestVerifQ, nil, apptest.Bearer(p.AccessToken)...))
		mails := mp.WaitFor(t, addr, 2, mailWait)
		first, second := tokenIn(t, mails[0]), tokenIn(t, mails[1])
		r := e.Post(mfVerifyQ, map[string]any{"t": second})
		apptest.WantOK(t, r)
		if !strings.Contains(r.Raw, `"emailVerified":true`) {
			t.Fatalf("verifyEmail: %s", r.Raw)
		}
		apptest.WantCode(t, e.Post(mfVerifyQ, map[string]any{"t": second}), "INVALID_EMAIL_TOKEN", "")
		_ = first // an older verification link may still work or not: the issue fixes newest-only for resets alone

		apptest.WantOK(t, e.Post(mfRequestVerifQ, nil, apptest.Bearer(p.AccessToken)...))
		waitOutboxDone(t, e)
		if n := mp.Count(t, addr); n != 2 {
			t.Fatalf("%d mails after asking again once verified, want 2", n)
		}
	})
}

// changeEmail mails the new address; the account moves when that link is followed, and the old
// address gets a notice. A wrong password, or an address another account took meanwhile, fails.
func TestChangeEmail(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e, mp := mailEnv(t, dsn, nil, false)
		oldAddr, newAddr, taken := mailpit.Address(t), mailpit.Address(t), mailpit.Address(t)
		p := e.Register(oldAddr, pw)
		change := func(to, password string) apptest.Response {
			return e.Post(mfChangeEmailQ, map[string]any{"i": map[string]any{"newEmail": to, "currentPassword": password}}, apptest.Bearer(p.AccessToken)...)
		}
		apptest.WantCode(t, change(newAddr, "wrong password!"), "INVALID_CREDENTIALS", "")
		apptest.WantCode(t, change("not an address", pw), "BAD_USER_INPUT", "")
		apptest.WantOK(t, change(strings.ToUpper(newAddr), pw))
		tok := tokenIn(t, mp.WaitOne(t, newAddr, mailWait))
		r := e.Post(mfVerifyQ, map[string]any{"t": tok})
		apptest.WantOK(t, r)
		if !strings.Contains(r.Raw, `"email":"`+newAddr+`"`) || !strings.Contains(r.Raw, `"emailVerified":true`) {
			t.Fatalf("verifyEmail of a change: %s", r.Raw)
		}
		notice := mp.WaitFor(t, oldAddr, 2, mailWait)[1] // after the verification mail of register
		if !strings.Contains(notice.Subject, "address was changed") {
			t.Fatalf("notice to the old address: %q", notice.Subject)
		}
		e.Login(newAddr, pw)
		apptest.WantCode(t, e.Post(loginQ, loginVars(oldAddr, pw)), "INVALID_CREDENTIALS", "")

		// Another account takes the address between the request and the link.
		apptest.WantOK(t, change(taken, pw))
		tok = tokenIn(t, mp.WaitOne(t, taken, mailWait))
		e.Register(taken, pw)
		apptest.WantCode(t, e.Post(mfVerifyQ, map[string]any{"t": tok}), "EMAIL_TAKEN", "")
		apptest.WantCode(t, change(taken, pw), "EMAIL_TAKEN", "")
	})
}

// With REQUIRE_EMAIL_VERIFICATION the right password of an unverified account fails with
// EMAIL_NOT_VERIFIED (a wrong one stays INVALID_CREDENTIALS) until the link is followed.
func TestRequireEmailVerification(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e, mp := mailEnv(t, dsn, map[string]string{"REQUIRE_EMAIL_VERIFICATION": "true"}, false)
		addr := mailpit.Address(t)
		e.Register(addr, pw)
		apptest.WantCode(t, e.Post(loginQ, loginVars(addr, pw)), "EMAIL_NOT_VERIFIED", "")
		apptest.WantCode(t, e.Post(loginQ, loginVars(addr, "wrong password!")), "INVALID_CREDENTIALS", "")
		apptest.WantOK(t, e.Post(mfVerifyQ, map[string]any{"t": tokenIn(t, mp.WaitOne(t, addr, mailWait))}))
		e.Login(addr, pw)
	})
}

// Mail requested while SMTP is down arrives once it is back, exactly once, without a restart; mail
// queued by a server that stopped is sent by the next one; afterwards the database holds no usable
// token (only hashes, and no link in the outbox).
func TestMailSurvivesOutagesAndRestarts(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		smtpURL, apiURL := testdb.Mailpit(t)
		u, err := url.Parse(smtpURL)
		if err != nil {
			t.Fatal(err)
		}
		proxy := tcpproxy.New(t, u.Host)
		proxied := "smtp://" + proxy.Addr()
		mp := mailpit.New(apiURL)
		dir := t.TempDir()
		vars := map[string]string{"SMTP_URL": proxied, "MAIL_FROM": "gqlauth tests <no-reply@example.com>"}

		proxy.Cut()
		a := apptest.New(t, dsn, apptest.Options{Vars: vars, RealTime: true, DataDir: dir})
		addr := mailpit.Address(t)
		a.Register(addr, pw)
		apptest.WantOK(t, a.Post(mfRequestResetQ, map[string]any{"e": addr}))
		// The sender tried both (and failed): nothing can have arrived.
		waitFor(t, mailWait, "failed attempts on both mails", func() bool {
			var n int64
			a.App.Store.Gorm().Table("mail_outbox").Where("status = ? AND attempts >= 1 AND kind <> ?", "pending", "password_reset_request").Count(&n)
			return n >= 2
		})
		if n := mp.Count(t, addr); n != 0 {
			t.Fatalf("%d mails while SMTP was down", n)
		}
		a.Server.Close() // a restart: this server stops with both mails still queued
		if err := proxy.Restore(); err != nil {
			t.Fatal(err)
		}
		b := apptest.New(t, dsn, apptest.Options{Vars: vars, RealTime: true, DataDir: dir})
		mails := mp.WaitFor(t, addr, 2, 30*time.Second)
		waitOutboxDone(t, b)
		if n := mp.Count(t, addr); n != 2 {
			t.Fatalf("%d mails after the outage, want exactly 2", n)
		}
		var tok string
		for _, m := range mails {
			if strings.Contains(m.Subject, "Reset") {
				tok = tokenIn(t, m)
			}
		}
		if tok == "" {
			t.Fatal("no reset mail")
		}
		assertNotStored(t, b, tok)
		b.MustPair(b.Post(mfResetQ, resetVars(tok, "a brand new password")), "resetPassword")
	})
}

// waitOutboxDone waits until e's outbox holds no pending mail (everything sent, dropped or failed).
func waitOutboxDone(t *testing.T, e *apptest.Env) {
	t.Helper()
	deadline := time.Now().Add(mailWait)
	for {
		var n int64
		if err := e.App.Store.Gorm().Table("mail_outbox").Where("status = ?", "pending").Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d mails still pending after %s", n, mailWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertNotStored fails when any column of the service's tables holds tok, as it is or URL-escaped.
func assertNotStored(t *testing.T, e *apptest.Env, tok string) {
	t.Helper()
	dump := dumpTables(t, e, "users", "sessions", "refresh_tokens", "email_tokens", "mail_outbox")
	if strings.Contains(dump, tok) || strings.Contains(dump, url.QueryEscape(tok)) {
		t.Error("the raw token is stored")
	}
}
