// Package auth holds the authentication rules: registration and login with argon2id passwords,
// sessions with rotating refresh tokens and reuse detection, access-token authentication and
// revocation, account recovery and e-mail verification (recovery.go). It knows nothing of GraphQL,
// HTTP routing or SMTP; persistence is behind the Store and MailStore interfaces.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/text/unicode/norm"

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
	// LoginRate limits failed logins (and failed changePassword checks) per account and client
	// address; LoginIPRate limits failed logins per client address across accounts; LoginSuccessRate
	// limits successful logins per client address; LoginAccountRate is the failures per account from
	// all addresses after which each further failure makes the account wait (1 s, 2 s, 4 s … up to 15
	// minutes); RegisterRate limits registrations per client address. An IPv6 client's address is its
	// /64, and its /48 gets 8 times the per-address rates. A zero Rate is unlimited. See limits.go.
	LoginRate, LoginIPRate, LoginSuccessRate, LoginAccountRate, RegisterRate ratelimit.Rate
	// MaxSessionsPerUser caps a user's live sessions: a login past it revokes the oldest. 0: no cap.
	MaxSessionsPerUser int
	// HashConcurrency bounds how many argon2id computations run at once (each takes Password.Memory
	// KiB), so a login flood queues instead of exhausting memory. 0 means runtime.NumCPU().
	HashConcurrency int
	// OnEvent, if set, is called after every authentication event (for metrics). It must be fast.
	OnEvent func(context.Context, Event)
	// Broadcaster, if set, spreads revocations to other instances at once (Redis pub/sub).
	Broadcaster Broadcaster

	// MailStore holds the e-mail tokens and the mail outbox (see recovery.go). Without it the
	// recovery and verification mutations fail with an internal error, and register and
	// changePassword send nothing.
	MailStore MailStore
	// PasswordResetURL and EmailVerificationURL are the links mailed, in which {token} is replaced by
	// the URL-escaped token ("" means the bare token).
	PasswordResetURL, EmailVerificationURL string
	// PasswordResetTTL (0 means 1 hour) and EmailVerificationTTL (0 means 24 hours; change-email
	// links too) are how long a mailed token works.
	PasswordResetTTL, EmailVerificationTTL time.Duration
	// RequireEmailVerification makes login with the right password of an unverified account fail
	// with ErrEmailNotVerified.
	RequireEmailVerification bool
	// ResetEmailRate limits the mails asked for per address (password resets per address; verification
	// and change-email links per recipient); ResetIPRate limits password-reset requests per client
	// address (its /48 gets 8 times as many for IPv6). A zero Rate is unlimited.
	ResetEmailRate, ResetIPRate ratelimit.Rate
	// KickMail, if set, is called after a commit that queued mail, to wake the mail sender at once.
	// It must not block.
	KickMail func()

	// Factors holds TOTP secrets, recovery codes, challenges and passkeys (see mfa.go, passkey.go).
	// Without it the second-factor and passkey operations fail with an internal error.
	Factors FactorStore
	// TOTPKeys are the AES-256 keys (32 bytes each) that seal TOTP secrets at rest: the first seals,
	// every one opens (so a key can be rotated in). Without one, TOTP enrolment fails.
	TOTPKeys [][]byte
	// TOTPIssuer names the service in otpauth URIs (what the authenticator app shows); "" means "gqlauth".
	TOTPIssuer string
	// MFARate limits wrong second-factor codes per account, across challenges and clients (a zero
	// Rate is unlimited).
	MFARate ratelimit.Rate
	// ReauthMaxAge is how old an authentication may be for the fields that need a fresh one
	// (@auth(fresh: true)); 0 means 10 minutes.
	ReauthMaxAge time.Duration
	// TracerProvider, if set, traces the password hashing: the wait for a hashing slot and the
	// argon2id computation, as two spans. nil (tracing off) costs nothing.
	TracerProvider trace.TracerProvider

	// WebAuthn is the relying party of passkeys: its id (a domain, such as "localhost" or
	// "example.com"), display name and the origins allowed to use it. Without RPID, the passkey
	// operations fail with an internal error.
	WebAuthn WebAuthnOptions
}

// WebAuthnOptions configure the WebAuthn relying party.
type WebAuthnOptions struct {
	RPID          string
	RPDisplayName string
	RPOrigins     []string
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
	tracer    trace.Tracer // nil when tracing is off

	broadcastsReceived atomic.Int64
	users              userCache
	live               *hub // the watches of live session events (live.go)
	// webauthn is the passkey relying party (nil without Options.WebAuthn.RPID; see passkey.go).
	webauthn *webauthn.WebAuthn
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
	if opts.PasswordResetTTL <= 0 {
		opts.PasswordResetTTL = time.Hour
	}
	if opts.EmailVerificationTTL <= 0 {
		opts.EmailVerificationTTL = 24 * time.Hour
	}
	if opts.ReauthMaxAge <= 0 {
		opts.ReauthMaxAge = 10 * time.Minute
	}
	if opts.TOTPIssuer == "" {
		opts.TOTPIssuer = "gqlauth"
	}
	dummy, err := password.Hash("dummy password for unknown e-mails", opts.Password)
	if err != nil {
		return nil, err
	}
	wa, err := newWebAuthn(opts.WebAuthn)
	if err != nil {
		return nil, err
	}
	// Microseconds: what Postgres stores, so a time read back equals the one written.
	now := func() time.Time { return opts.Now().UTC().Truncate(time.Microsecond) }
	live := newHub(store, now, opts.RevocationPollInterval)
	revs := newRevocations(store, opts.Broadcaster, now, opts.RevocationPollInterval, tokens.TTL()+time.Minute)
	revs.onRevoked = live.revoked
	return &Service{
		store:     store,
		tokens:    tokens,
		opts:      opts,
		now:       now,
		log:       opts.Logger,
		revs:      revs,
		dummyHash: dummy,
		hashSlots: make(chan struct{}, opts.HashConcurrency),
		users:     newUserCache(),
		live:      live,
		webauthn:  wa,
		tracer:    tracer(opts.TracerProvider),
	}, nil
}

// Start loads recent revocations and keeps polling for new ones (and, with a Broadcaster, listening
// for them and for live session events) until ctx ends; it also runs the live session events' poll
// (live.go), which reads the store only while this instance has watches. Until the first successful poll, authentication checks each session in
// the database. The returned wait blocks until that background work has stopped (after ctx ends), so
// the caller that started it can also see it finish.
func (s *Service) Start(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	if b := s.opts.Broadcaster; b != nil {
		wg.Go(func() {
			b.Subscribe(ctx, s.received)
		})
	}
	if err := s.revs.sync(ctx); err != nil {
		s.log.Warn("initial revocation sync failed", "err", err)
	}
	wg.Go(func() { s.revs.run(ctx, s.log) })
	wg.Go(func() { s.live.run(ctx, s.log) })
	return wg.Wait
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
	raw := email
	email, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	pw = NormalizePassword(pw)
	if err := ValidatePassword("password", pw); err != nil {
		return nil, err
	}
	k, t := keysFor(c.IP), s.tally()
	if err := s.countClient(ctx, t, "register", k, s.opts.RegisterRate); err != nil {
		s.emit(ctx, Event{Kind: EventRegister, Outcome: OutcomeRateLimited, IP: c.IP})
		return nil, err
	}
	if legacy := LegacyEmail(raw); legacy != email {
		// An account stored before addresses were canonicalised may hold this address in another form.
		if _, err := s.store.UserByEmail(ctx, legacy); err == nil {
			s.emit(ctx, Event{Kind: EventRegister, Outcome: OutcomeFailed, IP: c.IP})
			return nil, ErrEmailTaken
		}
	}
	hash, err := s.hash(ctx, pw)
	if err != nil {
		t.takeBack(ctx, err)
		return nil, err
	}
	now := s.now()
	u := &models.User{ID: uuid.NewString(), Email: email, PasswordHash: hash, Role: models.RoleUser, CreatedAt: now, UpdatedAt: now}
	sess, rt, rawToken, err := s.newSession(u, c, now, AMRPassword)
	if err != nil {
		return nil, err
	}
	if err := s.store.CreateUser(ctx, u, sess, rt); err != nil {
		if errors.Is(err, ErrEmailTaken) {
			s.emit(ctx, Event{Kind: EventRegister, Outcome: OutcomeFailed, IP: c.IP})
		}
		t.takeBack(ctx, err)
		return nil, fmt.Errorf("register: %w", err)
	}
	s.emit(ctx, Event{Kind: EventRegister, Outcome: OutcomeOK, UserID: u.ID, SessionID: sess.ID, IP: c.IP})
	if s.opts.MailStore != nil {
		// The account exists whatever happens to the mail: a failure is logged, and the user can ask
		// for another link (requestEmailVerification).
		if err := s.sendVerification(ctx, u); err != nil {
			s.log.WarnContext(ctx, "verification mail not queued", "user_id", u.ID, "err", err)
		}
	}
	return s.pair(u, sess.ID, rawToken, sess.ExpiresAt, sessionAuth(sess))
}

// countClient counts an attempt of kind ("login", "register") for the client's address and, for
// IPv6, its /48.
func (s *Service) countClient(ctx context.Context, t *tally, kind string, k clientKeys, r ratelimit.Rate) error {
	if _, err := t.hit(ctx, kind+":ip:"+k.addr, r); err != nil {
		return err
	}
	if k.net != "" {
		if _, err := t.hit(ctx, kind+":net:"+k.net, netRate(r)); err != nil {
			return err
		}
	}
	return nil
}

// Login checks an e-mail and password and opens a new session. Unknown e-mails and wrong passwords
// both return ErrInvalidCredentials after the same amount of hashing work. See limits.go for what is
// counted; a login that finds the password changed since it was checked fails like a wrong one.
// For an account with TOTP on, the right password opens no session: Login returns an
// *MFARequiredError whose challenge VerifyMFA exchanges, with a code, for the session.
func (s *Service) Login(ctx context.Context, email, pw string, c Client) (*Pair, error) {
	raw := email
	email, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if utf8.RuneCountInString(pw) > MaxPasswordLength {
		// Refused before hashing, like at registration, so a huge password cannot buy CPU time.
		return nil, &ValidationError{Field: "password", Message: fmt.Sprintf("must be at most %d characters", MaxPasswordLength)}
	}
	k, t := keysFor(c.IP), s.tally()
	limited := func(err error) (*Pair, error) {
		s.emit(ctx, Event{Kind: EventLogin, Outcome: OutcomeRateLimited, IP: c.IP})
		return nil, err
	}
	// The address first: once it is over its budget, nothing is counted or stored for the account.
	if err := s.countClient(ctx, t, "login", k, s.opts.LoginIPRate); err != nil {
		return limited(err)
	}
	okKey := "login:ok:" + k.addr
	if _, err := t.hit(ctx, okKey, s.opts.LoginSuccessRate); err != nil {
		return limited(err)
	}
	if err := s.blocked(ctx, email); err != nil {
		return limited(err)
	}
	pairKey := loginAccountKey(email, k)
	if _, err := t.hit(ctx, pairKey, s.opts.LoginRate); err != nil {
		return limited(err)
	}
	failures := t.count(ctx, accountKey(email), s.opts.LoginAccountRate)
	failed := func(userID string) (*Pair, error) {
		t.undo(ctx, okKey)
		s.backOff(ctx, email, failures)
		s.emit(ctx, Event{Kind: EventLogin, Outcome: OutcomeFailed, UserID: userID, IP: c.IP})
		return nil, ErrInvalidCredentials
	}

	u, err := s.userByEmail(ctx, email, raw)
	if errors.Is(err, ErrNotFound) {
		_, _, _ = s.checkPassword(ctx, pw, s.dummyHash)
		return failed("")
	}
	if err != nil {
		t.takeBack(ctx, err)
		return nil, fmt.Errorf("login: %w", err)
	}
	ok, rehash, err := s.checkPassword(ctx, pw, u.PasswordHash)
	if err != nil {
		t.takeBack(ctx, err)
		return nil, fmt.Errorf("login: stored hash of user %s: %w", u.ID, err)
	}
	if !ok {
		return failed(u.ID)
	}
	if s.opts.RequireEmailVerification && u.EmailVerifiedAt == nil {
		// Only after the limits and the password check, so that it tells nothing to whoever lacks the
		// password. The password was right: its failure counts are taken back as for a success.
		t.reset(ctx, pairKey)
		t.reset(ctx, accountKey(email))
		t.undo(ctx, "login:ip:"+k.addr)
		t.undo(ctx, "login:net:"+k.net)
		s.emit(ctx, Event{Kind: EventLogin, Outcome: OutcomeEmailNotVerified, UserID: u.ID, IP: c.IP})
		return nil, ErrEmailNotVerified
	}
	now := s.now()
	if rehash {
		// The configured cost changed since this hash was made (or it was made of the password as
		// typed, before normalisation): upgrade it while we know the password. Only over the hash that
		// was verified: a password change that committed meanwhile must not be undone.
		if h, err := s.hash(ctx, NormalizePassword(pw)); err == nil {
			s.users.drop(u.ID)
			if err := s.store.SetPasswordHash(ctx, u.ID, u.PasswordHash, h, now); err != nil && !errors.Is(err, ErrConflict) {
				s.log.Warn("rehash failed", "user_id", u.ID, "err", err)
			}
		}
	}
	if u.TOTPEnabledAt != nil {
		// The password was right: its failure counts are taken back as for a success (its success
		// count is kept), and the login waits for the second factor (VerifyMFA) without a session.
		// Only here, after the limits and the password check, so MFA_REQUIRED tells nothing to
		// whoever lacks the password.
		t.reset(ctx, pairKey)
		t.reset(ctx, accountKey(email))
		t.undo(ctx, "login:ip:"+k.addr)
		t.undo(ctx, "login:net:"+k.net)
		raw, err := s.newMFAChallenge(ctx, u, u.CredentialsVersion, now)
		if err != nil {
			return nil, fmt.Errorf("login: %w", err)
		}
		s.emit(ctx, Event{Kind: EventLogin, Outcome: OutcomeMFARequired, UserID: u.ID, IP: c.IP})
		return nil, &MFARequiredError{Challenge: raw}
	}
	sess, rt, rawToken, err := s.newSession(u, c, now, AMRPassword)
	if err != nil {
		return nil, err
	}
	evicted, at, err := s.store.CreateSession(ctx, sess, rt, SessionCheck{
		CredentialsVersion: u.CredentialsVersion, MaxSessions: s.opts.MaxSessionsPerUser, Now: s.now,
	})
	if errors.Is(err, ErrConflict) {
		return failed(u.ID) // the password changed (or the account went) since it was checked
	}
	if err != nil {
		t.takeBack(ctx, err)
		return nil, fmt.Errorf("login: %w", err)
	}
	// A success takes back its failure counts (and clears the account's), and keeps its success count.
	t.reset(ctx, pairKey)
	t.reset(ctx, accountKey(email))
	t.undo(ctx, "login:ip:"+k.addr)
	t.undo(ctx, "login:net:"+k.net)
	s.revs.add(ctx, u.ID, evicted, at, s.log)
	s.emit(ctx, Event{Kind: EventLogin, Outcome: OutcomeOK, UserID: u.ID, SessionID: sess.ID, IP: c.IP, Revoked: len(evicted)})
	return s.pair(u, sess.ID, rawToken, sess.ExpiresAt, sessionAuth(sess))
}

// userByEmail finds the account of a canonical address or, failing that, of the address as it was
// stored before addresses were canonicalised (raw lower-cased and trimmed), when that differs.
func (s *Service) userByEmail(ctx context.Context, email, raw string) (*models.User, error) {
	u, err := s.store.UserByEmail(ctx, email)
	if legacy := LegacyEmail(raw); errors.Is(err, ErrNotFound) && legacy != email {
		return s.store.UserByEmail(ctx, legacy)
	}
	return u, err
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
		if sess == nil || rt.User == nil || rt.User.DeletedAt != nil || sess.RevokedAt != nil || rt.RevokedAt != nil ||
			!now.Before(sess.ExpiresAt) || !now.Before(rt.ExpiresAt) {
			return nil, ErrRefreshTokenInvalid
		}
		// A rotated token presented again within the grace is a client retrying a refresh whose answer
		// it lost (or two tabs racing): it gets a fresh pair, and every other live token of the session
		// is retired, so the session keeps one chain and a thief's replay makes the victim's next
		// refresh reuse. Later, it is reuse: the whole session is revoked.
		retry := rt.RotatedAt != nil
		if retry && !now.Before(rt.RotatedAt.Add(s.opts.RefreshReuseGrace)) {
			ids, at, err := s.store.RevokeSessions(ctx, SessionFilter{SessionID: sess.ID}, s.now)
			if err != nil {
				return nil, fmt.Errorf("refresh: revoke reused session: %w", err)
			}
			s.revs.add(ctx, rt.UserID, ids, at, s.log)
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
		return s.pair(rt.User, sess.ID, newRaw, expires, sessionAuth(sess)) // a refresh keeps the session's authentication
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
	ids, at, err := s.store.RevokeSessions(ctx, SessionFilter{UserID: p.UserID}, s.now)
	if err != nil {
		return 0, fmt.Errorf("logoutAll: %w", err)
	}
	s.revs.add(ctx, p.UserID, ids, at, s.log)
	s.emit(ctx, Event{Kind: EventLogoutAll, Outcome: OutcomeOK, UserID: p.UserID, SessionID: p.SessionID, Revoked: len(ids)})
	return len(ids), nil
}

// RevokeSession revokes one of the caller's sessions. It returns false, and reveals nothing, when the
// caller has no session with that id; true when it is revoked (now or before).
func (s *Service) RevokeSession(ctx context.Context, p *Principal, id string) (bool, error) {
	if !validID(id) {
		return false, nil // no session has such an id; a NUL byte would not even reach Postgres
	}
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
	ids, at, err := s.store.RevokeSessions(ctx, f, s.now)
	if err != nil {
		return fmt.Errorf("%s: %w", event, err)
	}
	s.revs.add(ctx, userID, ids, at, s.log)
	s.emit(ctx, Event{Kind: event, Outcome: OutcomeOK, UserID: userID, SessionID: f.SessionID, Revoked: len(ids)})
	return nil
}

// ChangePassword checks the current password, stores the new one, revokes every other session of the
// caller and returns a fresh pair for the current session. It returns ErrInvalidCredentials for a
// wrong current password (or one changed meanwhile) and a *ValidationError for a new password that
// is not allowed.
func (s *Service) ChangePassword(ctx context.Context, p *Principal, current, next string, c Client) (*Pair, error) {
	next = NormalizePassword(next)
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
	if err := s.checkCurrentPassword(ctx, "changePassword", EventChangePassword, u, p, current, c); err != nil {
		return nil, err
	}
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
	ids, at, err := s.store.ChangePassword(ctx, PasswordChange{
		UserID: u.ID, CredentialsVersion: u.CredentialsVersion, Hash: hash, KeepSessionID: p.SessionID,
		Now: now, ExpiresAt: expires, Clock: s.now,
		New: &models.RefreshToken{TokenHash: tokHash, SessionID: p.SessionID, UserID: u.ID, CreatedAt: now, ExpiresAt: expires},
	})
	if errors.Is(err, ErrConflict) {
		// Either the session ended or another change committed first (then the current password
		// checked above is no longer the current one).
		if cur, err := s.store.UserByID(ctx, u.ID); err == nil && cur.CredentialsVersion != u.CredentialsVersion {
			return nil, ErrInvalidCredentials
		}
		return nil, ErrSessionRevoked
	}
	if err != nil {
		return nil, fmt.Errorf("changePassword: %w", err)
	}
	s.revs.add(ctx, u.ID, ids, at, s.log)
	s.users.drop(u.ID)
	u.PasswordHash, u.CredentialsVersion = hash, u.CredentialsVersion+1
	s.emit(ctx, Event{Kind: EventChangePassword, Outcome: OutcomeOK, UserID: u.ID, SessionID: p.SessionID, IP: c.IP, Revoked: len(ids)})
	s.announce(ctx, SessionEvent{Type: PasswordChanged, UserID: u.ID, SessionID: p.SessionID, At: s.now(), CredentialsVersion: u.CredentialsVersion})
	s.notify(ctx, Mail{Kind: KindPasswordChanged, To: u.Email})
	return s.pair(u, p.SessionID, raw, expires, principalAuth(p))
}

// checkCurrentPassword checks the current password of the caller's account u for op (changePassword,
// changeEmail). A stolen access token must not become a password oracle: wrong current passwords
// count against the same budgets as failed logins, per address and for the account, and feed the
// account's back-off. It returns ErrInvalidCredentials for a wrong password and a *RateLimitedError
// over a budget (emitting kind's event either way).
func (s *Service) checkCurrentPassword(ctx context.Context, op string, kind EventKind, u *models.User, p *Principal, current string, c Client) error {
	k, t := keysFor(c.IP), s.tally()
	limited := func(err error) error {
		s.emit(ctx, Event{Kind: kind, Outcome: OutcomeRateLimited, UserID: u.ID, SessionID: p.SessionID, IP: c.IP})
		return err
	}
	if err := s.blocked(ctx, u.Email); err != nil {
		return limited(err)
	}
	pairKey := loginAccountKey(u.Email, k)
	if _, err := t.hit(ctx, pairKey, s.opts.LoginRate); err != nil {
		return limited(err)
	}
	failures := t.count(ctx, accountKey(u.Email), s.opts.LoginAccountRate)
	ok, _, err := s.checkPassword(ctx, current, u.PasswordHash)
	if err != nil {
		t.takeBack(ctx, err)
		return fmt.Errorf("%s: stored hash of user %s: %w", op, u.ID, err)
	}
	if !ok {
		s.backOff(ctx, u.Email, failures)
		s.emit(ctx, Event{Kind: kind, Outcome: OutcomeFailed, UserID: u.ID, SessionID: p.SessionID, IP: c.IP})
		return ErrInvalidCredentials
	}
	t.reset(ctx, pairKey)
	t.reset(ctx, accountKey(u.Email))
	return nil
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
	if !validID(id) {
		return nil, nil
	}
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
	p := &Principal{UserID: claims.Subject, SessionID: claims.SessionID, Role: role, AMR: claims.AMR}
	if claims.ExpiresAt != nil {
		p.ExpiresAt = claims.ExpiresAt.Time
	}
	if claims.AuthTime != nil {
		p.AuthTime = claims.AuthTime.Time
	}
	return p, nil
}

// CheckFresh returns a *ReauthenticationRequiredError unless p's authentication (its token's
// auth_time) is at most ReauthMaxAge old: the rule of the fields marked @auth(fresh: true).
func (s *Service) CheckFresh(p *Principal) error {
	if p.AuthTime.IsZero() || s.now().Sub(p.AuthTime) > s.opts.ReauthMaxAge {
		return &ReauthenticationRequiredError{MaxAge: s.opts.ReauthMaxAge}
	}
	return nil
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
	defer s.traceHash(ctx, "password.hash")()
	return password.Hash(pw, s.opts.Password)
}

func (s *Service) verify(ctx context.Context, pw, encoded string) (ok, rehash bool, err error) {
	if err := s.acquireHashSlot(ctx); err != nil {
		return false, false, err
	}
	defer func() { <-s.hashSlots }()
	defer s.traceHash(ctx, "password.verify")()
	return password.Verify(pw, encoded, s.opts.Password)
}

func (s *Service) acquireHashSlot(ctx context.Context) error {
	if s.tracer != nil {
		// The wait is a span of its own: under a login flood it, not the hash, is where time goes.
		var span trace.Span
		_, span = s.tracer.Start(ctx, "password.slot_wait", trace.WithAttributes(
			attribute.Int("gqlauth.hash.slots", cap(s.hashSlots)),
			attribute.Int("gqlauth.hash.slots_busy", len(s.hashSlots)),
		))
		defer span.End()
	}
	select {
	case s.hashSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// traceHash starts a span for one argon2id computation (nothing when tracing is off) and returns
// its end. The span carries the cost parameters only: never the password or the hash.
func (s *Service) traceHash(ctx context.Context, name string) (end func()) {
	if s.tracer == nil {
		return func() {}
	}
	_, span := s.tracer.Start(ctx, name, trace.WithAttributes(
		attribute.Int("gqlauth.argon2.memory_kib", int(s.opts.Password.Memory)),
		attribute.Int("gqlauth.argon2.time", int(s.opts.Password.Time)),
	))
	return func() { span.End() }
}

// tracer is the auth package's tracer from tp, or nil when tracing is off.
func tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer("gqlauth/auth")
}

// checkPassword verifies pw against encoded: in its NFC form first (see NormalizePassword), then, for
// a hash made before passwords were normalised (of the bytes as typed then, which a keyboard may have
// produced in either form), as typed now and in NFD, each only when it differs from the forms tried.
// ASCII passwords cost one hash; others up to three, and the same against the dummy hash of an unknown
// e-mail, so timing still tells nothing. rehash is set when the stored hash should be replaced by one
// of the NFC form under the current parameters.
func (s *Service) checkPassword(ctx context.Context, pw, encoded string) (ok, rehash bool, err error) {
	n := NormalizePassword(pw)
	ok, rehash, err = s.verify(ctx, n, encoded)
	if ok || err != nil {
		return ok, rehash, err
	}
	tried := []string{n}
	for _, legacy := range []string{pw, norm.NFD.String(pw)} {
		if slices.Contains(tried, legacy) {
			continue
		}
		tried = append(tried, legacy)
		if ok, _, err = s.verify(ctx, legacy, encoded); ok || err != nil {
			return ok, ok, err
		}
	}
	return false, false, nil
}

// validID reports whether id could be one of ours (a canonical UUID): anything else cannot match a
// row, and need not reach the database (Postgres refuses a NUL byte with an error).
func validID(id string) bool {
	if len(id) != 36 {
		return false
	}
	_, err := uuid.Parse(id)
	return err == nil
}

// newSession makes a session of u authenticated now by the methods amr (AMR values, see
// models.Session.AMR), with its first refresh token.
func (s *Service) newSession(u *models.User, c Client, now time.Time, amr ...string) (*models.Session, *models.RefreshToken, string, error) {
	raw, hash, err := token.NewRefreshToken()
	if err != nil {
		return nil, nil, "", err
	}
	sess := &models.Session{
		ID: uuid.NewString(), UserID: u.ID, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(s.opts.RefreshTokenTTL),
		UserAgent: optional(c.UserAgent, 512), IP: optional(c.IP, 64),
		AMR: strings.Join(amr, ","), AuthTime: &now,
	}
	rt := &models.RefreshToken{TokenHash: hash, SessionID: sess.ID, UserID: u.ID, CreatedAt: now, ExpiresAt: sess.ExpiresAt}
	return sess, rt, raw, nil
}

// sessionAuth is how and when sess's user last authenticated, as its access tokens carry it.
func sessionAuth(sess *models.Session) token.Authentication {
	a := token.Authentication{AMR: []string{AMRPassword}, Time: sess.CreatedAt}
	if sess.AMR != "" {
		a.AMR = strings.Split(sess.AMR, ",")
	}
	if sess.AuthTime != nil {
		a.Time = *sess.AuthTime
	}
	return a
}

// principalAuth is the authentication of p's session as its access token carried it.
func principalAuth(p *Principal) token.Authentication {
	return token.Authentication{AMR: p.AMR, Time: p.AuthTime}
}

func (s *Service) pair(u *models.User, sessionID, refresh string, refreshExpires time.Time, a token.Authentication) (*Pair, error) {
	access, exp, err := s.tokens.IssueAuthenticated(u.ID, sessionID, string(u.Role), a)
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
