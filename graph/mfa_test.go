package graph_test

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"gqlauth/internal/apptest"
	"gqlauth/internal/mailpit"
	"gqlauth/internal/testdb"
)

// TOTP, recovery codes, the MFA step of login, reauthenticate and the step-up rule, through the real
// handler on SQLite and Postgres. TOTP codes are computed here from the enrolment's secret at the
// fake clock's time.

const (
	startTotpQ   = `mutation { startTotpEnrollment { secret otpauthUri } }`
	confirmTotpQ = `mutation($c: String!) { confirmTotpEnrollment(code: $c) }`
	disableTotpQ = `mutation($c: String!) { disableTotp(code: $c) }`
	regenerateQ  = `mutation($c: String!) { regenerateRecoveryCodes(code: $c) }`
	verifyMfaQ   = `mutation($ch: String!, $c: String!) { verifyMfa(challenge: $ch, code: $c) { ` + apptest.PayloadFields + ` } }`
	reauthQ      = `mutation($p: String, $c: String) { reauthenticate(password: $p, code: $c) { ` + apptest.PayloadFields + ` } }`
	totpEnabledQ = `{ me { totpEnabled } }`
	mfaLoginQ    = `mutation($i: LoginInput!) { login(input: $i) { ` + apptest.PayloadFields + ` } }`
	changePwQ    = `mutation($i: ChangePasswordInput!) { changePassword(input: $i) { ` + apptest.PayloadFields + ` } }`
)

// totpAt is the code of secret for the clock's step moved by steps.
func totpAt(t *testing.T, e *apptest.Env, secret string, steps int) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, e.Clock.Now().Add(time.Duration(steps)*30*time.Second),
		totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrolTOTP turns TOTP on for the holder of access and returns the secret and the recovery codes.
func enrolTOTP(t *testing.T, e *apptest.Env, access string) (string, []string) {
	t.Helper()
	r := e.Post(startTotpQ, nil, apptest.Bearer(access)...)
	apptest.WantOK(t, r)
	var en struct{ Secret, OtpauthURI string }
	r.Decode(t, "startTotpEnrollment", &en)
	r = e.Post(confirmTotpQ, map[string]any{"c": totpAt(t, e, en.Secret, 0)}, apptest.Bearer(access)...)
	apptest.WantOK(t, r)
	var codes []string
	r.Decode(t, "confirmTotpEnrollment", &codes)
	return en.Secret, codes
}

// mfaChallenge logs in with the right password of an account with TOTP on and returns the challenge
// of its MFA_REQUIRED.
func mfaChallenge(t *testing.T, e *apptest.Env, email, password string) string {
	t.Helper()
	r := e.Post(mfaLoginQ, loginVars(email, password))
	apptest.WantCode(t, r, "MFA_REQUIRED", "")
	if string(r.Data["login"]) != "" && string(r.Data["login"]) != "null" {
		t.Fatalf("MFA_REQUIRED with a payload: %s", r.Raw)
	}
	ch := r.Ext("mfaChallenge")
	if ch == "" {
		t.Fatalf("MFA_REQUIRED without extensions.mfaChallenge: %s", r.Raw)
	}
	return ch
}

func verifyMfa(e *apptest.Env, challenge, code string) apptest.Response {
	e.T.Helper()
	return e.Post(verifyMfaQ, map[string]any{"ch": challenge, "c": code})
}

// wantMFACode fails unless r is INVALID_MFA_CODE naming field.
func wantMFACode(t *testing.T, r apptest.Response, field string) {
	t.Helper()
	apptest.WantCode(t, r, "INVALID_MFA_CODE", "")
	if r.Ext("field") != field {
		t.Fatalf("INVALID_MFA_CODE field = %q, want %q: %s", r.Ext("field"), field, r.Raw)
	}
}

// accessClaims are the authentication claims of an access token.
type accessClaims struct {
	AMR      []string `json:"amr"`
	AuthTime int64    `json:"auth_time"`
	SID      string   `json:"sid"`
}

func claimsOf(t *testing.T, access string) accessClaims {
	t.Helper()
	parts := strings.Split(access, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", access)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c accessClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func wantAuthn(t *testing.T, access string, amr []string, at time.Time) {
	t.Helper()
	c := claimsOf(t, access)
	if !slices.Equal(c.AMR, amr) || c.AuthTime != at.Unix() {
		t.Fatalf("amr %v, auth_time %d; want %v, %d", c.AMR, c.AuthTime, amr, at.Unix())
	}
}

func totpEnabled(t *testing.T, e *apptest.Env, access string) bool {
	t.Helper()
	r := e.Post(totpEnabledQ, nil, apptest.Bearer(access)...)
	apptest.WantOK(t, r)
	var me struct {
		TotpEnabled bool `json:"totpEnabled"`
	}
	r.Decode(t, "me", &me)
	return me.TotpEnabled
}

// The whole life of TOTP: enrolment pending until confirmed, the MFA step of login with TOTP and
// recovery codes (each once), regeneration, disabling; and the secret sealed at rest.
func TestTOTPFlow(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{Vars: map[string]string{"TOTP_ISSUER": "Acme"}})
		reg := e.Register("ann@example.com", pw)
		auth := apptest.Bearer(reg.AccessToken)
		wantAuthn(t, reg.AccessToken, []string{"pwd"}, e.Clock.Now())

		r := e.Post(startTotpQ, nil, auth...)
		apptest.WantOK(t, r)
		var en struct{ Secret, OtpauthURI string }
		r.Decode(t, "startTotpEnrollment", &en)
		if !strings.HasPrefix(en.OtpauthURI, "otpauth://totp/Acme:ann@example.com?") || !strings.Contains(en.OtpauthURI, "secret="+en.Secret) ||
			!strings.Contains(en.OtpauthURI, "issuer=Acme") {
			t.Fatalf("otpauthUri %q", en.OtpauthURI)
		}
		// Pending until confirmed: logins need no code, me says off.
		e.Login("ann@example.com", pw)
		if totpEnabled(t, e, reg.AccessToken) {
			t.Fatal("totpEnabled before confirming")
		}
		wrong := "000000"
		if totpAt(t, e, en.Secret, 0) == wrong {
			wrong = "111111"
		}
		wantMFACode(t, e.Post(confirmTotpQ, map[string]any{"c": wrong}, auth...), "code")
		r = e.Post(confirmTotpQ, map[string]any{"c": totpAt(t, e, en.Secret, 0)}, auth...)
		apptest.WantOK(t, r)
		var codes []string
		r.Decode(t, "confirmTotpEnrollment", &codes)
		if len(codes) != 10 || len(slices.Compact(slices.Sorted(slices.Values(codes)))) != 10 {
			t.Fatalf("recovery codes %v: want 10 distinct", codes)
		}
		if !totpEnabled(t, e, reg.AccessToken) {
			t.Fatal("totpEnabled false after confirming")
		}

		// At rest: the sealed secret, never the secret; recovery codes hashed.
		var stored []byte
		e.App.Store.Gorm().Raw("SELECT totp_secret FROM users WHERE id = ?", reg.User.ID).Scan(&stored)
		if len(stored) == 0 || strings.Contains(string(stored), en.Secret) {
			t.Fatalf("totp_secret at rest: %q", stored)
		}
		dump := dumpTables(t, e, "users", "recovery_codes")
		secrets := []string{en.Secret, strings.ToLower(en.Secret)}
		for _, c := range codes {
			secrets = append(secrets, c, strings.ReplaceAll(c, "-", ""), strings.ToUpper(strings.ReplaceAll(c, "-", "")))
		}
		for _, s := range secrets {
			if strings.Contains(dump, s) {
				t.Fatalf("a second-factor secret is stored in plaintext: %.6s…", s)
			}
		}

		// A wrong password is INVALID_CREDENTIALS, without a challenge.
		r = e.Post(mfaLoginQ, loginVars("ann@example.com", "wrong password"))
		apptest.WantCode(t, r, "INVALID_CREDENTIALS", "")
		if r.Ext("mfaChallenge") != "" {
			t.Fatalf("a challenge for a wrong password: %s", r.Raw)
		}
		// The right one: MFA_REQUIRED, then verifyMfa opens a session with amr pwd+otp.
		ch := mfaChallenge(t, e, "ann@example.com", pw)
		e.Clock.Advance(30 * time.Second) // the confirming code's step is used
		code := totpAt(t, e, en.Secret, 0)
		p := e.MustPair(verifyMfa(e, ch, code), "verifyMfa")
		wantAuthn(t, p.AccessToken, []string{"pwd", "otp"}, e.Clock.Now())
		apptest.WantOK(t, e.Me(p.AccessToken))
		// The code and the challenge work once.
		wantMFACode(t, verifyMfa(e, mfaChallenge(t, e, "ann@example.com", pw), code), "code")
		wantMFACode(t, verifyMfa(e, ch, codes[0]), "challenge")
		// A recovery code works once.
		e.MustPair(verifyMfa(e, mfaChallenge(t, e, "ann@example.com", pw), codes[0]), "verifyMfa")
		wantMFACode(t, verifyMfa(e, mfaChallenge(t, e, "ann@example.com", pw), codes[0]), "code")

		// Regenerated codes replace the old ones (fresh: p's authentication is seconds old).
		e.Clock.Advance(30 * time.Second)
		r = e.Post(regenerateQ, map[string]any{"c": totpAt(t, e, en.Secret, 0)}, apptest.Bearer(p.AccessToken)...)
		apptest.WantOK(t, r)
		var fresh []string
		r.Decode(t, "regenerateRecoveryCodes", &fresh)
		if len(fresh) != 10 || slices.ContainsFunc(fresh, func(c string) bool { return slices.Contains(codes, c) }) {
			t.Fatalf("regenerated codes %v", fresh)
		}
		wantMFACode(t, verifyMfa(e, mfaChallenge(t, e, "ann@example.com", pw), codes[1]), "code")

		// Disabled with a recovery code: me says off at once, and logins need no code.
		r = e.Post(disableTotpQ, map[string]any{"c": fresh[0]}, apptest.Bearer(p.AccessToken)...)
		if r.Raw != `{"data":{"disableTotp":true}}` {
			t.Fatalf("disableTotp: %s", r.Raw)
		}
		if totpEnabled(t, e, p.AccessToken) {
			t.Fatal("totpEnabled after disabling")
		}
		e.Login("ann@example.com", pw)
		if r := e.Post(disableTotpQ, map[string]any{"c": fresh[1]}, apptest.Bearer(p.AccessToken)...); r.Code() != "BAD_USER_INPUT" || r.Ext("field") != "totp" {
			t.Fatalf("disableTotp when off: %s", r.Raw)
		}
	})
}

// The challenge: 5 minutes, five wrong codes end it; and the account's MFA_RATE_LIMIT (10/15m) across
// challenges, which refuses even the right code.
func TestMFAChallengeLimits(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		reg := e.Register("bo@example.com", pw)
		secret, codes := enrolTOTP(t, e, reg.AccessToken)
		e.Clock.Advance(30 * time.Second)

		ch := mfaChallenge(t, e, "bo@example.com", pw)
		e.Clock.Advance(5*time.Minute + time.Second)
		wantMFACode(t, verifyMfa(e, ch, totpAt(t, e, secret, 0)), "challenge")

		ch = mfaChallenge(t, e, "bo@example.com", pw)
		for range 5 {
			wantMFACode(t, verifyMfa(e, ch, "zzzz-zzzz-zzzz-zzzz"), "code")
		}
		wantMFACode(t, verifyMfa(e, ch, totpAt(t, e, secret, 0)), "challenge")

		// Five more wrong codes on other challenges reach the account's ten.
		for range 5 {
			wantMFACode(t, verifyMfa(e, mfaChallenge(t, e, "bo@example.com", pw), "zzzz-zzzz-zzzz-zzzz"), "code")
		}
		r := verifyMfa(e, mfaChallenge(t, e, "bo@example.com", pw), codes[0])
		apptest.WantCode(t, r, "RATE_LIMITED", "")
		// The refused attempt did not use the recovery code up: once the window has passed, it works.
		e.Clock.Advance(16 * time.Minute)
		e.MustPair(verifyMfa(e, mfaChallenge(t, e, "bo@example.com", pw), codes[0]), "verifyMfa")
	})
}

// Concurrent verifyMfa with the same challenge and code: exactly one session.
func TestVerifyMFAConcurrent(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		reg := e.Register("cy@example.com", pw)
		secret, _ := enrolTOTP(t, e, reg.AccessToken)
		e.Clock.Advance(30 * time.Second)
		ch, code := mfaChallenge(t, e, "cy@example.com", pw), totpAt(t, e, secret, 0)
		const n = 6
		results := apptest.Concurrently(n, func(int) apptest.Response { return verifyMfa(e, ch, code) })
		wins := 0
		for _, r := range results {
			switch r.Code() {
			case "":
				wins++
			case "INVALID_MFA_CODE":
			default:
				t.Errorf("verifyMfa: %s", r.Raw)
			}
		}
		if wins != 1 {
			t.Fatalf("%d concurrent verifyMfa succeeded, want exactly 1", wins)
		}
		r := e.Post(`{ sessions { id } }`, nil, apptest.Bearer(reg.AccessToken)...)
		var sessions []struct{ ID string }
		r.Decode(t, "sessions", &sessions)
		if len(sessions) != 2 { // register's and the one verifyMfa opened
			t.Fatalf("%d sessions, want 2: %s", len(sessions), r.Raw)
		}
	})
}

// resetPassword with TOTP on: the password is set and every session revoked, but the answer is
// MFA_REQUIRED; verifyMfa with a code opens the session.
func TestResetPasswordWithTOTP(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e, mp := mailEnv(t, dsn, nil, false)
		addr := mailpit.Address(t)
		reg := e.Register(addr, pw)
		secret, _ := enrolTOTP(t, e, reg.AccessToken)
		mp.WaitOne(t, addr, mailWait) // the verification mail
		apptest.WantOK(t, e.Post(mfRequestResetQ, map[string]any{"e": addr}))
		tok := tokenIn(t, mp.WaitFor(t, addr, 2, mailWait)[1])

		r := e.Post(mfResetQ, resetVars(tok, "a brand new passphrase"))
		apptest.WantCode(t, r, "MFA_REQUIRED", "")
		ch := r.Ext("mfaChallenge")
		if ch == "" || (string(r.Data["resetPassword"]) != "" && string(r.Data["resetPassword"]) != "null") {
			t.Fatalf("resetPassword with TOTP on: %s", r.Raw)
		}
		apptest.WantCode(t, e.Me(reg.AccessToken), "UNAUTHENTICATED", "SESSION_REVOKED")
		apptest.WantCode(t, e.Post(mfResetQ, resetVars(tok, "a brand new passphrase")), "INVALID_EMAIL_TOKEN", "")
		e.Clock.Advance(30 * time.Second)
		p := e.MustPair(verifyMfa(e, ch, totpAt(t, e, secret, 0)), "verifyMfa")
		wantAuthn(t, p.AccessToken, []string{"pwd", "otp"}, e.Clock.Now())
		apptest.WantOK(t, e.Me(p.AccessToken))
		mfaChallenge(t, e, addr, "a brand new passphrase")
		apptest.WantCode(t, e.Post(mfaLoginQ, loginVars(addr, pw)), "INVALID_CREDENTIALS", "")
	})
}

// The step-up rule: the fields marked @auth(fresh: true) need an authentication no older than
// REAUTH_MAX_AGE (10m); a refresh does not renew it, reauthenticate does.
func TestStepUp(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		e.Register("dot@example.com", pw)
		login := e.Login("dot@example.com", pw)
		loggedIn := e.Clock.Now()
		wantAuthn(t, login.AccessToken, []string{"pwd"}, loggedIn)

		e.Clock.Advance(11 * time.Minute)
		// A refresh keeps the login's auth_time: still not fresh.
		r := e.Refresh(login.RefreshToken)
		refreshed := e.MustPair(r, "refreshToken")
		wantAuthn(t, refreshed.AccessToken, []string{"pwd"}, loggedIn)
		stale := apptest.Bearer(refreshed.AccessToken)
		for name, q := range map[string]struct {
			query string
			vars  map[string]any
		}{
			"changePassword":          {changePwQ, map[string]any{"i": map[string]any{"currentPassword": pw, "newPassword": "another passphrase"}}},
			"changeEmail":             {changeEmailQ, map[string]any{"i": map[string]any{"newEmail": "new@example.com", "currentPassword": pw}}},
			"startTotpEnrollment":     {startTotpQ, nil},
			"disableTotp":             {disableTotpQ, map[string]any{"c": "123456"}},
			"regenerateRecoveryCodes": {regenerateQ, map[string]any{"c": "123456"}},
		} {
			r := e.Post(q.query, q.vars, stale...)
			apptest.WantCode(t, r, "REAUTHENTICATION_REQUIRED", "")
			if maxAge, _ := r.Errors[0].Extensions["maxAge"].(float64); maxAge != 600 {
				t.Fatalf("%s: maxAge %v, want 600: %s", name, r.Errors[0].Extensions["maxAge"], r.Raw)
			}
		}
		// Not fresh-gated: confirmTotpEnrollment answers (BAD_USER_INPUT: nothing pending).
		if r := e.Post(confirmTotpQ, map[string]any{"c": "123456"}, stale...); r.Code() != "BAD_USER_INPUT" || r.Ext("field") != "code" {
			t.Fatalf("confirmTotpEnrollment: %s", r.Raw)
		}

		// reauthenticate: the arguments, a wrong password, then the password.
		apptest.WantCode(t, e.Post(reauthQ, nil, stale...), "BAD_USER_INPUT", "")
		apptest.WantCode(t, e.Post(reauthQ, map[string]any{"p": "wrong password"}, stale...), "INVALID_CREDENTIALS", "")
		apptest.WantCode(t, e.Post(reauthQ, map[string]any{"p": pw}), "UNAUTHENTICATED", "TOKEN_MISSING")
		re := e.MustPair(e.Post(reauthQ, map[string]any{"p": pw}, stale...), "reauthenticate")
		wantAuthn(t, re.AccessToken, []string{"pwd"}, e.Clock.Now())
		if claimsOf(t, re.AccessToken).SID != claimsOf(t, login.AccessToken).SID {
			t.Fatal("reauthenticate changed the session")
		}
		// Its refresh token keeps the new auth_time; the session's older one is retired.
		reauthAt := e.Clock.Now()
		e.Clock.Advance(time.Minute)
		again := e.MustPair(e.Refresh(re.RefreshToken), "refreshToken")
		wantAuthn(t, again.AccessToken, []string{"pwd"}, reauthAt)
		apptest.WantCode(t, e.Refresh(refreshed.RefreshToken), "INVALID_REFRESH_TOKEN", "")
		// The new access token passes the step-up.
		e.MustPair(e.Post(changePwQ, map[string]any{"i": map[string]any{"currentPassword": pw, "newPassword": "another passphrase"}},
			apptest.Bearer(again.AccessToken)...), "changePassword")
		const pw2 = "another passphrase"

		// With TOTP on, reauthenticate needs the code: MFA_REQUIRED (no challenge) without it.
		secret, codes := enrolTOTP(t, e, again.AccessToken)
		e.Clock.Advance(11 * time.Minute)
		stale = apptest.Bearer(again.AccessToken)
		apptest.WantCode(t, e.Post(disableTotpQ, map[string]any{"c": codes[0]}, stale...), "REAUTHENTICATION_REQUIRED", "")
		r = e.Post(reauthQ, map[string]any{"p": pw2}, stale...)
		apptest.WantCode(t, r, "MFA_REQUIRED", "")
		if _, ok := r.Errors[0].Extensions["mfaChallenge"]; ok {
			t.Fatalf("reauthenticate's MFA_REQUIRED carries a challenge: %s", r.Raw)
		}
		apptest.WantCode(t, e.Post(reauthQ, map[string]any{"p": "wrong password", "c": totpAt(t, e, secret, 0)}, stale...), "INVALID_CREDENTIALS", "")
		wantMFACode(t, e.Post(reauthQ, map[string]any{"p": pw2, "c": "zzzz-zzzz-zzzz-zzzz"}, stale...), "code")
		re = e.MustPair(e.Post(reauthQ, map[string]any{"p": pw2, "c": totpAt(t, e, secret, 0)}, stale...), "reauthenticate")
		wantAuthn(t, re.AccessToken, []string{"pwd", "otp"}, e.Clock.Now())
		if r := e.Post(disableTotpQ, map[string]any{"c": codes[0]}, apptest.Bearer(re.AccessToken)...); r.Raw != `{"data":{"disableTotp":true}}` {
			t.Fatalf("disableTotp after reauthenticate: %s", r.Raw)
		}
	})
}
