package webauthntest_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"gqlauth/internal/webauthntest"
)

const origin = "http://localhost:3000"

type user struct{ creds []webauthn.Credential }

func (u *user) WebAuthnID() []byte                         { return []byte("4b8f3a58-5a4b-4bd0-9d0e-0d4a7ad5b1a2") }
func (u *user) WebAuthnName() string                       { return "ann@example.com" }
func (u *user) WebAuthnDisplayName() string                { return "ann@example.com" }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func relyingParty(t *testing.T) *webauthn.WebAuthn {
	t.Helper()
	wa, err := webauthn.New(&webauthn.Config{
		RPID: "localhost", RPDisplayName: "test", RPOrigins: []string{origin},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementRequired, RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification: protocol.VerificationRequired,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return wa
}

// register makes a credential with the authenticator and has go-webauthn verify it.
func register(t *testing.T, wa *webauthn.WebAuthn, a *webauthntest.Authenticator, u *user, opts ...webauthntest.Option) (*webauthn.Credential, error) {
	t.Helper()
	creation, session, err := wa.BeginRegistration(u, webauthn.WithExclusions(webauthn.Credentials(u.creds).CredentialDescriptors()))
	if err != nil {
		t.Fatal(err)
	}
	options, _ := json.Marshal(creation.Response)
	resp, _, err := a.Register(options, opts...)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(resp)
	if err != nil {
		return nil, err
	}
	return wa.CreateCredential(u, *session, parsed)
}

// login makes an assertion with the authenticator and has go-webauthn verify it.
func login(t *testing.T, wa *webauthn.WebAuthn, a *webauthntest.Authenticator, u *user, opts ...webauthntest.Option) (*webauthn.Credential, error) {
	t.Helper()
	assertion, session, err := wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		t.Fatal(err)
	}
	options, _ := json.Marshal(assertion.Response)
	resp, err := a.Assert(options, opts...)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(resp)
	if err != nil {
		return nil, err
	}
	_, cred, err := wa.ValidatePasskeyLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
		if string(userHandle) != string(u.WebAuthnID()) {
			return nil, errors.New("unknown user")
		}
		return u, nil
	}, *session, parsed)
	return cred, err
}

// The authenticator's responses are what go-webauthn accepts, and each misbehaviour is refused.
func TestAuthenticatorAgainstGoWebAuthn(t *testing.T) {
	t.Parallel()
	wa := relyingParty(t)
	a := webauthntest.New(origin)
	u := &user{}
	cred, err := register(t, wa, a, u)
	if err != nil {
		t.Fatalf("registration refused: %v", err)
	}
	if !cred.Flags.UserVerified || !cred.Flags.UserPresent || cred.AttestationFormat != "none" {
		t.Fatalf("credential = %+v", cred)
	}
	u.creds = append(u.creds, *cred)
	if _, err := register(t, wa, a, u); !errors.Is(err, webauthntest.ErrExcluded) {
		t.Fatalf("registration with an excluded credential: %v, want ErrExcluded", err)
	}

	got, err := login(t, wa, a, u)
	if err != nil {
		t.Fatalf("login refused: %v", err)
	}
	if got.Authenticator.SignCount != 1 || got.Authenticator.CloneWarning {
		t.Fatalf("after the first login: %+v", got.Authenticator)
	}
	u.creds[0] = *got
	if got, err = login(t, wa, a, u); err != nil || got.Authenticator.SignCount != 2 {
		t.Fatalf("second login: %+v, %v", got, err)
	}
	u.creds[0] = *got

	for name, opt := range map[string]webauthntest.Option{
		"wrong origin":    webauthntest.WithOrigin("http://evil.example"),
		"no UV":           webauthntest.WithoutUserVerification(),
		"bad signature":   webauthntest.WithBadSignature(),
		"other user":      webauthntest.WithUserHandle([]byte("someone else")),
		"other challenge": webauthntest.WithChallenge("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
	} {
		if _, err := login(t, wa, a, u, opt); err == nil {
			t.Errorf("%s: login accepted", name)
		}
	}
	// A counter that does not go up is accepted by the library with a clone warning.
	got, err = login(t, wa, a, u, webauthntest.WithCounter(1))
	if err != nil || !got.Authenticator.CloneWarning {
		t.Fatalf("counter going back: %+v, %v; want a clone warning", got, err)
	}

	for name, opt := range map[string]webauthntest.Option{
		"registration from another origin": webauthntest.WithOrigin("http://evil.example"),
		"registration without UV":          webauthntest.WithoutUserVerification(),
	} {
		if _, err := register(t, wa, a, &user{}, opt); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
