package graph

import (
	"gqlauth/auth"
	"gqlauth/graph/model"
)

// payload maps a service result to the GraphQL AuthPayload.
func payload(p *auth.Pair, err error) (*model.AuthPayload, error) {
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
	if p.RefreshToken != "" {
		rt := p.RefreshToken
		out.RefreshToken = &rt
	}
	return out, nil
}
