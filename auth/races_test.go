package auth_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/internal/testdb"
	"gqlauth/models"
	"gqlauth/password"
	"gqlauth/store"
)

// Races between requests of one account (issue 11, items 4 and 5). Each runs many times on SQLite and
// Postgres; run the package with -race.

const racePassword = "correct horse battery"

// testClock is a fake clock for the service.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Now().UTC().Truncate(time.Millisecond)} }

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *testClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// liveTokens counts the refresh tokens of a session that could still be exchanged.
func liveTokens(t *testing.T, db *store.DB, sessionID string) int64 {
	t.Helper()
	var n int64
	if err := db.Gorm().Model(&models.RefreshToken{}).
		Where("session_id = ? AND rotated_at IS NULL AND revoked_at IS NULL", sessionID).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func principal(t *testing.T, svc *auth.Service, p *auth.Pair) *auth.Principal {
	t.Helper()
	pr, err := svc.Authenticate(context.Background(), p.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

// Within REFRESH_REUSE_GRACE a replayed rotated token minted a sibling and left the successor live:
// 16 concurrent refreshes gave 16 live chains in one session, and reuse detection saw none of them.
// Now a session has at most one live refresh token, whatever interleaves.
func TestGraceRetriesNeverForkASession(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		clock := newTestClock()
		svc, db := newTestService(t, dsn, auth.Options{RefreshReuseGrace: 10 * time.Second, Now: clock.Now})
		ctx := context.Background()
		for round := range 10 {
			p0, err := svc.Register(ctx, "u"+string(rune('a'+round))+"@example.com", racePassword, auth.Client{})
			if err != nil {
				t.Fatal(err)
			}
			p1, err := svc.Refresh(ctx, p0.RefreshToken, auth.Client{})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for i := range 17 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tok := p0.RefreshToken // replays within the grace
					if i == 0 {
						tok = p1.RefreshToken // and the legitimate successor
					}
					if _, err := svc.Refresh(ctx, tok, auth.Client{}); err != nil && !errors.Is(err, auth.ErrRefreshTokenInvalid) {
						t.Errorf("refresh: %v", err)
					}
				}()
			}
			wg.Wait()
			if n := liveTokens(t, db, p0.SessionID); n != 1 {
				t.Fatalf("round %d: %d live refresh tokens in one session after racing grace retries; want 1", round, n)
			}
		}
	})
}

// A thief who replays a rotated token within the grace must not get a chain of its own: the victim's
// next refresh after the grace is then reuse, and the whole session (the thief's tokens too) ends.
func TestGraceReplayIsDetectedLater(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		clock := newTestClock()
		svc, _ := newTestService(t, dsn, auth.Options{RefreshReuseGrace: 10 * time.Second, Now: clock.Now})
		ctx := context.Background()
		p0, err := svc.Register(ctx, "victim@example.com", racePassword, auth.Client{})
		if err != nil {
			t.Fatal(err)
		}
		victim, err := svc.Refresh(ctx, p0.RefreshToken, auth.Client{}) // the victim rotates
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(5 * time.Second)
		thief, err := svc.Refresh(ctx, p0.RefreshToken, auth.Client{}) // a copy of p0, replayed within the grace
		if err != nil {
			t.Fatalf("a retry within the grace is still answered: %v", err)
		}
		clock.Advance(time.Minute)
		if _, err := svc.Refresh(ctx, victim.RefreshToken, auth.Client{}); !errors.Is(err, auth.ErrRefreshTokenInvalid) {
			t.Fatalf("the victim's token was left live beside the thief's chain: %v", err)
		}
		if _, err := svc.Refresh(ctx, thief.RefreshToken, auth.Client{}); !errors.Is(err, auth.ErrRefreshTokenInvalid) {
			t.Fatalf("the thief's chain survived reuse detection: %v", err)
		}
		if _, err := svc.Authenticate(ctx, thief.AccessToken); !errors.Is(err, auth.ErrSessionRevoked) {
			t.Fatalf("the thief's access token: %v, want ErrSessionRevoked", err)
		}
	})
}

// Tokens retired by changePassword are not covered by the grace: a copy taken before the change is
// worthless at once, also when it was rotated just before the change.
func TestChangePasswordIsNotCoveredByTheGrace(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		clock := newTestClock()
		svc, db := newTestService(t, dsn, auth.Options{RefreshReuseGrace: 10 * time.Second, Now: clock.Now})
		ctx := context.Background()
		p0, err := svc.Register(ctx, "carol@example.com", racePassword, auth.Client{})
		if err != nil {
			t.Fatal(err)
		}
		p1, err := svc.Refresh(ctx, p0.RefreshToken, auth.Client{})
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
		changed, err := svc.ChangePassword(ctx, principal(t, svc, p1), racePassword, "a brand new password", auth.Client{})
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
		for name, tok := range map[string]string{"rotated before the change": p0.RefreshToken, "live at the change": p1.RefreshToken} {
			if _, err := svc.Refresh(ctx, tok, auth.Client{}); !errors.Is(err, auth.ErrRefreshTokenInvalid) {
				t.Fatalf("%s token after changePassword: %v, want ErrRefreshTokenInvalid", name, err)
			}
		}
		if n := liveTokens(t, db, p0.SessionID); n != 1 {
			t.Fatalf("%d live tokens after changePassword, want 1", n)
		}
		if _, err := svc.Refresh(ctx, changed.RefreshToken, auth.Client{}); err != nil {
			t.Fatalf("the pair changePassword returned: %v", err)
		}
	})
}

// pausingStore holds a login between its password check and its writes until release is closed, so
// a test can commit a password change in exactly that window.
type pausingStore struct {
	auth.Store
	reached chan struct{} // closed when the held call arrives
	release chan struct{}
	hold    string // "CreateSession" or "SetPasswordHash"
	once    sync.Once
}

func (s *pausingStore) pause(name string) {
	if name != s.hold {
		return
	}
	s.once.Do(func() { close(s.reached) })
	<-s.release
}

func (s *pausingStore) CreateSession(ctx context.Context, sess *models.Session, rt *models.RefreshToken, c auth.SessionCheck) ([]string, time.Time, error) {
	s.pause("CreateSession")
	return s.Store.CreateSession(ctx, sess, rt, c)
}

func (s *pausingStore) SetPasswordHash(ctx context.Context, userID, oldHash, newHash string, at time.Time) error {
	s.pause("SetPasswordHash")
	return s.Store.SetPasswordHash(ctx, userID, oldHash, newHash, at)
}

// A login verified the password, then a changePassword committed, then the login stored its session:
// the session made with the old password survived the change (8 of 8 trials). And a login that
// rehashed the password after a parameter upgrade wrote the old password back over the new one.
func TestPasswordChangeDuringLogin(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		for _, hold := range []string{"CreateSession", "SetPasswordHash"} {
			t.Run(hold, func(t *testing.T) {
				ctx := context.Background()
				owner, db := newTestService(t, dsn, auth.Options{})
				email := "dana-" + hold + "@example.com"
				first, err := owner.Register(ctx, email, racePassword, auth.Client{})
				if err != nil {
					t.Fatal(err)
				}
				ps := &pausingStore{Store: db, hold: hold, reached: make(chan struct{}), release: make(chan struct{})}
				// A second instance with stronger hashing parameters: its login rehashes.
				upgraded := password.Params{Memory: 128, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
				other, err := auth.NewService(ps, testTokens(), auth.Options{RefreshTokenTTL: time.Hour, Password: upgraded})
				if err != nil {
					t.Fatal(err)
				}
				type result struct {
					p   *auth.Pair
					err error
				}
				done := make(chan result, 1)
				go func() {
					p, err := other.Login(ctx, email, racePassword, auth.Client{})
					done <- result{p, err}
				}()
				<-ps.reached
				if _, err := owner.ChangePassword(ctx, principal(t, owner, first), racePassword, "the new password", auth.Client{}); err != nil {
					t.Fatal(err)
				}
				close(ps.release)
				r := <-done
				if r.err == nil {
					if _, err := owner.Authenticate(ctx, r.p.AccessToken); !errors.Is(err, auth.ErrSessionRevoked) {
						t.Fatalf("a session opened with the old password outlived the password change (authenticate: %v)", err)
					}
				} else if !errors.Is(r.err, auth.ErrInvalidCredentials) {
					t.Fatalf("login: %v", r.err)
				}
				if _, err := owner.Login(ctx, email, racePassword, auth.Client{}); !errors.Is(err, auth.ErrInvalidCredentials) {
					t.Fatalf("the old password works again after the change: %v", err)
				}
				if _, err := owner.Login(ctx, email, "the new password", auth.Client{}); err != nil {
					t.Fatalf("the new password: %v", err)
				}
			})
		}
	})
}

// The same race without any hook, many times: whatever the interleaving, once both are done no
// session but the one changePassword kept is live.
func TestPasswordChangeRacesLogins(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		// Hashing of a few milliseconds widens the window between a login's check and its insert.
		params := password.Params{Memory: 4 << 10, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
		svc, _ := newTestService(t, dsn, auth.Options{Password: params})
		ctx := context.Background()
		for round := range 12 {
			email := "erin" + string(rune('a'+round)) + "@example.com"
			first, err := svc.Register(ctx, email, racePassword, auth.Client{})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			logins := make([]*auth.Pair, 4)
			for i := range logins {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p, err := svc.Login(ctx, email, racePassword, auth.Client{})
					if err != nil && !errors.Is(err, auth.ErrInvalidCredentials) {
						t.Errorf("login: %v", err)
					}
					logins[i] = p
				}()
			}
			kept, err := svc.ChangePassword(ctx, principal(t, svc, first), racePassword, "the new password", auth.Client{})
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			list, err := svc.Sessions(ctx, principal(t, svc, kept))
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 1 || list[0].ID != first.SessionID {
				t.Fatalf("round %d: %d live sessions after the change; want only the one that changed the password", round, len(list))
			}
		}
	})
}
