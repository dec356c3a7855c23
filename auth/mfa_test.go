package auth_test

import (
	"crypto/rand"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"gqlauth/auth"
	"gqlauth/ratelimit"
)

// The rules of second factors (mfa.go) through auth.Service on every store, with a fake clock: the
// TOTP codes are computed here from the enrolment's secret at the clock's time.

// newMFADomain is newDomain with st as the FactorStore and a fresh TOTP key.
func newMFADomain(t *testing.T, st auth.Store, opts auth.Options) *domain {
	t.Helper()
	fs, ok := st.(auth.FactorStore)
	if !ok {
		t.Fatalf("%T is not a FactorStore", st)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	opts.Factors, opts.TOTPKeys, opts.TOTPIssuer = fs, [][]byte{key}, "Example Co"
	return newDomain(t, st, opts)
}

// totpCode is the code of secret for the step steps away from the clock's (0: now).
func (d *domain) totpCode(secret string, steps int) string {
	d.t.Helper()
	c, err := totp.GenerateCodeCustom(secret, d.clock.Now().Add(time.Duration(steps)*30*time.Second),
		totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		d.t.Fatal(err)
	}
	return c
}

// enrol turns TOTP on for p's user with the code of the current step and returns the secret and the
// recovery codes.
func (d *domain) enrol(p *auth.Pair) (string, []string) {
	d.t.Helper()
	pr := d.principal(p)
	e, err := d.svc.StartTOTPEnrollment(d.ctx, pr)
	if err != nil {
		d.t.Fatalf("startTotpEnrollment: %v", err)
	}
	codes, err := d.svc.ConfirmTOTPEnrollment(d.ctx, pr, d.totpCode(e.Secret, 0))
	if err != nil {
		d.t.Fatalf("confirmTotpEnrollment: %v", err)
	}
	return e.Secret, codes
}

// mfaLogin logs in with the right password of an account with TOTP on and returns the challenge.
func (d *domain) mfaLogin(email string) string {
	d.t.Helper()
	p, err := d.svc.Login(d.ctx, email, pw, auth.Client{})
	var mfa *auth.MFARequiredError
	if !errors.As(err, &mfa) || mfa.Challenge == "" || p != nil {
		d.t.Fatalf("login with TOTP on = %+v, %v; want an *MFARequiredError with a challenge", p, err)
	}
	return mfa.Challenge
}

// verify finishes an MFA login, which must succeed.
func (d *domain) verify(challenge, code string) *auth.Pair {
	d.t.Helper()
	p, err := d.svc.VerifyMFA(d.ctx, challenge, code, auth.Client{})
	if err != nil {
		d.t.Fatalf("verifyMfa: %v", err)
	}
	return p
}

var recoveryCodeShape = regexp.MustCompile(`^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$`)

func TestTOTPEnrollment(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newMFADomain(t, st, auth.Options{})
		reg := d.register("ann@example.com")
		pr := d.principal(reg)

		// Confirming with nothing pending.
		_, err := d.svc.ConfirmTOTPEnrollment(d.ctx, pr, "123456")
		wantValidation(t, err, "code")

		first, err := d.svc.StartTOTPEnrollment(d.ctx, pr)
		if err != nil {
			t.Fatal(err)
		}
		if len(first.Secret) != 32 || strings.Contains(first.Secret, "=") {
			t.Fatalf("secret %q: want 32 base32 characters (20 bytes), no padding", first.Secret)
		}
		key, err := otp.NewKeyFromURL(first.URI)
		if err != nil || key.Issuer() != "Example Co" || key.AccountName() != "ann@example.com" || key.Secret() != first.Secret ||
			key.Period() != 30 || key.Digits() != otp.DigitsSix || key.Algorithm() != otp.AlgorithmSHA1 {
			t.Fatalf("otpauth URI %q (%v)", first.URI, err)
		}
		// Pending: logins need no code yet.
		d.login("ann@example.com", pw)
		if u, _ := d.svc.Me(d.ctx, pr); u.TOTPEnabledAt != nil {
			t.Fatal("TOTP on before it was confirmed")
		}
		// A new enrolment replaces the pending one: the first secret's codes no longer confirm.
		second, err := d.svc.StartTOTPEnrollment(d.ctx, pr)
		if err != nil || second.Secret == first.Secret {
			t.Fatalf("second enrolment: %+v, %v", second, err)
		}
		if _, err := d.svc.ConfirmTOTPEnrollment(d.ctx, pr, d.totpCode(first.Secret, 0)); !errors.Is(err, auth.ErrInvalidMFACode) {
			t.Fatalf("confirm with the replaced secret = %v", err)
		}
		for _, bad := range []string{"000000", "12345", "abcdef", "", strings.Repeat("9", 1000)} {
			if bad == d.totpCode(second.Secret, 0) {
				continue
			}
			if _, err := d.svc.ConfirmTOTPEnrollment(d.ctx, pr, bad); !errors.Is(err, auth.ErrInvalidMFACode) {
				t.Fatalf("confirm with %.10q = %v, want ErrInvalidMFACode", bad, err)
			}
		}
		codes, err := d.svc.ConfirmTOTPEnrollment(d.ctx, pr, d.totpCode(second.Secret, 0))
		if err != nil {
			t.Fatal(err)
		}
		if len(codes) != auth.RecoveryCodeCount || len(slices.Compact(slices.Sorted(slices.Values(codes)))) != auth.RecoveryCodeCount {
			t.Fatalf("recovery codes %v: want 10 distinct", codes)
		}
		for _, c := range codes {
			if !recoveryCodeShape.MatchString(c) {
				t.Fatalf("recovery code %q is not xxxx-xxxx-xxxx-xxxx base32", c)
			}
		}
		// Me reads through a cache; the change shows at once.
		if u, _ := d.svc.Me(d.ctx, pr); u.TOTPEnabledAt == nil {
			t.Fatal("me: TOTP not on after confirming")
		}
		_, err = d.svc.StartTOTPEnrollment(d.ctx, pr)
		wantValidation(t, err, "totp")
		_, err = d.svc.ConfirmTOTPEnrollment(d.ctx, pr, d.totpCode(second.Secret, 1))
		wantValidation(t, err, "totp")
	})
}

func TestMFALogin(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newMFADomain(t, st, auth.Options{})
		reg := d.register("bob@example.com")
		secret, codes := d.enrol(reg)

		// A wrong password is the usual error, with no challenge.
		if _, err := d.svc.Login(d.ctx, "bob@example.com", "wrong password", auth.Client{}); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("wrong password = %v", err)
		}
		// The code that confirmed the enrolment (its step) cannot log in: a code works once.
		ch := d.mfaLogin("bob@example.com")
		if _, err := d.svc.VerifyMFA(d.ctx, ch, d.totpCode(secret, 0), auth.Client{}); !errors.Is(err, auth.ErrInvalidMFACode) {
			t.Fatalf("verify with the confirming code = %v", err)
		}
		d.clock.Advance(30 * time.Second)
		p := d.verify(ch, d.totpCode(secret, 0))
		pr := d.principal(p)
		if !slices.Equal(pr.AMR, []string{"pwd", "otp"}) || !pr.AuthTime.Equal(d.clock.Now().Truncate(time.Second)) {
			t.Fatalf("amr %v, auth_time %v", pr.AMR, pr.AuthTime)
		}
		// The challenge was single use, the code too.
		if _, err := d.svc.VerifyMFA(d.ctx, ch, codes[0], auth.Client{}); !errors.Is(err, auth.ErrInvalidMFAChallenge) {
			t.Fatalf("a used challenge = %v", err)
		}
		if _, err := d.svc.VerifyMFA(d.ctx, d.mfaLogin("bob@example.com"), d.totpCode(secret, 0), auth.Client{}); !errors.Is(err, auth.ErrInvalidMFACode) {
			t.Fatalf("a replayed code = %v", err)
		}
		// A recovery code works once, typed in any case, with spaces or without hyphens.
		typed := strings.ToUpper(strings.ReplaceAll(codes[1], "-", " "))
		d.verify(d.mfaLogin("bob@example.com"), typed)
		if _, err := d.svc.VerifyMFA(d.ctx, d.mfaLogin("bob@example.com"), codes[1], auth.Client{}); !errors.Is(err, auth.ErrInvalidMFACode) {
			t.Fatalf("a used recovery code = %v", err)
		}
		d.verify(d.mfaLogin("bob@example.com"), strings.ReplaceAll(codes[2], "-", ""))
		// Malformed challenges.
		for _, bad := range []string{"", "garbage", strings.Repeat("A", 10000), ch + "x"} {
			if _, err := d.svc.VerifyMFA(d.ctx, bad, codes[3], auth.Client{}); !errors.Is(err, auth.ErrInvalidMFAChallenge) {
				t.Fatalf("challenge %.10q = %v", bad, err)
			}
		}
	})
}

// Codes of the steps either side of now are accepted, not further; and only later than the last one.
func TestTOTPWindow(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newMFADomain(t, st, auth.Options{})
		secret, _ := d.enrol(d.register("cy@example.com")) // step S used
		d.clock.Advance(90 * time.Second)                  // now S+3
		for _, tc := range []struct {
			steps int
			want  error
		}{
			{-3, auth.ErrInvalidMFACode}, // S: used
			{-2, auth.ErrInvalidMFACode}, // too old
			{2, auth.ErrInvalidMFACode},  // too far ahead
			{-1, nil},
			{-1, auth.ErrInvalidMFACode}, // replay
			{0, nil},
			{1, nil},
			{0, auth.ErrInvalidMFACode}, // earlier than the last accepted
		} {
			_, err := d.svc.VerifyMFA(d.ctx, d.mfaLogin("cy@example.com"), d.totpCode(secret, tc.steps), auth.Client{})
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("code of step now%+d = %v, want %v", tc.steps, err, tc.want)
			}
		}
	})
}

func TestMFAChallengeRules(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newMFADomain(t, st, auth.Options{})
		reg := d.register("dee@example.com")
		secret, codes := d.enrol(reg)
		d.clock.Advance(30 * time.Second)

		// Expiry: 5 minutes.
		ch := d.mfaLogin("dee@example.com")
		d.clock.Advance(auth.MFAChallengeTTL)
		if _, err := d.svc.VerifyMFA(d.ctx, ch, d.totpCode(secret, 0), auth.Client{}); !errors.Is(err, auth.ErrInvalidMFAChallenge) {
			t.Fatalf("an expired challenge = %v", err)
		}
		// Five wrong codes end the challenge: the right one then fails too.
		ch = d.mfaLogin("dee@example.com")
		for i := range auth.MFAMaxAttempts {
			if _, err := d.svc.VerifyMFA(d.ctx, ch, "aaaa-bbbb-cccc-dddd", auth.Client{}); !errors.Is(err, auth.ErrInvalidMFACode) {
				t.Fatalf("wrong code #%d = %v", i+1, err)
			}
		}
		if _, err := d.svc.VerifyMFA(d.ctx, ch, d.totpCode(secret, 0), auth.Client{}); !errors.Is(err, auth.ErrInvalidMFAChallenge) {
			t.Fatalf("the right code after five wrong ones = %v", err)
		}
		// A password change between the login and its second step voids the challenge.
		ch = d.mfaLogin("dee@example.com")
		fresh := d.verify(d.mfaLogin("dee@example.com"), codes[0])
		if _, err := d.svc.ChangePassword(d.ctx, d.principal(fresh), pw, "another passphrase", auth.Client{}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.svc.VerifyMFA(d.ctx, ch, codes[1], auth.Client{}); !errors.Is(err, auth.ErrInvalidMFAChallenge) {
			t.Fatalf("verify after a password change = %v", err)
		}
	})
}

// Wrong codes count per account across challenges; a right code takes its count back.
func TestMFARateLimit(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newMFADomain(t, st, auth.Options{Limiter: ratelimit.NewMemory(nil), MFARate: ratelimit.Rate{Limit: 3, Window: 15 * time.Minute}})
		reg := d.register("eve@example.com")
		secret, codes := d.enrol(reg)
		d.verify(d.mfaLogin("eve@example.com"), codes[0]) // a success is not counted
		for range 3 {
			if _, err := d.svc.VerifyMFA(d.ctx, d.mfaLogin("eve@example.com"), "aaaa-aaaa-aaaa-aaaa", auth.Client{}); !errors.Is(err, auth.ErrInvalidMFACode) {
				t.Fatalf("wrong code = %v", err)
			}
		}
		// The fourth attempt is refused before its code is looked at, even the right one, on a new
		// challenge; and it does not use the code up.
		d.clock.Advance(30 * time.Second)
		var rl *auth.RateLimitedError
		if _, err := d.svc.VerifyMFA(d.ctx, d.mfaLogin("eve@example.com"), d.totpCode(secret, 0), auth.Client{}); !errors.As(err, &rl) {
			t.Fatalf("over the limit = %v, want *RateLimitedError", err)
		}
		// disableTotp is under the same limit.
		if err := d.svc.DisableTOTP(d.ctx, d.principal(reg), codes[1]); !errors.As(err, &rl) {
			t.Fatalf("disableTotp over the limit = %v", err)
		}
	})
}

// Concurrent verifyMfa with one challenge and one code: exactly one session.
func TestVerifyMFARace(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newMFADomain(t, st, auth.Options{})
		reg := d.register("fay@example.com")
		secret, codes := d.enrol(reg)
		d.clock.Advance(30 * time.Second)
		// A TOTP code used by a concurrent request is a replay, which does not count against the
		// challenge, so any number of racers leave it to the winner. A used recovery code cannot be
		// told from a wrong one: MFAMaxAttempts racers at most, so their four failures cannot end the
		// challenge before the winner consumes it.
		for round, tc := range []struct {
			code   string
			racers int
		}{{d.totpCode(secret, 0), 8}, {codes[0], auth.MFAMaxAttempts}} {
			code := tc.code
			ch := d.mfaLogin("fay@example.com")
			before := len(d.sessions(reg))
			var wins atomic.Int32
			var wg sync.WaitGroup
			for range tc.racers {
				wg.Go(func() {
					_, err := d.svc.VerifyMFA(d.ctx, ch, code, auth.Client{})
					switch {
					case err == nil:
						wins.Add(1)
					case !errors.Is(err, auth.ErrInvalidMFACode) && !errors.Is(err, auth.ErrInvalidMFAChallenge):
						t.Errorf("verifyMfa: %v", err)
					}
				})
			}
			wg.Wait()
			if wins.Load() != 1 || len(d.sessions(reg)) != before+1 {
				t.Fatalf("round %d: %d winners, %d new sessions; want exactly one", round, wins.Load(), len(d.sessions(reg))-before)
			}
		}
	})
}

func TestDisableAndRegenerate(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newMFADomain(t, st, auth.Options{})
		reg := d.register("gus@example.com")
		pr := d.principal(reg)
		_, err := d.svc.RegenerateRecoveryCodes(d.ctx, pr, "123456")
		wantValidation(t, err, "totp")
		wantValidation(t, d.svc.DisableTOTP(d.ctx, pr, "123456"), "totp")

		secret, old := d.enrol(reg)
		if _, err := d.svc.RegenerateRecoveryCodes(d.ctx, pr, "zzzz-zzzz-zzzz-zzzz"); !errors.Is(err, auth.ErrInvalidMFACode) {
			t.Fatalf("regenerate with a wrong code = %v", err)
		}
		d.clock.Advance(30 * time.Second)
		fresh, err := d.svc.RegenerateRecoveryCodes(d.ctx, pr, d.totpCode(secret, 0))
		if err != nil || len(fresh) != auth.RecoveryCodeCount {
			t.Fatalf("regenerate: %v, %v", fresh, err)
		}
		for _, c := range old {
			if slices.Contains(fresh, c) {
				t.Fatal("a new code equals an old one")
			}
		}
		if _, err := d.svc.VerifyMFA(d.ctx, d.mfaLogin("gus@example.com"), old[0], auth.Client{}); !errors.Is(err, auth.ErrInvalidMFACode) {
			t.Fatalf("an old recovery code after regenerating = %v", err)
		}
		// Disabled with a recovery code: logins need no code again, and me shows it at once. A
		// challenge handed out before no longer works (a new login needs no code).
		ch := d.mfaLogin("gus@example.com")
		if err := d.svc.DisableTOTP(d.ctx, pr, fresh[0]); err != nil {
			t.Fatal(err)
		}
		if u, _ := d.svc.Me(d.ctx, pr); u.TOTPEnabledAt != nil {
			t.Fatal("me: TOTP still on")
		}
		if _, err := d.svc.VerifyMFA(d.ctx, ch, fresh[1], auth.Client{}); !errors.Is(err, auth.ErrInvalidMFAChallenge) {
			t.Fatalf("a challenge from before disableTotp = %v", err)
		}
		d.login("gus@example.com", pw)
		wantValidation(t, d.svc.DisableTOTP(d.ctx, pr, fresh[1]), "totp")
		// Enabled again, with a new secret: the old codes and recovery codes are dead.
		secret2, _ := d.enrol(reg)
		d.clock.Advance(30 * time.Second)
		if _, err := d.svc.RegenerateRecoveryCodes(d.ctx, pr, fresh[2]); !errors.Is(err, auth.ErrInvalidMFACode) {
			t.Fatalf("a recovery code from before disabling = %v", err)
		}
		if secret2 == secret {
			t.Fatal("re-enrolment reused the secret")
		}
	})
}

func TestReauthenticate(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st auth.Store) {
		d := newMFADomain(t, st, auth.Options{})
		reg := d.register("hal@example.com")
		str := func(s string) *string { return &s }
		reauth := func(p *auth.Pair, in auth.ReauthInput) (*auth.Pair, error) {
			return d.svc.Reauthenticate(d.ctx, d.principal(p), in, auth.Client{})
		}
		for name, in := range map[string]auth.ReauthInput{
			"nothing":           {},
			"password and more": {Password: str(pw), ChallengeID: str("x"), Credential: []byte("{}")},
		} {
			_, err := reauth(reg, in)
			var v *auth.ValidationError
			if !errors.As(err, &v) {
				t.Fatalf("%s: %v, want a *ValidationError", name, err)
			}
		}
		_, err := reauth(reg, auth.ReauthInput{ChallengeID: str("x")})
		wantValidation(t, err, "credential")
		// The passkey branch is tested with a real assertion in graph (TestReauthenticateWithPasskey);
		// here, with no relying party configured, it refuses.
		if _, err := reauth(reg, auth.ReauthInput{ChallengeID: str("x"), Credential: []byte("{}")}); err == nil {
			t.Fatal("passkey reauthentication without a relying party succeeded")
		}
		if _, err := reauth(reg, auth.ReauthInput{Password: str("wrong password")}); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("wrong password = %v", err)
		}

		d.clock.Advance(11 * time.Minute)
		if err := d.svc.CheckFresh(d.principal(reg)); !errors.Is(err, auth.ErrReauthenticationRequired) {
			t.Fatalf("CheckFresh after 11 minutes = %v", err)
		}
		p, err := reauth(reg, auth.ReauthInput{Password: str(pw)})
		if err != nil {
			t.Fatal(err)
		}
		pr := d.principal(p)
		if !slices.Equal(pr.AMR, []string{"pwd"}) || !pr.AuthTime.Equal(d.clock.Now().Truncate(time.Second)) || pr.SessionID != d.principal(reg).SessionID {
			t.Fatalf("after reauthenticate: %+v", pr)
		}
		if err := d.svc.CheckFresh(pr); err != nil {
			t.Fatalf("CheckFresh after reauthenticate = %v", err)
		}
		// The session's older refresh token was replaced; the new one keeps the new authentication.
		d.wantRefreshInvalid(reg.RefreshToken)
		if r := d.principal(d.refresh(p.RefreshToken)); !r.AuthTime.Equal(pr.AuthTime) || !slices.Equal(r.AMR, pr.AMR) {
			t.Fatalf("refresh after reauthenticate: %+v", r)
		}

		// With TOTP on: the password alone is MFA_REQUIRED without a challenge; with a code, pwd+otp.
		secret, _ := d.enrol(p)
		_, err = reauth(p, auth.ReauthInput{Password: str(pw)})
		var mfa *auth.MFARequiredError
		if !errors.As(err, &mfa) || mfa.Challenge != "" {
			t.Fatalf("reauthenticate without a code = %v, want an *MFARequiredError without a challenge", err)
		}
		// A wrong password with TOTP on is still INVALID_CREDENTIALS, whatever the code.
		if _, err := reauth(p, auth.ReauthInput{Password: str("wrong password"), Code: str("123456")}); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("wrong password with a code = %v", err)
		}
		if _, err := reauth(p, auth.ReauthInput{Password: str(pw), Code: str("aaaa-aaaa-aaaa-aaaa")}); !errors.Is(err, auth.ErrInvalidMFACode) {
			t.Fatalf("wrong code = %v", err)
		}
		d.clock.Advance(30 * time.Second)
		p2, err := reauth(p, auth.ReauthInput{Password: str(pw), Code: str(d.totpCode(secret, 0))})
		if err != nil {
			t.Fatal(err)
		}
		if pr := d.principal(p2); !slices.Equal(pr.AMR, []string{"pwd", "otp"}) {
			t.Fatalf("amr = %v", pr.AMR)
		}
		// A revoked session cannot reauthenticate.
		if err := d.svc.LogoutSession(d.ctx, d.principal(p2)); err != nil {
			t.Fatal(err)
		}
		if _, err := d.svc.Reauthenticate(d.ctx, pr, auth.ReauthInput{Password: str(pw), Code: str(d.totpCode(secret, 1))}, auth.Client{}); !errors.Is(err, auth.ErrSessionRevoked) {
			t.Fatalf("reauthenticate a revoked session = %v", err)
		}
	})
}

// With TOTP on, a reset link sets the password and ends every session but opens none: the second
// factor is still owed, for the new password.
func TestResetPasswordWithTOTP(t *testing.T) {
	t.Parallel()
	forEachMailStore(t, func(t *testing.T, st mailBackend) {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		r := newRecovery(t, st, auth.Options{Factors: st.(auth.FactorStore), TOTPKeys: [][]byte{key}})
		reg := r.register("ida@example.com")
		_, codes := r.enrol(reg)
		r.drain()
		tok := r.resetToken("ida@example.com", "ida@example.com")
		p, err := r.svc.ResetPassword(r.ctx, tok, newPW, auth.Client{})
		var mfa *auth.MFARequiredError
		if !errors.As(err, &mfa) || mfa.Challenge == "" || p != nil {
			t.Fatalf("resetPassword with TOTP on = %+v, %v; want MFA_REQUIRED with a challenge", p, err)
		}
		r.wantRevoked(reg)
		r.one(auth.KindPasswordChanged, "ida@example.com")
		if _, err := r.svc.ResetPassword(r.ctx, tok, newPW, auth.Client{}); !errors.Is(err, auth.ErrInvalidEmailToken) {
			t.Fatalf("the token again = %v", err)
		}
		if _, err := r.svc.VerifyMFA(r.ctx, mfa.Challenge, "aaaa-aaaa-aaaa-aaaa", auth.Client{}); !errors.Is(err, auth.ErrInvalidMFACode) {
			t.Fatalf("a wrong code = %v", err)
		}
		p = r.verify(mfa.Challenge, codes[0])
		if pr := r.principal(p); !slices.Equal(pr.AMR, []string{"pwd", "otp"}) {
			t.Fatalf("amr = %v", pr.AMR)
		}
		// The new password is the one set.
		if _, err := r.svc.Login(r.ctx, "ida@example.com", newPW, auth.Client{}); !errors.Is(err, auth.ErrMFARequired) {
			t.Fatalf("login with the new password = %v", err)
		}
	})
}
