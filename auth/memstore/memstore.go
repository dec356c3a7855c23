// Package memstore is an in-memory auth.Store for tests: maps behind one mutex, so every method is
// atomic and the conditional writes that the SQL stores make race-safe hold trivially. It passes the
// same conformance suite (auth/storetest) as store.DB, so a domain test that passes on it tests the
// rules and not an accident of the fake. It keeps nothing on disk and is not meant for production.
package memstore

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"gqlauth/auth"
	"gqlauth/models"
)

// Store is an in-memory auth.Store. The zero value is not usable; call New.
type Store struct {
	mu       sync.Mutex
	users    map[string]*models.User // by id
	emails   map[string]string       // e-mail → user id, unique like the users.email index
	sessions map[string]*models.Session
	tokens   map[uint64]*models.RefreshToken
	byHash   map[string]uint64 // token hash → token id, unique like refresh_tokens.token_hash
	lastID   uint64            // token ids are assigned in order, like an auto-increment column

	// Second factors and passkeys (challenges.go, totp.go, passkeys.go).
	recoveryCodes []*models.RecoveryCode
	lastCodeID    uint64
	challenges    map[string]*models.AuthChallenge // by id
	passkeys      map[string]*models.Passkey       // by id
}

var _ auth.Store = (*Store)(nil)

// errDuplicateHash is what an insert of a token whose hash is taken fails with (a unique-index
// violation in the SQL stores).
var errDuplicateHash = errors.New("memstore: duplicate refresh token hash")

// errNoFilter mirrors the SQL store's refusal of a filter that would select every session.
var errNoFilter = errors.New("memstore: refusing to revoke every session")

// New returns an empty store.
func New() *Store {
	return &Store{
		users:    map[string]*models.User{},
		emails:   map[string]string{},
		sessions: map[string]*models.Session{},
		tokens:   map[uint64]*models.RefreshToken{},
		byHash:   map[string]uint64{},

		challenges: map[string]*models.AuthChallenge{},
		passkeys:   map[string]*models.Passkey{},
	}
}

// lock takes the mutex, unless ctx has ended: a cancelled request fails as it does on a database.
func (st *Store) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	st.mu.Lock()
	return nil
}

// stamp is a revocation time read from now as the SQL stores read it: UTC, in microseconds.
func stamp(now func() time.Time) time.Time { return now().UTC().Truncate(time.Microsecond) }

// CreateUser implements auth.Store.
func (st *Store) CreateUser(ctx context.Context, u *models.User, s *models.Session, t *models.RefreshToken) error {
	if err := st.lock(ctx); err != nil {
		return err
	}
	defer st.mu.Unlock()
	if _, taken := st.emails[u.Email]; taken {
		return auth.ErrEmailTaken
	}
	if _, taken := st.users[u.ID]; taken {
		return errors.New("memstore: duplicate user id")
	}
	if err := st.checkSession(s, t); err != nil {
		return err
	}
	if u.Role == "" {
		u.Role = models.RoleUser // the column's default
	}
	st.users[u.ID] = cloneUser(u)
	st.emails[u.Email] = u.ID
	st.insertSession(s, t)
	return nil
}

// checkSession reports whether s and t can be inserted (unique id and hash, existing owner), so that
// a multi-row write can check everything before it writes anything.
func (st *Store) checkSession(s *models.Session, t *models.RefreshToken) error {
	if _, taken := st.sessions[s.ID]; taken {
		return errors.New("memstore: duplicate session id")
	}
	if t.SessionID != s.ID {
		return errors.New("memstore: refresh token of another session")
	}
	return st.checkToken(t)
}

func (st *Store) checkToken(t *models.RefreshToken) error {
	if _, taken := st.byHash[string(t.TokenHash)]; taken {
		return errDuplicateHash
	}
	return nil
}

func (st *Store) insertSession(s *models.Session, t *models.RefreshToken) {
	c := *s
	c.User = nil
	c.UserAgent, c.IP = cloneString(s.UserAgent), cloneString(s.IP)
	c.RevokedAt = cloneTime(s.RevokedAt)
	c.AuthTime = cloneTime(s.AuthTime)
	st.sessions[s.ID] = &c
	st.insertToken(t)
}

// insertToken stores t and sets its id, as an insert through GORM does.
func (st *Store) insertToken(t *models.RefreshToken) {
	st.lastID++
	t.ID = st.lastID
	st.tokens[t.ID] = cloneToken(t)
	st.byHash[string(t.TokenHash)] = t.ID
}

// liveUser returns the user with that id unless it is missing or deleted.
func (st *Store) liveUser(id string) *models.User {
	if u := st.users[id]; u != nil && u.DeletedAt == nil {
		return u
	}
	return nil
}

// UserByEmail implements auth.Store.
func (st *Store) UserByEmail(ctx context.Context, email string) (*models.User, error) {
	if err := st.lock(ctx); err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	if u := st.liveUser(st.emails[email]); u != nil {
		return cloneUser(u), nil
	}
	return nil, auth.ErrNotFound
}

// UserByID implements auth.Store.
func (st *Store) UserByID(ctx context.Context, id string) (*models.User, error) {
	if err := st.lock(ctx); err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	if u := st.liveUser(id); u != nil {
		return cloneUser(u), nil
	}
	return nil, auth.ErrNotFound
}

// SetPasswordHash implements auth.Store.
func (st *Store) SetPasswordHash(ctx context.Context, userID, oldHash, newHash string, at time.Time) error {
	if err := st.lock(ctx); err != nil {
		return err
	}
	defer st.mu.Unlock()
	u := st.liveUser(userID)
	if u == nil || u.PasswordHash != oldHash {
		return auth.ErrConflict
	}
	u.PasswordHash, u.UpdatedAt = newHash, at
	return nil
}

// CreateSession implements auth.Store.
func (st *Store) CreateSession(ctx context.Context, s *models.Session, t *models.RefreshToken, c auth.SessionCheck) ([]string, time.Time, error) {
	if err := st.lock(ctx); err != nil {
		return nil, time.Time{}, err
	}
	defer st.mu.Unlock()
	at := stamp(c.Now)
	if u := st.liveUser(s.UserID); u == nil || u.CredentialsVersion != c.CredentialsVersion {
		return nil, at, auth.ErrConflict
	}
	if err := st.checkSession(s, t); err != nil {
		return nil, at, err
	}
	st.insertSession(s, t)
	if c.MaxSessions <= 0 {
		return nil, at, nil
	}
	// The user's live sessions, newest first (ties by id, descending, as the SQL store orders them);
	// those past the cap go.
	var live []*models.Session
	for _, o := range st.sessions {
		if o.UserID == s.UserID && isLive(o, at) {
			live = append(live, o)
		}
	}
	if len(live) <= c.MaxSessions {
		return nil, at, nil
	}
	slices.SortFunc(live, func(a, b *models.Session) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(b.ID, a.ID))
	})
	var old []string
	for _, o := range live[c.MaxSessions:min(len(live), c.MaxSessions+1000)] {
		old = append(old, o.ID)
	}
	return st.revoke(auth.SessionFilter{UserID: s.UserID, SessionIDs: old}, at), at, nil
}

// isLive reports whether s is neither revoked nor expired at now.
func isLive(s *models.Session, now time.Time) bool {
	return s.RevokedAt == nil && s.ExpiresAt.After(now)
}

// SessionByID implements auth.Store.
func (st *Store) SessionByID(ctx context.Context, id string) (*models.Session, error) {
	if err := st.lock(ctx); err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	if s := st.sessions[id]; s != nil {
		return cloneSession(s), nil
	}
	return nil, auth.ErrNotFound
}

// Sessions implements auth.Store.
func (st *Store) Sessions(ctx context.Context, userID string, now time.Time) ([]models.Session, error) {
	if err := st.lock(ctx); err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	var list []models.Session
	for _, s := range st.sessions {
		if s.UserID == userID && isLive(s, now) {
			list = append(list, *cloneSession(s))
		}
	}
	// Newest first, ties by id ascending: the SQL store's ORDER BY created_at DESC, id.
	slices.SortFunc(list, func(a, b models.Session) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return list, nil
}

// RefreshTokenByHash implements auth.Store.
func (st *Store) RefreshTokenByHash(ctx context.Context, hash []byte) (*models.RefreshToken, error) {
	if err := st.lock(ctx); err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	id, ok := st.byHash[string(hash)]
	if !ok {
		return nil, auth.ErrNotFound
	}
	t := cloneToken(st.tokens[id])
	if s := st.sessions[t.SessionID]; s != nil {
		t.Session = cloneSession(s)
	}
	if u := st.users[t.UserID]; u != nil {
		t.User = cloneUser(u) // deleted or not: the caller checks DeletedAt
	}
	return t, nil
}

// Rotate implements auth.Store.
func (st *Store) Rotate(ctx context.Context, r auth.Rotation) error {
	if err := st.lock(ctx); err != nil {
		return err
	}
	defer st.mu.Unlock()
	s := st.sessions[r.SessionID]
	if s == nil || !isLive(s, r.Now) {
		return auth.ErrConflict
	}
	old := st.tokens[r.OldID]
	if old == nil || old.RevokedAt != nil || (r.RetireOld && old.RotatedAt != nil) {
		return auth.ErrConflict
	}
	if err := st.checkToken(r.New); err != nil {
		return err
	}
	s.LastUsedAt, s.ExpiresAt = r.Now, r.ExpiresAt
	if r.UserAgent != nil {
		s.UserAgent = cloneString(r.UserAgent)
	}
	if r.IP != nil {
		s.IP = cloneString(r.IP)
	}
	now := r.Now
	if r.RetireOld {
		old.RotatedAt = &now
	} else {
		// A retry inside the grace retires every live token of the session: one chain per session.
		for _, t := range st.tokens {
			if t.SessionID == r.SessionID && t.RotatedAt == nil && t.RevokedAt == nil {
				t.RotatedAt = &now
			}
		}
	}
	st.insertToken(r.New)
	return nil
}

// RevokeSessions implements auth.Store.
func (st *Store) RevokeSessions(ctx context.Context, f auth.SessionFilter, now func() time.Time) ([]string, time.Time, error) {
	if err := st.lock(ctx); err != nil {
		return nil, time.Time{}, err
	}
	defer st.mu.Unlock()
	at := stamp(now)
	if f.UserID == "" && f.SessionID == "" && f.ExceptSessionID == "" && f.SessionIDs == nil {
		return nil, at, errNoFilter
	}
	return st.revoke(f, at), at, nil
}

// revoke revokes the live sessions f selects, and their refresh tokens, at at; it returns their ids
// (nil when there are none).
func (st *Store) revoke(f auth.SessionFilter, at time.Time) []string {
	var ids []string
	for _, s := range st.sessions {
		if !isLive(s, at) ||
			(f.UserID != "" && s.UserID != f.UserID) ||
			(f.SessionID != "" && s.ID != f.SessionID) ||
			(f.ExceptSessionID != "" && s.ID == f.ExceptSessionID) ||
			(f.SessionIDs != nil && !slices.Contains(f.SessionIDs, s.ID)) {
			continue
		}
		s.RevokedAt = &at
		ids = append(ids, s.ID)
	}
	if len(ids) == 0 {
		return nil
	}
	for _, t := range st.tokens {
		if t.RevokedAt == nil && slices.Contains(ids, t.SessionID) {
			t.RevokedAt = &at
		}
	}
	slices.Sort(ids)
	return ids
}

// ChangePassword implements auth.Store.
func (st *Store) ChangePassword(ctx context.Context, c auth.PasswordChange) ([]string, time.Time, error) {
	if err := st.lock(ctx); err != nil {
		return nil, time.Time{}, err
	}
	defer st.mu.Unlock()
	at := stamp(c.Clock)
	u := st.liveUser(c.UserID)
	if u == nil || u.CredentialsVersion != c.CredentialsVersion {
		return nil, at, auth.ErrConflict
	}
	keep := st.sessions[c.KeepSessionID]
	if keep == nil || keep.UserID != c.UserID || !isLive(keep, c.Now) {
		return nil, at, auth.ErrConflict
	}
	if err := st.checkToken(c.New); err != nil {
		return nil, at, err
	}
	u.PasswordHash, u.CredentialsVersion, u.UpdatedAt = c.Hash, u.CredentialsVersion+1, c.Now
	ids := st.revoke(auth.SessionFilter{UserID: c.UserID, ExceptSessionID: c.KeepSessionID}, at)
	keep.LastUsedAt, keep.ExpiresAt = c.Now, c.ExpiresAt
	// Every earlier token of the kept session is revoked, not retired: no grace applies to them.
	for _, t := range st.tokens {
		if t.SessionID == keep.ID && t.RevokedAt == nil {
			t.RevokedAt = &at
		}
	}
	st.insertToken(c.New)
	return ids, at, nil
}

// RevokedSince implements auth.Store.
func (st *Store) RevokedSince(ctx context.Context, since time.Time) ([]auth.Revocation, error) {
	if err := st.lock(ctx); err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	var revs []auth.Revocation
	for _, s := range st.sessions {
		if s.RevokedAt != nil && s.RevokedAt.After(since) {
			revs = append(revs, auth.Revocation{ID: s.ID, UserID: s.UserID, RevokedAt: *s.RevokedAt})
		}
	}
	return revs, nil
}

// SessionsCreatedSince implements auth.Store.
func (st *Store) SessionsCreatedSince(ctx context.Context, userIDs []string, since time.Time) ([]auth.SessionStart, error) {
	if err := st.lock(ctx); err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	var starts []auth.SessionStart
	for _, s := range st.sessions {
		if slices.Contains(userIDs, s.UserID) && s.CreatedAt.After(since) {
			starts = append(starts, auth.SessionStart{ID: s.ID, UserID: s.UserID, CreatedAt: s.CreatedAt})
		}
	}
	return starts, nil
}

// CredentialsVersions implements auth.Store.
func (st *Store) CredentialsVersions(ctx context.Context, userIDs []string) (map[string]int64, error) {
	if err := st.lock(ctx); err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	versions := map[string]int64{}
	for _, id := range userIDs {
		if u := st.liveUser(id); u != nil {
			versions[id] = u.CredentialsVersion
		}
	}
	return versions, nil
}

// SessionRevoked implements auth.Store. A session that does not exist counts as revoked.
func (st *Store) SessionRevoked(ctx context.Context, id string) (bool, error) {
	if err := st.lock(ctx); err != nil {
		return false, err
	}
	defer st.mu.Unlock()
	s := st.sessions[id]
	return s == nil || s.RevokedAt != nil, nil
}

// The clones keep callers from reaching the stored rows through a returned (or passed) pointer.

func cloneUser(u *models.User) *models.User {
	c := *u
	c.DeletedAt, c.EmailVerifiedAt, c.TOTPEnabledAt = cloneTime(u.DeletedAt), cloneTime(u.EmailVerifiedAt), cloneTime(u.TOTPEnabledAt)
	c.TOTPSecret = slices.Clone(u.TOTPSecret)
	return &c
}

func cloneSession(s *models.Session) *models.Session {
	c := *s
	c.User = nil
	c.UserAgent, c.IP, c.RevokedAt = cloneString(s.UserAgent), cloneString(s.IP), cloneTime(s.RevokedAt)
	c.AuthTime = cloneTime(s.AuthTime)
	return &c
}

func cloneToken(t *models.RefreshToken) *models.RefreshToken {
	c := *t
	c.Session, c.User = nil, nil
	c.TokenHash = slices.Clone(t.TokenHash)
	if t.ParentID != nil {
		p := *t.ParentID
		c.ParentID = &p
	}
	c.RotatedAt, c.RevokedAt = cloneTime(t.RotatedAt), cloneTime(t.RevokedAt)
	return &c
}

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

func cloneString(s *string) *string {
	if s == nil {
		return nil
	}
	c := *s
	return &c
}
