package auth_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/internal/testdb"
	"gqlauth/models"
	"gqlauth/ratelimit"
)

// downStore fails reads and writes as a store does while the database is unreachable.
type downStore struct {
	auth.Store
	down bool
}

func (s *downStore) UserByEmail(ctx context.Context, email string) (*models.User, error) {
	if s.down {
		return nil, fmt.Errorf("select: %w: dial tcp: connection refused", auth.ErrUnavailable)
	}
	return s.Store.UserByEmail(ctx, email)
}

func (s *downStore) CreateUser(ctx context.Context, u *models.User, sess *models.Session, rt *models.RefreshToken) error {
	if s.down {
		return fmt.Errorf("begin: %w: dial tcp: connection refused", auth.ErrUnavailable)
	}
	return s.Store.CreateUser(ctx, u, sess, rt)
}

// Attempts the service could not judge because the database was down are taken back from the rate
// limits: a client retrying through an outage is not locked out once the database returns.
func TestOutageAttemptsDoNotCount(t *testing.T) {
	t.Parallel()
	_, db := newTestService(t, testdb.SQLite(t), auth.Options{})
	store := &downStore{Store: db}
	two := ratelimit.Rate{Limit: 2, Window: time.Hour}
	svc, err := auth.NewService(store, testTokens(), auth.Options{
		RefreshTokenTTL: time.Hour, Password: cheapParams, Logger: slog.New(slog.DiscardHandler),
		Limiter: ratelimit.NewMemory(nil), LoginRate: two, LoginIPRate: two, RegisterRate: two,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, client := context.Background(), auth.Client{IP: "192.0.2.7"}
	if _, err := svc.Register(ctx, "carol@example.com", "correct horse battery", client); err != nil {
		t.Fatal(err)
	}
	store.down = true
	for range 5 {
		if _, err := svc.Login(ctx, "carol@example.com", "wrong password here", client); !errors.Is(err, auth.ErrUnavailable) {
			t.Fatalf("login during the outage: %v, want ErrUnavailable", err)
		}
		if _, err := svc.Register(ctx, "dave@example.com", "correct horse battery", client); !errors.Is(err, auth.ErrUnavailable) {
			t.Fatalf("register during the outage: %v, want ErrUnavailable", err)
		}
	}
	store.down = false
	if _, err := svc.Login(ctx, "carol@example.com", "correct horse battery", client); err != nil {
		t.Fatalf("login after the outage: %v", err)
	}
	if _, err := svc.Register(ctx, "dave@example.com", "correct horse battery", client); err != nil {
		t.Fatalf("register after the outage: %v", err)
	}
}
