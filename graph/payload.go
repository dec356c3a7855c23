package graph

import (
	"context"

	"gqlauth/auth"
	"gqlauth/graph/model"
)

// payload maps a service result to the GraphQL AuthPayload. In cookie mode the refresh token goes
// into the HttpOnly cookie instead of the body, where page scripts could read it.
func (r *Resolver) payload(ctx context.Context, p *auth.Pair, err error) (*model.AuthPayload, error) {
	if err != nil {
		return nil, err
	}
	out := &model.AuthPayload{
		AccessToken:           p.AccessToken,
		TokenType:             "Bearer",
		ExpiresIn:             p.ExpiresIn,
		AccessTokenExpiresAt:  p.AccessTokenExpiresAt,
		RefreshTokenExpiresAt: p.RefreshTokenExpiresAt,
		User:                  p.User,
	}
	if r.Cookies != nil {
		r.Cookies.SetRefreshToken(ctx, p.RefreshToken, p.RefreshTokenExpiresAt)
	} else {
		rt := p.RefreshToken
		out.RefreshToken = &rt
	}
	return out, nil
}

// presentedRefreshToken is the refresh token of the request: the argument if given, else (in cookie
// mode) the cookie.
func (r *Resolver) presentedRefreshToken(ctx context.Context, arg *string) (raw string, fromCookie bool) {
	if arg != nil {
		return *arg, false
	}
	if r.Cookies == nil {
		return "", false
	}
	if raw = r.Cookies.RefreshToken(ctx); raw != "" {
		return raw, true
	}
	return "", false
}
