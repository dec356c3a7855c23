// Package auth holds the authentication rules: registration and login with argon2id passwords,
// sessions with rotating refresh tokens and reuse detection, access-token authentication and
// revocation. It knows nothing of GraphQL or HTTP routing; persistence is behind the Store interface.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"gqlauth/models"
	"gqlauth/password"
	"gqlauth/ratelimit"
	"gqlauth/token"
)

// Password length limits, in characters. The upper bound keeps hashing cost bounded.
const (
	MinPasswordLength = 8
	MaxPasswordLength = 256
	maxEmailLength    = 254
)

// Options configure a Service.
type Options struct {
	RefreshTokenTTL   time.Duration // a session expires this long after its last refresh
	RefreshReuseGrace time.Duration // a rotated token presented again within this is a retry, not theft
	Password          password.Params
	// RevocationPollInterval is how often revocations made by other instances are read.
	RevocationPollInterval time.Duration
	Now                    func() time.Time // nil means time.Now
	Logger                 *slog.Logger     // nil means slog.Default()

	// Limiter counts attempts for the rates below; nil disables rate limiting.
	Limiter ratelimit.Limiter
	// LoginRate limits failed logins (and failed changePassword checks) per account and client IP;
	// LoginIPRate limits failed logins per client IP across accounts; RegisterRate limits
	// registrations per client IP. A zero Rate is unlimited.
	LoginRate, LoginIPRate, RegisterRate ratelimit.Rate
	// HashConcurrency bounds how many argon2id computations run at once (each takes Password.Memory
	// KiB), so a login flood queues instead of exhausting memory. 0 means runtime.NumCPU().
	HashConcurrency int
	// OnEvent, if set, is called after every authentication event (for metrics). It must be fast.
	OnEvent func(context.Context, Event)
	// Broadcaster, if set, spreads revocations to other instances at once (Redis pub/sub).
	Broadcaster Broadcaster
}

// Service implements the authentication rules. It is safe for concurrent use.
type Service struct {
	store     Store
	tokens    *token.Issuer
	opts      Options
	now       func() time.Time
	log       *slog.Logger
	revs      *revocations
	hashSlots chan struct{}

	broadcastsReceived atomic.Int64
	users              userCache
	// dummyHash is verified against when the e-mail is unknown, so that a login for an unknown
	// e-mail costs the same as one with a wrong password and timing does not reveal which accounts exist.
	dummyHash string
}

// NewService returns a Service. Call Start to keep the revocation cache in sync with other instances.
func NewService(store Store, tokens *token.Issuer, opts Options) (*Service, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.RevocationPollInterval <= 0 {
		opts.RevocationPollInterval = time.Second
	}
	if opts.HashConcurrency <= 0 {
		opts.HashConcurrency = runtime.NumCPU()
	}
	dummy, err := password.Hash("dummy password for unknown e-mails", opts.Password)
	if err != nil {
		return nil, err
	}
	// Microseconds: what Postgres stores, so a time read back equals the one written.
	now := func() time.Time { return opts.Now().UTC().Truncate(time.Microsecond) }
	return &Service{
		store:     store,
		tokens:    tokens,
		opts:      opts,
		now:       now,
		log:       opts.Logger,
		revs:      newRevocations(store, opts.Broadcaster, now, opts.RevocationPollInterval, tokens.TTL()+time.Minute),
		dummyHash: dummy,
		hashSlots: make(chan struct{}, opts.HashConcurrency),
	}, nil
}

// Start loads recent revocations and keeps polling for new ones until ctx ends. Until the first
// successful poll, authentication checks each session in the database.
func (s *Service) Start(ctx context.Context) {
	if b := s.opts.Broadcaster; b != nil {
		go b.Subscribe(ctx, func(ids []string) {
			s.revs.record(ids, s.now())
			s.broadcastsReceived.Add(int64(len(ids)))
		})
	}
	if err := s.revs.sync(ctx); err != nil {
		s.log.Warn("initial revocation sync failed", "err", err)
	}
	go s.revs.run(ctx, s.log)
}

// BroadcastRevocations reports how many revoked session ids this instance has received through the
// Broadcaster (for tests and metrics).
func (s *Service) BroadcastRevocations() int64 { return s.broadcastsReceived.Load() }

// Pair is a freshly issued access token and refresh token.
type Pair struct {
	AccessToken           string
	AccessTokenExpiresAt  time.Time
	ExpiresIn             int // seconds
	RefreshToken          string
	RefreshTokenExpiresAt time.Time
	SessionID             string
	User                  *models.User
}

// Register creates an account and its first session. It returns a *ValidationError for a bad e-mail
// or password and ErrEmailTaken when the e-mail is registered.
func (s *Service) Register(ctx context.Context, email, pw string, c Client) (*Pair, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if err := ValidatePassword("password", pw); err != nil {
		return nil, err
	}
	if err := s.limit(ctx, "register:ip:"+c.IP, s.opts.RegisterRate); err != nil {
		s.emit(ctx, Event{Kind: EventRegister, Outcome: OutcomeRateLimited, IP: c.IP})
		return nil, err
	}
	hash, err := s.hash(ctx, pw)
	if err != nil {
		s.takeBack(ctx, err, attempt{"register:ip:" + c.IP, s.opts.RegisterRate})
		return nil, err
	}
	now := s.now()
	u := &models.User{ID: uuid.NewString(), Email: email, PasswordHash: hash, Role: models.RoleUser, CreatedAt: now, UpdatedAt: now}
	sess, rt, raw, err := s.newSession(u, c, now)
	if err != nil {
		return nil, err
	}
	if err := s.store.CreateUser(ctx, u, sess, rt); err != nil {
		if errors.Is(err, ErrEmailTaken) {
			s.emit(ctx, Event{Kind: EventRegister, Outcome: OutcomeFailed, IP: c.IP})
		}
		s.takeBack(ctx, err, attempt{"register:ip:" + c.IP, s.opts.RegisterRate})
		return nil, fmt.Errorf("register: %w", err)
	}
	s.emit(ctx, Event{Kind: EventRegister, Outcome: OutcomeOK, UserID: u.ID, SessionID: sess.ID, IP: c.IP})
	return s.pair(u, sess.ID, raw, sess.ExpiresAt)
}

// Login checks an e-mail and password and opens a new session. Unknown e-mails and wrong passwords
// both return ErrInvalidCredentials after the same amount of hashing work.
func (s *Service) Login(ctx context.Context, email, pw string, c Client) (*Pair, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if utf8.RuneCountInString(pw) > MaxPasswordLength {
		// Refused before hashing, like at registration, so a huge password cannot buy CPU time.
		return nil, &ValidationError{Field: "password", Message: fmt.Sprintf("must be at most %d characters", MaxPasswordLength)}
	}
	// Attempts are counted before the password is looked at, and an address or account over its limit
	// is refused without checking it (even when it is right), so guessing cannot go faster than the
	// limit. Unknown e-mails are counted exactly like known ones: the limiter reveals nothing either.
	accountKey, ipKey := loginAccountKey(email, c.IP), "login:ip:"+c.IP
	if err := s.limit(ctx, accountKey, s.opts.LoginRate); err != nil {
		s.emit(ctx, Event{Kind: EventLogin, Outcome: OutcomeRateLimited, IP: c.IP})
		return nil, err
	}
	if err := s.limit(ctx, ipKey, s.opts.LoginIPRate); err != nil {
		s.emit(ctx, Event{Kind: EventLogin, Outcome: OutcomeRateLimited, IP: c.IP})
		return nil, err
	}
	u, err := s.store.UserByEmail(ctx, email)
	if errors.Is(err, ErrNotFound) {
		_, _, _ = s.verify(ctx, pw, s.dummyHash)
		s.emit(ctx, Event{Kind: EventLogin, Outcome: OutcomeFailed, IP: c.IP})
		return nil, ErrInvalidCredentials
	}
	if err != nil {
		s.takeBack(ctx, err, attempt{accountKey, s.opts.LoginRate}, attempt{ipKey, s.opts.LoginIPRate})
		return nil, fmt.Errorf("login: %w", err)
	}
	ok, rehash, err := s.verify(ctx, pw, u.PasswordHash)
	if err != nil {
		s.takeBack(ctx, err, attempt{accountKey, s.opts.LoginRate}, attempt{ipKey, s.opts.LoginIPRate})
		return nil, fmt.Errorf("login: stored hash of user %s: %w", u.ID, err)
	}
	if !ok {
		s.emit(ctx, Event{Kind: EventLogin, Outcome: OutcomeFailed, UserID: u.ID, IP: c.IP})
		return nil, ErrInvalidCredentials
	}
	// Only failures count: a success clears the account's counter and takes back its IP attempt.
	s.forgive(ctx, accountKey, ipKey)
	now := s.now()
	if rehash {
		// The configured cost changed since this hash was made: upgrade it while we know the password.
		if h, err := s.hash(ctx, pw); err == nil {
			s.users.drop(u.ID)
			if err := s.store.SetPasswordHash(ctx, u.ID, h, now); err != nil {
				s.log.Warn("rehash failed", "user_id", u.ID, "err", err)
			}
		}
	}
	sess, rt, raw, err := s.newSession(u, c, now)
	if err != nil {
		return nil, err
	}
	if err := s.store.CreateSession(ctx, sess, rt); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	s.emit(ctx, Event{Kind: EventLogin, Outcome: OutcomeOK, UserID: u.ID, SessionID: sess.ID, IP: c.IP})
	return s.pair(u, sess.ID, raw, sess.ExpiresAt)
}

// Refresh exchanges a refresh token for a new pair in the same session and retires the token.
// A token retired longer than the reuse grace ago is treated as stolen: the whole session is revoked.
// All failures are ErrRefreshTokenInvalid.
func (s *Service) Refresh(ctx context.Context, raw string, c Client) (*Pair, error) {
	hash, ok := token.HashRefreshToken(raw)
	if !ok {
		return nil, ErrRefreshTokenInvalid
	}
	// Two passes at most: when another request rotates the same token between our read and our
	// write, the second pass sees it rotated and applies the grace/reuse rule.
	for range 2 {
		rt, err := s.store.RefreshTokenByHash(ctx, hash)
		if errors.Is(err, ErrNotFound) {
			return nil, ErrRefreshTokenInvalid
		}
		if err != nil {
			return nil, fmt.Errorf("refresh: %w", err)
		}
		now := s.now()
		sess := rt.Session
		if sess == nil || rt.User == nil || sess.RevokedAt != nil || rt.RevokedAt != nil ||
			!now.Before(sess.ExpiresAt) || !now.Before(rt.ExpiresAt) {
			return nil, ErrRefreshTokenInvalid
		}
		retry := rt.RotatedAt != nil
		if retry && !now.Before(rt.RotatedAt.Add(s.opts.RefreshReuseGrace)) {
			ids, err := s.store.RevokeSessions(ctx, SessionFilter{SessionID: sess.ID}, now)
			if err != nil {
				return nil, fmt.Errorf("refresh: revoke reused session: %w", err)
			}
			s.revs.add(ctx, ids, now, s.log)
			s.emit(ctx, Event{Kind: EventReuseDetected, Outcome: "session_revoked", UserID: rt.UserID, SessionID: sess.ID, IP: c.IP, Revoked: len(ids)})
			return nil, ErrRefreshTokenInvalid
		}
		newRaw, newHash, err := token.NewRefreshToken()
		if err != nil {
			return nil, err
		}
		expires := now.Add(s.opts.RefreshTokenTTL)
		parent := rt.ID
		next := &models.RefreshToken{TokenHash: newHash, SessionID: sess.ID, UserID: rt.UserID, ParentID: &parent, CreatedAt: now, ExpiresAt: expires}
		err = s.store.Rotate(ctx, Rotation{
			SessionID: sess.ID, OldID: rt.ID, RetireOld: !retry, New: next, Now: now, ExpiresAt: expires,
			UserAgent: optional(c.UserAgent, 512), IP: optional(c.IP, 64),
		})
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("refresh: %w", err)
		}
		s.emit(ctx, Event{Kind: EventRefresh, Outcome: OutcomeOK, UserID: rt.UserID, SessionID: sess.ID, IP: c.IP})
		return s.pair(rt.User, sess.ID, newRaw, expires)
	}
	return nil, ErrRefreshTokenInvalid
}

// Logout revokes the session of a refresh token. It succeeds when that session is already revoked or
// expired, and returns ErrRefreshTokenInvalid only for a token that was never issued.
func (s *Service) Logout(ctx context.Context, raw string) error {
	hash, ok := token.HashRefreshToken(raw)
	if !ok {
		return ErrRefreshTokenInvalid
	}
	rt, err := s.store.RefreshTokenByHash(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return ErrRefreshTokenInvalid
	}
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return s.revoke(ctx, EventLogout, rt.UserID, SessionFilter{SessionID: rt.SessionID})
}

// LogoutSession revokes the caller's current session.
func (s *Service) LogoutSession(ctx context.Context, p *Principal) error {
	return s.revoke(ctx, EventLogout, p.UserID, SessionFilter{UserID: p.UserID, SessionID: p.SessionID})
}

// LogoutAll revokes every live session of the caller and returns how many it revoked.
func (s *Service) LogoutAll(ctx context.Context, p *Principal) (int, error) {
	now := s.now()
	ids, err := s.store.RevokeSessions(ctx, SessionFilter{UserID: p.UserID}, now)
	if err != nil {
		return 0, fmt.Errorf("logoutAll: %w", err)
	}
	s.revs.add(ctx, ids, now, s.log)
	s.emit(ctx, Event{Kind: EventLogoutAll, Outcome: OutcomeOK, UserID: p.UserID, SessionID: p.SessionID, Revoked: len(ids)})
	return len(ids), nil
}

// RevokeSession revokes one of the caller's sessions. It returns false, and reveals nothing, when the
// caller has no session with that id; true when it is revoked (now or before).
func (s *Service) RevokeSession(ctx context.Context, p *Principal, id string) (bool, error) {
	sess, err := s.store.SessionByID(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && sess.UserID != p.UserID) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("revokeSession: %w", err)
	}
	if err := s.revoke(ctx, EventRevokeSession, p.UserID, SessionFilter{UserID: p.UserID, SessionID: id}); err != nil {
		return false, err
	}
	return true, nil
}

func (s *Service) revoke(ctx context.Context, event EventKind, userID string, f SessionFilter) error {
	now := s.now()
	ids, err := s.store.RevokeSessions(ctx, f, now)
	if err != nil {
		return fmt.Errorf("%s: %w", event, err)
	}
	s.revs.add(ctx, ids, now, s.log)
	s.emit(ctx, Event{Kind: event, Outcome: OutcomeOK, UserID: userID, SessionID: f.SessionID, Revoked: len(ids)})
	return nil
}

// ChangePassword checks the current password, stores the new one, revokes every other session of the
// caller and returns a fresh pair for the current session. It returns ErrInvalidCredentials for a
// wrong current password and a *ValidationError for a new password that is not allowed.
func (s *Service) ChangePassword(ctx context.Context, p *Principal, current, next string, c Client) (*Pair, error) {
	if err := ValidatePassword("newPassword", next); err != nil {
		return nil, err
	}
	if utf8.RuneCountInString(current) > MaxPasswordLength {
		return nil, ErrInvalidCredentials
	}
	u, err := s.store.UserByID(ctx, p.UserID)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrSessionRevoked
	}
	if err != nil {
		return nil, fmt.Errorf("changePassword: %w", err)
	}
	// A stolen access token must not become a password oracle: wrong current passwords count against
	// the same per-account budget as failed logins.
	accountKey := loginAccountKey(u.Email, c.IP)
	if err := s.limit(ctx, accountKey, s.opts.LoginRate); err != nil {
		s.emit(ctx, Event{Kind: EventChangePassword, Outcome: OutcomeRateLimited, UserID: u.ID, SessionID: p.SessionID, IP: c.IP})
		return nil, err
	}
	ok, _, err := s.verify(ctx, current, u.PasswordHash)
	if err != nil {
		return nil, fmt.Errorf("changePassword: stored hash of user %s: %w", u.ID, err)
	}
	if !ok {
		s.emit(ctx, Event{Kind: EventChangePassword, Outcome: OutcomeFailed, UserID: u.ID, SessionID: p.SessionID, IP: c.IP})
		return nil, ErrInvalidCredentials
	}
	s.forgive(ctx, accountKey, "")
	hash, err := s.hash(ctx, next)
	if err != nil {
		return nil, err
	}
	raw, tokHash, err := token.NewRefreshToken()
	if err != nil {
		return nil, err
	}
	now := s.now()
	expires := now.Add(s.opts.RefreshTokenTTL)
	ids, err := s.store.ChangePassword(ctx, PasswordChange{
		UserID: u.ID, Hash: hash, KeepSessionID: p.SessionID, Now: now, ExpiresAt: expires,
		New: &models.RefreshToken{TokenHash: tokHash, SessionID: p.SessionID, UserID: u.ID, CreatedAt: now, ExpiresAt: expires},
	})
	if errors.Is(err, ErrConflict) {
		return nil, ErrSessionRevoked
	}
	if err != nil {
		return nil, fmt.Errorf("changePassword: %w", err)
	}
	s.revs.add(ctx, ids, now, s.log)
	s.users.drop(u.ID)
	u.PasswordHash = hash
	s.emit(ctx, Event{Kind: EventChangePassword, Outcome: OutcomeOK, UserID: u.ID, SessionID: p.SessionID, IP: c.IP, Revoked: len(ids)})
	return s.pair(u, p.SessionID, raw, expires)
}

// Sessions lists the caller's live sessions, newest first.
func (s *Service) Sessions(ctx context.Context, p *Principal) ([]models.Session, error) {
	list, err := s.store.Sessions(ctx, p.UserID, s.now())
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	return list, nil
}

// User returns a user by id, or nil when there is none.
func (s *Service) User(ctx context.Context, id string) (*models.User, error) {
	u, err := s.store.UserByID(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("user: %w", err)
	}
	return u, nil
}

// Me returns the caller's account. A caller whose account is gone gets ErrSessionRevoked.
// It reads through a short-lived cache (see userCache).
func (s *Service) Me(ctx context.Context, p *Principal) (*models.User, error) {
	now := s.now()
	if u, ok := s.users.get(p.UserID, now); ok {
		return u, nil
	}
	u, err := s.User(ctx, p.UserID)
	if err == nil && u == nil {
		return nil, ErrSessionRevoked
	}
	if err == nil {
		s.users.put(u, now)
	}
	return u, err
}

// Authenticate verifies an access token and checks that its session is not revoked. It returns
// ErrTokenInvalid, ErrTokenExpired or ErrSessionRevoked, or an internal error when the revocation
// check could not be made.
func (s *Service) Authenticate(ctx context.Context, raw string) (*Principal, error) {
	claims, err := s.tokens.Verify(raw)
	if errors.Is(err, token.ErrExpired) {
		return nil, ErrTokenExpired
	}
	if err != nil {
		return nil, ErrTokenInvalid
	}
	role := models.Role(claims.Role)
	if !role.IsValid() {
		return nil, ErrTokenInvalid
	}
	revoked, err := s.revs.isRevoked(ctx, claims.SessionID)
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	if revoked {
		return nil, ErrSessionRevoked
	}
	p := &Principal{UserID: claims.Subject, SessionID: claims.SessionID, Role: role}
	if claims.ExpiresAt != nil {
		p.ExpiresAt = claims.ExpiresAt.Time
	}
	return p, nil
}

// Authorize returns ErrForbidden unless p's role is at least requires.
func Authorize(p *Principal, requires models.Role) error {
	if p.Role.Rank() < requires.Rank() {
		return ErrForbidden
	}
	return nil
}

// JWKS returns the public keys that verify access tokens, as a JSON Web Key Set.
func (s *Service) JWKS() []byte { return s.tokens.JWKS() }

// hash and verify run argon2id under the concurrency bound; a caller that gives up while queued
// (client gone, request timeout) leaves the queue.
func (s *Service) hash(ctx context.Context, pw string) (string, error) {
	if err := s.acquireHashSlot(ctx); err != nil {
		return "", err
	}
	defer func() { <-s.hashSlots }()
	return password.Hash(pw, s.opts.Password)
}

func (s *Service) verify(ctx context.Context, pw, encoded string) (ok, rehash bool, err error) {
	if err := s.acquireHashSlot(ctx); err != nil {
		return false, false, err
	}
	defer func() { <-s.hashSlots }()
	return password.Verify(pw, encoded, s.opts.Password)
}

func (s *Service) acquireHashSlot(ctx context.Context) error {
	select {
	case s.hashSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// limit counts one attempt for key and returns a *RateLimitedError once it is over r. A limiter
// failure is logged and lets the attempt through: the Redis limiter already falls back to memory,
// so this only happens when both fail, and refusing every login then would be worse.
func (s *Service) limit(ctx context.Context, key string, r ratelimit.Rate) error {
	if s.opts.Limiter == nil || !r.Enabled() {
		return nil
	}
	res, err := s.opts.Limiter.Hit(ctx, key, r)
	if err != nil {
		s.log.Warn("rate limiter failed; attempt allowed", "err", err)
		return nil
	}
	if !res.Allowed {
		return &RateLimitedError{RetryAfter: res.RetryAfter}
	}
	return nil
}

// attempt is one limiter key with the rate it was counted under.
type attempt struct {
	key  string
	rate ratelimit.Rate
}

// takeBack undoes counted attempts that the service could not judge because err says a dependency
// was unavailable or the request ran out of time: a client that retries through a database outage
// must not find itself rate limited once the database is back. Other errors leave the counts alone.
func (s *Service) takeBack(ctx context.Context, err error, attempts ...attempt) {
	if s.opts.Limiter == nil || !(errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)) {
		return
	}
	ctx = context.WithoutCancel(ctx) // the request's own deadline may be what ran out
	for _, a := range attempts {
		if a.rate.Enabled() {
			if err := s.opts.Limiter.Undo(ctx, a.key); err != nil {
				s.log.Warn("rate limiter undo failed", "err", err)
			}
		}
	}
}

// forgive clears an account's failure count and takes back one attempt from an IP's count.
func (s *Service) forgive(ctx context.Context, accountKey, ipKey string) {
	if s.opts.Limiter == nil {
		return
	}
	if s.opts.LoginRate.Enabled() {
		if err := s.opts.Limiter.Reset(ctx, accountKey); err != nil {
			s.log.Warn("rate limiter reset failed", "err", err)
		}
	}
	if ipKey != "" && s.opts.LoginIPRate.Enabled() {
		if err := s.opts.Limiter.Undo(ctx, ipKey); err != nil {
			s.log.Warn("rate limiter undo failed", "err", err)
		}
	}
}

// loginAccountKey is the limiter key of an account as tried from one address. The limiter stores
// only a digest of it.
func loginAccountKey(email, ip string) string { return "login:account:" + email + "|" + ip }

func (s *Service) newSession(u *models.User, c Client, now time.Time) (*models.Session, *models.RefreshToken, string, error) {
	raw, hash, err := token.NewRefreshToken()
	if err != nil {
		return nil, nil, "", err
	}
	sess := &models.Session{
		ID: uuid.NewString(), UserID: u.ID, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(s.opts.RefreshTokenTTL),
		UserAgent: optional(c.UserAgent, 512), IP: optional(c.IP, 64),
	}
	rt := &models.RefreshToken{TokenHash: hash, SessionID: sess.ID, UserID: u.ID, CreatedAt: now, ExpiresAt: sess.ExpiresAt}
	return sess, rt, raw, nil
}

func (s *Service) pair(u *models.User, sessionID, refresh string, refreshExpires time.Time) (*Pair, error) {
	access, exp, err := s.tokens.Issue(u.ID, sessionID, string(u.Role))
	if err != nil {
		return nil, fmt.Errorf("issue access token: %w", err)
	}
	return &Pair{
		AccessToken: access, AccessTokenExpiresAt: exp, ExpiresIn: int(s.tokens.TTL() / time.Second),
		RefreshToken: refresh, RefreshTokenExpiresAt: refreshExpires, SessionID: sessionID, User: u,
	}, nil
}

// ValidatePassword checks the length rule (8 to 256 characters) and returns a *ValidationError
// naming field.
func ValidatePassword(field, pw string) error {
	n := utf8.RuneCountInString(pw)
	if n < MinPasswordLength {
		return &ValidationError{Field: field, Message: fmt.Sprintf("must be at least %d characters", MinPasswordLength)}
	}
	if n > MaxPasswordLength {
		return &ValidationError{Field: field, Message: fmt.Sprintf("must be at most %d characters", MaxPasswordLength)}
	}
	return nil
}

// optional returns nil for an empty string, else the string made valid UTF-8 without NUL bytes (a
// header may carry any byte; Postgres text accepts neither) and cut to at most max bytes on a rune
// boundary.
func optional(s string, max int) *string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if s == "" {
		return nil
	}
	if len(s) > max {
		s = s[:max]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return &s
}
