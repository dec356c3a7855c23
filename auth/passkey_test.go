package auth_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/auth/memstore"
	"gqlauth/internal/webauthntest"
	"gqlauth/models"
)

// flakyFactors is a memstore whose passkey reads and counter writes fail as a store does while the
// database is unreachable, when told to.
type flakyFactors struct {
	*memstore.Store
	lookupDown, useDown bool
}

func (s *flakyFactors) PasskeyByCredentialID(ctx context.Context, id []byte) (*models.Passkey, error) {
	if s.lookupDown {
		return nil, fmt.Errorf("select: %w: dial tcp: connection refused", auth.ErrUnavailable)
	}
	return s.Store.PasskeyByCredentialID(ctx, id)
}

func (s *flakyFactors) UsePasskey(ctx context.Context, id string, oldCount, newCount int64, credential string, at time.Time) error {
	if s.useDown {
		return fmt.Errorf("update: %w: dial tcp: connection refused", auth.ErrUnavailable)
	}
	return s.Store.UsePasskey(ctx, id, oldCount, newCount, credential, at)
}

// The store failing inside a passkey ceremony (in go-webauthn's credential lookup, or when the sign
// counter is written) is ErrUnavailable, never ErrInvalidPasskey: the client should retry, not be told
// its passkey is bad.
func TestPasskeyStoreFailureIsUnavailable(t *testing.T) {
	t.Parallel()
	const origin = "http://localhost:3000"
	st := &flakyFactors{Store: memstore.New()}
	svc, err := auth.NewService(st, testTokens(), auth.Options{
		RefreshTokenTTL: time.Hour, Password: cheapParams, Logger: slog.New(slog.DiscardHandler), Factors: st,
		WebAuthn: auth.WebAuthnOptions{RPID: "localhost", RPOrigins: []string{origin}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, c := t.Context(), auth.Client{IP: "192.0.2.1"}
	pair, err := svc.Register(ctx, "ann@example.com", "correct horse battery", c)
	if err != nil {
		t.Fatal(err)
	}
	p := &auth.Principal{UserID: pair.User.ID, SessionID: pair.SessionID}
	options, err := svc.BeginPasskeyRegistration(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	a := webauthntest.New(origin)
	cred, _, err := a.Register(options)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.FinishPasskeyRegistration(ctx, p, cred, ""); err != nil {
		t.Fatal(err)
	}
	login := func() error {
		id, options, err := svc.BeginPasskeyLogin(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		assertion, err := a.Assert(options)
		if err != nil {
			t.Fatal(err)
		}
		_, err = svc.FinishPasskeyLogin(ctx, id, assertion, c)
		return err
	}
	st.lookupDown = true
	if err := login(); !errors.Is(err, auth.ErrUnavailable) || errors.Is(err, auth.ErrInvalidPasskey) {
		t.Fatalf("credential lookup failing: %v, want ErrUnavailable", err)
	}
	st.lookupDown, st.useDown = false, true
	if err := login(); !errors.Is(err, auth.ErrUnavailable) || errors.Is(err, auth.ErrInvalidPasskey) {
		t.Fatalf("counter write failing: %v, want ErrUnavailable", err)
	}
	st.useDown = false
	if err := login(); err != nil {
		t.Fatalf("login once the store is back: %v", err)
	}
}
