// Package token issues and verifies the server's JWT access tokens (RFC 9068 style, typ "at+jwt") and
// generates the opaque refresh tokens that are stored only as SHA-256 digests.
//
// Verification is deliberately strict: the algorithm is pinned to the issuer's single algorithm, the
// key is chosen by kid from the issuer's own key set (never from the token), and every claim the
// server relies on must be present, so a token this package did not mint cannot pass.
//
// An EdDSA issuer can hold a rotating key set (see Key, NewEdDSAKeySetIssuer and LoadKeyDir): each key
// has an activation time, the newest active key signs, and older keys keep verifying until no token
// they signed can still be valid.
package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	// ErrInvalid is returned by Verify for any token that is not authentic or not acceptable: malformed,
	// oversized, bad signature, wrong alg, typ, kid, iss or aud, nbf or iat in the future, or a missing claim.
	ErrInvalid = errors.New("token: invalid")
	// ErrExpired is returned by Verify for an authentic, otherwise valid token whose exp (plus leeway)
	// has passed, so callers can tell the client to refresh rather than to log in again.
	ErrExpired = errors.New("token: expired")
)

// MaxAccessTokenLength bounds the input Verify will look at; longer input is rejected with ErrInvalid
// before any decoding, so an attacker cannot make the server base64- and JSON-decode large blobs.
const MaxAccessTokenLength = 4096

// MinSecretLength is the shortest HS256 secret NewHS256Issuer accepts: RFC 7518 §3.2 requires a key
// at least as long as the hash output (32 bytes).
const MinSecretLength = 32

const (
	algEdDSA = "EdDSA"
	algHS256 = "HS256"

	// typAccessToken is the RFC 9068 media type; it stops an ID token or another JWT minted with the
	// same key from being replayed as an access token.
	typAccessToken     = "at+jwt"
	typAccessTokenLong = "application/at+jwt"

	jtiBytes = 16
)

// Claims are the access-token claims: iss, aud, sub (user ID), sid, role, iat, exp and jti, and how
// and when the session's user authenticated: amr and auth_time (RFC 9068 §2.2.1, OIDC Core §2).
// nbf is honoured when present but never issued. amr and auth_time are optional on verification:
// tokens minted before they were issued stay valid, and count as not recently authenticated.
type Claims struct {
	jwt.RegisteredClaims
	// SessionID identifies the login session, so revoking the session revokes its access tokens.
	SessionID string `json:"sid"`
	// Role is the user's role when the token was issued.
	Role string `json:"role"`
	// AMR lists the authentication methods of the session's last authentication (RFC 8176 names:
	// "pwd", "otp", and "webauthn" for a passkey).
	AMR []string `json:"amr,omitempty"`
	// AuthTime is when the session's user last authenticated (a login or a reauthentication); a
	// refresh keeps it.
	AuthTime *jwt.NumericDate `json:"auth_time,omitempty"`
}

// Authentication is how and when a session's user last authenticated, carried by its access tokens.
type Authentication struct {
	AMR  []string
	Time time.Time // zero: not carried
}

// Options configure an Issuer.
type Options struct {
	Issuer   string        // iss; required
	Audience string        // aud; required
	TTL      time.Duration // access-token lifetime; at least one second (exp has second precision)
	Leeway   time.Duration // clock-skew leeway for exp, nbf and iat; 0 means none, negative is an error
	// Now is the clock; nil means time.Now. It must be safe for concurrent use.
	Now func() time.Time
}

// Issuer signs and verifies access tokens with one algorithm and a key set. Everything but the key set
// is immutable after construction; the key set is an immutable value swapped atomically by SetKeys, so
// an Issuer is safe for concurrent use, including SetKeys during Issue, Verify and JWKS.
type Issuer struct {
	alg      string
	method   jwt.SigningMethod
	keys     atomic.Pointer[keySet]
	iss, aud string
	ttl      time.Duration
	leeway   time.Duration
	now      func() time.Time
	parser   *jwt.Parser
	verified verifiedCache
}

// NewEdDSAIssuer returns an Issuer that signs with the Ed25519 key. Its kid is the RFC 7638 thumbprint
// of the public key, so it is stable across restarts and needs no extra state.
//
// It is a key set of one key that has always been active; SetKeys can replace it with a rotating set.
func NewEdDSAIssuer(key ed25519.PrivateKey, opts Options) (*Issuer, error) {
	return NewEdDSAKeySetIssuer([]Key{{Private: key}}, opts)
}

// checkEd25519Key validates key and returns a private copy of it and its public half.
func checkEd25519Key(key ed25519.PrivateKey) (ed25519.PrivateKey, ed25519.PublicKey, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, nil, fmt.Errorf("Ed25519 private key must be %d bytes, got %d", ed25519.PrivateKeySize, len(key))
	}
	// An ed25519.PrivateKey carries its public half; if that half is corrupt every signature would
	// fail to verify (and the JWKS would publish the wrong key), so catch it here rather than per request.
	priv := ed25519.NewKeyFromSeed(key.Seed())
	if subtle.ConstantTimeCompare(priv, key) != 1 {
		return nil, nil, errors.New("Ed25519 private key is inconsistent with its public key")
	}
	return priv, priv.Public().(ed25519.PublicKey), nil
}

// NewHS256Issuer returns an Issuer that signs with HMAC-SHA256 under secret, which must be at least
// MinSecretLength bytes. The kid is derived from the secret through a one-way hash so that it does not
// reveal it, yet changes when the secret does.
func NewHS256Issuer(secret []byte, opts Options) (*Issuer, error) {
	if len(secret) < MinSecretLength {
		return nil, fmt.Errorf("token: HS256 secret must be at least %d bytes, got %d", MinSecretLength, len(secret))
	}
	// Copy so a caller reusing or zeroing its buffer cannot change the key under a running issuer.
	s := append([]byte(nil), secret...)
	// No public half: the secret is never published in the JWKS.
	set := &keySet{keys: []setKey{{kid: hs256KeyID(s), signKey: s, verifyKey: s}}}
	return newIssuer(algHS256, jwt.SigningMethodHS256, set, opts)
}

func hs256KeyID(secret []byte) string {
	h := sha256.New()
	h.Write([]byte("gqlauth-kid:"))
	h.Write(secret)
	return "hs256-" + hex.EncodeToString(h.Sum(nil)[:8])
}

func newIssuer(alg string, method jwt.SigningMethod, set *keySet, opts Options) (*Issuer, error) {
	switch {
	case opts.Issuer == "":
		return nil, errors.New("token: Options.Issuer is required")
	case opts.Audience == "":
		return nil, errors.New("token: Options.Audience is required")
	case opts.TTL < time.Second:
		// exp is truncated to whole seconds, so a shorter TTL can mint tokens that are already expired.
		return nil, fmt.Errorf("token: Options.TTL must be at least 1s, got %v", opts.TTL)
	case opts.Leeway < 0:
		return nil, fmt.Errorf("token: Options.Leeway must not be negative, got %v", opts.Leeway)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	i := &Issuer{
		alg: alg, method: method,
		iss: opts.Issuer, aud: opts.Audience, ttl: opts.TTL, leeway: opts.Leeway, now: now,
		verified: newVerifiedCache(),
	}
	i.keys.Store(set)
	// The parser holds only configuration and is never mutated by ParseWithClaims, so one instance
	// can be shared by concurrent Verify calls.
	i.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{alg}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(opts.Issuer),
		jwt.WithAudience(opts.Audience),
		jwt.WithLeeway(opts.Leeway),
		jwt.WithTimeFunc(now),
		// Strict base64 rejects non-zero trailing bits, so one signed token has exactly one spelling.
		jwt.WithStrictDecoding(),
	)
	return i, nil
}

// TTL returns the lifetime of issued access tokens.
func (i *Issuer) TTL() time.Duration { return i.ttl }

// Algorithm returns the JWS algorithm the issuer signs with and accepts: "EdDSA" or "HS256".
func (i *Issuer) Algorithm() string { return i.alg }

// KeyID returns the kid of the key that signs now, as put in token headers and the JWKS.
func (i *Issuer) KeyID() string { return i.keys.Load().signer(i.now()).kid }

// Issue signs an access token for userID's session sessionID with role, valid from now for TTL,
// without amr and auth_time. expiresAt is the exp claim exactly as encoded (whole seconds).
func (i *Issuer) Issue(userID, sessionID, role string) (raw string, expiresAt time.Time, err error) {
	return i.IssueAuthenticated(userID, sessionID, role, Authentication{})
}

// IssueAuthenticated is Issue with the amr and auth_time claims of a.
func (i *Issuer) IssueAuthenticated(userID, sessionID, role string, a Authentication) (raw string, expiresAt time.Time, err error) {
	// Verify would reject these, so fail at the source instead of handing out a useless token.
	if userID == "" || sessionID == "" || role == "" {
		return "", time.Time{}, errors.New("token: userID, sessionID and role must not be empty")
	}
	jti := make([]byte, jtiBytes)
	if _, err := rand.Read(jti); err != nil {
		return "", time.Time{}, fmt.Errorf("token: jti: %w", err)
	}
	now := i.now()
	signer := i.keys.Load().signer(now)
	exp := jwt.NewNumericDate(now.Add(i.ttl))
	claims := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.iss,
			Subject:   userID,
			Audience:  jwt.ClaimStrings{i.aud},
			ExpiresAt: exp,
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        base64.RawURLEncoding.EncodeToString(jti),
		},
		SessionID: sessionID,
		Role:      role,
		AMR:       a.AMR,
	}
	if !a.Time.IsZero() {
		claims.AuthTime = jwt.NewNumericDate(a.Time)
	}
	t := jwt.NewWithClaims(i.method, claims)
	t.Header["typ"] = typAccessToken
	t.Header["kid"] = signer.kid
	raw, err = t.SignedString(signer.signKey)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token: sign: %w", err)
	}
	if len(raw) > MaxAccessTokenLength {
		return "", time.Time{}, fmt.Errorf("token: signed token is %d bytes, over MaxAccessTokenLength", len(raw))
	}
	return raw, exp.Time, nil
}

// Verify checks raw and returns its claims. It returns an error wrapping ErrExpired when the token is
// authentic and acceptable except that it has expired (beyond the leeway), and one wrapping ErrInvalid
// for every other problem.
func (i *Issuer) Verify(raw string) (*Claims, error) {
	if i == nil {
		return nil, invalid(errors.New("nil issuer"))
	}
	if len(raw) > MaxAccessTokenLength {
		return nil, invalid(fmt.Errorf("length %d exceeds %d", len(raw), MaxAccessTokenLength))
	}
	set := i.keys.Load()
	if e, ok := i.verified.get(raw); ok && e.set == set {
		now := i.now()
		// The same conditions as the full check: exp+leeway not reached and the key not retired.
		if now.Before(e.claims.ExpiresAt.Add(i.leeway)) {
			if _, ok := set.verifyKey(e.kid, now, i.retireAfter()); ok {
				return e.claims, nil
			}
		}
		// Otherwise the full check below gives the precise error.
	}
	claims := new(Claims)
	tok, err := i.parser.ParseWithClaims(raw, claims, i.keyFunc)
	if err != nil {
		if !onlyExpired(err) {
			return nil, invalid(err)
		}
		// Report expiry only for a token that would otherwise have been accepted, so "expired" never
		// tells a client that a broken token is worth refreshing for.
		if cerr := checkClaims(claims); cerr != nil {
			return nil, invalid(cerr)
		}
		return nil, fmt.Errorf("%w: %v", ErrExpired, err) //nolint:errorlint // %v on purpose: callers match ErrExpired, never golang-jwt's values
	}
	if err := checkClaims(claims); err != nil {
		return nil, invalid(err)
	}
	if kid, _ := tok.Header["kid"].(string); kid != "" && claims.ExpiresAt != nil {
		i.verified.put(raw, verifiedEntry{claims: claims, set: set, kid: kid})
	}
	return claims, nil
}

// invalid uses %v for the cause so callers can match only ErrInvalid, not golang-jwt's error values.
func invalid(cause error) error { return fmt.Errorf("%w: %v", ErrInvalid, cause) } //nolint:errorlint // see above

// keyFunc runs after the parser has pinned alg and before the signature is checked. It picks the key
// from our own set by kid, among the keys not yet retired; it never trusts key material (jwk, jku, x5u)
// carried in the token.
func (i *Issuer) keyFunc(t *jwt.Token) (any, error) {
	if t.Method == nil || t.Method.Alg() != i.alg {
		return nil, errors.New("unexpected alg")
	}
	typ, _ := t.Header["typ"].(string)
	if !strings.EqualFold(typ, typAccessToken) && !strings.EqualFold(typ, typAccessTokenLong) {
		return nil, errors.New("typ is not at+jwt")
	}
	// RFC 7515 §4.1.11: extensions listed in crit must be understood, and we understand none.
	if _, ok := t.Header["crit"]; ok {
		return nil, errors.New("unsupported crit header")
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errors.New("missing kid")
	}
	key, ok := i.keys.Load().verifyKey(kid, i.now(), i.retireAfter())
	if !ok {
		return nil, errors.New("unknown or retired kid")
	}
	return key, nil
}

// checkClaims enforces the claims golang-jwt has no option for. iat is required because every token
// we issue carries it; WithIssuedAt alone only checks it when present.
func checkClaims(c *Claims) error {
	var missing []string
	if c.Subject == "" {
		missing = append(missing, "sub")
	}
	if c.SessionID == "" {
		missing = append(missing, "sid")
	}
	if c.Role == "" {
		missing = append(missing, "role")
	}
	if c.ID == "" {
		missing = append(missing, "jti")
	}
	if c.IssuedAt == nil {
		missing = append(missing, "iat")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing claims: %s", strings.Join(missing, ", "))
	}
	return nil
}

// onlyExpired reports whether err is a claims-validation failure whose sole cause is expiry.
// golang-jwt joins all validation failures into one error, and errors.Is(err, jwt.ErrTokenExpired)
// is also true when, say, the issuer is wrong too; so every leaf of the error tree must be checked.
// Claims validation only runs after the signature verified, so such an error implies authenticity.
func onlyExpired(err error) bool {
	sawExpired := false
	var walk func(error) bool
	walk = func(e error) bool {
		switch u := e.(type) { //nolint:errorlint // walks the tree itself: errors.As would stop at the first match
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				if !walk(c) {
					return false
				}
			}
			return true
		case interface{ Unwrap() error }:
			if c := u.Unwrap(); c != nil {
				return walk(c)
			}
		}
		// A leaf of the tree walked above, compared by identity.
		switch e { //nolint:errorlint // see above
		case jwt.ErrTokenExpired: //nolint:errorlint // see above
			sawExpired = true
			return true
		case jwt.ErrTokenInvalidClaims: //nolint:errorlint // see above
			return true
		}
		return false
	}
	return walk(err) && sawExpired && errors.Is(err, jwt.ErrTokenInvalidClaims)
}
