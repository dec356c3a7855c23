package auth

import (
	"context"
	"strings"
	"sync"
	"time"

	"gqlauth/models"
)

// Principal is the authenticated caller, taken from a verified access token.
type Principal struct {
	UserID    string
	SessionID string
	Role      models.Role
	ExpiresAt time.Time
}

// Client describes where a request came from; it is recorded on the session.
type Client struct {
	UserAgent string
	IP        string
}

type credentialsKey struct{}

// credentials hold the request's Authorization header and authenticate it at most once, on first
// use: public operations never pay for (or fail because of) a stale or garbage header.
type credentials struct {
	svc    *Service
	header string
	client Client

	once      sync.Once
	principal *Principal
	err       error
}

// WithRequest returns a context that carries the request's Authorization header value and client
// information. Nothing is verified here; Principal does that on first use.
func (s *Service) WithRequest(ctx context.Context, authorization string, client Client) context.Context {
	return context.WithValue(ctx, credentialsKey{}, &credentials{svc: s, header: authorization, client: client})
}

// ClientFromContext returns the client information stored by WithRequest.
func ClientFromContext(ctx context.Context) Client {
	if c, ok := ctx.Value(credentialsKey{}).(*credentials); ok {
		return c.client
	}
	return Client{}
}

// PrincipalFromContext authenticates the request's bearer token (once per request) and returns the
// caller. It returns ErrTokenMissing, ErrTokenInvalid, ErrTokenExpired or ErrSessionRevoked, or
// another error when the revocation check could not be made.
func PrincipalFromContext(ctx context.Context) (*Principal, error) {
	c, ok := ctx.Value(credentialsKey{}).(*credentials)
	if !ok {
		return nil, ErrTokenMissing
	}
	c.once.Do(func() {
		raw, err := bearer(c.header)
		if err != nil {
			c.err = err
			return
		}
		c.principal, c.err = c.svc.Authenticate(ctx, raw)
	})
	return c.principal, c.err
}

// bearer extracts the token of an "Authorization: Bearer <token>" header (the scheme is
// case-insensitive, RFC 7235). An absent header is ErrTokenMissing; any other scheme or shape is
// ErrTokenInvalid.
func bearer(header string) (string, error) {
	header = strings.TrimSpace(header)
	if header == "" || strings.EqualFold(header, "Bearer") {
		return "", ErrTokenMissing
	}
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrTokenInvalid
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", ErrTokenMissing
	}
	return tok, nil
}
