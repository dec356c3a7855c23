package graph_test

import (
	"testing"

	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
)

// The GraphQL surface of account recovery and e-mail verification: the directives, the argument
// validation (BAD_USER_INPUT with the field), the error codes. The flows themselves, with real mail,
// are tested end to end elsewhere; the rules are auth's tests.

const (
	requestResetQ  = `mutation($e: String!) { requestPasswordReset(email: $e) }`
	resetQ         = `mutation($i: ResetPasswordInput!) { resetPassword(input: $i) { accessToken } }`
	verifyQ        = `mutation($t: String!) { verifyEmail(token: $t) { id emailVerified } }`
	requestVerifyQ = `mutation { requestEmailVerification }`
	changeEmailQ   = `mutation($i: ChangeEmailInput!) { changeEmail(input: $i) }`
)

// A token of the right shape that was never issued.
const unknownToken = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

func TestRecoveryInputErrors(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		reg := e.Register("ann@example.com", pw)
		var me struct {
			EmailVerified bool `json:"emailVerified"`
		}
		r := e.Post(`{ me { emailVerified } }`, nil, apptest.Bearer(reg.AccessToken)...)
		apptest.WantOK(t, r)
		if r.Decode(t, "me", &me); me.EmailVerified {
			t.Fatal("a new account is verified")
		}

		for _, tc := range []struct {
			name, query string
			vars        map[string]any
			headers     []string
			code, field string
		}{
			{"malformed reset address", requestResetQ, map[string]any{"e": "not an address"}, nil, "BAD_USER_INPUT", "email"},
			{"weak new password", resetQ, map[string]any{"i": map[string]any{"token": unknownToken, "newPassword": "short"}}, nil, "BAD_USER_INPUT", "newPassword"},
			{"malformed reset token", resetQ, map[string]any{"i": map[string]any{"token": "garbage", "newPassword": "long enough"}}, nil, "INVALID_EMAIL_TOKEN", ""},
			{"malformed verification token", verifyQ, map[string]any{"t": "garbage"}, nil, "INVALID_EMAIL_TOKEN", ""},
			{"verification unauthenticated", requestVerifyQ, nil, nil, "UNAUTHENTICATED", ""},
			{"change unauthenticated", changeEmailQ, map[string]any{"i": map[string]any{"newEmail": "new@example.com", "currentPassword": pw}}, nil, "UNAUTHENTICATED", ""},
			{"malformed new address", changeEmailQ, map[string]any{"i": map[string]any{"newEmail": "nope", "currentPassword": pw}}, apptest.Bearer(reg.AccessToken), "BAD_USER_INPUT", "newEmail"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.Post(tc.query, tc.vars, tc.headers...)
				apptest.WantCode(t, r, tc.code, "")
				if tc.field != "" && r.Ext("field") != tc.field {
					t.Fatalf("field = %q, want %q: %s", r.Ext("field"), tc.field, r.Raw)
				}
			})
		}
	})
}

// REQUIRE_EMAIL_VERIFICATION: the right password of an unverified account is EMAIL_NOT_VERIFIED, a
// wrong one still INVALID_CREDENTIALS.
func TestRequireEmailVerificationLogin(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"REQUIRE_EMAIL_VERIFICATION": "true"}})
	e.Register("bea@example.com", pw)
	apptest.WantCode(t, e.Post(loginQ, loginVars("bea@example.com", "wrong password")), "INVALID_CREDENTIALS", "")
	apptest.WantCode(t, e.Post(loginQ, loginVars("nobody@example.com", pw)), "INVALID_CREDENTIALS", "")
	apptest.WantCode(t, e.Post(loginQ, loginVars("bea@example.com", pw)), "EMAIL_NOT_VERIFIED", "")
}

// The answers that need no mail read back: the same true for a known and an unknown address, the
// codes of changeEmail, and an unknown token.
func TestRecoveryAnswers(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		reg := e.Register("cal@example.com", pw)
		e.Register("taken@example.com", pw)
		known := e.Post(requestResetQ, map[string]any{"e": "Cal@Example.com"})
		unknown := e.Post(requestResetQ, map[string]any{"e": "nobody@example.com"})
		want := `{"data":{"requestPasswordReset":true}}`
		if known.Raw != want || unknown.Raw != want || known.Status != unknown.Status {
			t.Fatalf("known %d %s, unknown %d %s: want the same true", known.Status, known.Raw, unknown.Status, unknown.Raw)
		}
		apptest.WantCode(t, e.Post(resetQ, map[string]any{"i": map[string]any{"token": unknownToken, "newPassword": "long enough"}}), "INVALID_EMAIL_TOKEN", "")
		apptest.WantCode(t, e.Post(verifyQ, map[string]any{"t": unknownToken}), "INVALID_EMAIL_TOKEN", "")

		auth := apptest.Bearer(reg.AccessToken)
		if r := e.Post(requestVerifyQ, nil, auth...); r.Raw != `{"data":{"requestEmailVerification":true}}` {
			t.Fatalf("requestEmailVerification: %s", r.Raw)
		}
		change := func(email, password string) apptest.Response {
			return e.Post(changeEmailQ, map[string]any{"i": map[string]any{"newEmail": email, "currentPassword": password}}, auth...)
		}
		apptest.WantCode(t, change("new@example.com", "wrong password"), "INVALID_CREDENTIALS", "")
		apptest.WantCode(t, change("TAKEN@example.com", pw), "EMAIL_TAKEN", "")
		if r := change("cal@example.com", pw); r.Code() != "BAD_USER_INPUT" || r.Ext("field") != "newEmail" {
			t.Fatalf("the current address: %s", r.Raw)
		}
		if r := change("new@example.com", pw); r.Raw != `{"data":{"changeEmail":true}}` {
			t.Fatalf("changeEmail: %s", r.Raw)
		}
	})
}
