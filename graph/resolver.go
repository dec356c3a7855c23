// Package graph is the GraphQL glue: gqlgen's generated executor, thin resolvers that call the auth
// service, the @auth directive, the one table that turns errors into extensions.code, and the HTTP handler.
package graph

// This file is hand-written; gqlgen does not regenerate it.

//go:generate go run github.com/99designs/gqlgen generate

import (
	"context"
	"errors"

	"gqlauth/auth"
)

// Resolver is the root resolver: the auth service, and how refresh tokens travel (body or cookie).
type Resolver struct {
	Auth    *auth.Service
	Cookies CookieOptions
}

// undecided reports whether err left the outcome open (the database was unavailable or the request
// timed out): the browser then keeps its refresh cookie, so that a retried logout can still end the
// session, or a retried refresh can still rotate it.
func undecided(err error) bool {
	return errors.Is(err, auth.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}
