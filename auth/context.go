package auth

import (
	"context"
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
	// AMR and AuthTime are how and when the session's user last authenticated, from the token's amr
	// and auth_time claims (zero for a token minted before they were issued).
	AMR      []string
	AuthTime time.Time
}

// Client describes where a request came from; it is recorded on the session.
type Client struct {
	UserAgent string
	IP        string
}

type credentialsKey struct{}

// credentials hold the request's access token and authenticate it at most once, on first use:
// public operations never pay for (or fail because of) a stale or garbage token.
type credentials struct {
	svc      *Service
	token    string
	tokenErr error // why the transport found no token (ErrTokenMissing, ErrTokenInvalid)
	client   Client

	once      sync.Once
	principal *Principal
	err       error
}

// WithRequest returns a context that carries the request's access token and client information.
// token is the access token as the transport extracted it (from an Authorization header, say);
// tokenErr, if not nil, is why it could not (ErrTokenMissing, ErrTokenInvalid), and is what
// PrincipalFromContext will return. An empty token with a nil tokenErr counts as ErrTokenMissing.
// Nothing is verified here; PrincipalFromContext does that on first use.
func (s *Service) WithRequest(ctx context.Context, token string, tokenErr error, client Client) context.Context {
	if tokenErr == nil && token == "" {
		tokenErr = ErrTokenMissing
	}
	return context.WithValue(ctx, credentialsKey{}, &credentials{svc: s, token: token, tokenErr: tokenErr, client: client})
}

// ClientFromContext returns the client information stored by WithRequest.
func ClientFromContext(ctx context.Context) Client {
	if c, ok := ctx.Value(credentialsKey{}).(*credentials); ok {
		return c.client
	}
	return Client{}
}

// PrincipalFromContext authenticates the request's access token (once per request) and returns the
// caller. It returns ErrTokenMissing, ErrTokenInvalid, ErrTokenExpired or ErrSessionRevoked, or
// another error when the revocation check could not be made.
func PrincipalFromContext(ctx context.Context) (*Principal, error) {
	c, ok := ctx.Value(credentialsKey{}).(*credentials)
	if !ok {
		return nil, ErrTokenMissing
	}
	c.once.Do(func() {
		if c.tokenErr != nil {
			c.err = c.tokenErr
			return
		}
		c.principal, c.err = c.svc.Authenticate(ctx, c.token)
	})
	return c.principal, c.err
}
