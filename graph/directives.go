package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"gqlauth/auth"
	"gqlauth/models"
)

// authDirective implements @auth(requires: Role, fresh: Boolean): the field runs only for a caller
// whose access token is valid, whose session is live and whose role is high enough, and, with fresh,
// whose authentication is recent enough (svc.CheckFresh).
func authDirective(svc *auth.Service) func(ctx context.Context, _ any, next graphql.Resolver, requires *models.Role, fresh *bool) (any, error) {
	return func(ctx context.Context, _ any, next graphql.Resolver, requires *models.Role, fresh *bool) (any, error) {
		want := models.RoleUser
		if requires != nil {
			want = *requires
		}
		p, err := auth.PrincipalFromContext(ctx)
		if err != nil {
			return nil, err
		}
		if err := auth.Authorize(p, want); err != nil {
			return nil, err
		}
		if fresh != nil && *fresh {
			if err := svc.CheckFresh(p); err != nil {
				return nil, err
			}
		}
		return next(ctx)
	}
}

// publicDirective implements @public: it only marks a field as deliberately open.
func publicDirective(ctx context.Context, _ any, next graphql.Resolver) (any, error) {
	return next(ctx)
}

// principal returns the caller of an @auth field. The directive has already authenticated, so this
// only reads the memoized result.
func principal(ctx context.Context) (*auth.Principal, error) {
	return auth.PrincipalFromContext(ctx)
}
