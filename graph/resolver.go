// Package graph is the GraphQL glue: gqlgen's generated executor, thin resolvers that call the auth
// service, the @auth and @public directives, the one table that turns errors into extensions.code,
// the operation limits and their query cache, and New, which returns the gqlgen server. It knows no
// HTTP: the transports, routes and middleware are package httpapi's.
package graph

// This file is hand-written; gqlgen does not regenerate it.

//go:generate go run github.com/99designs/gqlgen generate

import (
	"context"
	"errors"

	"gqlauth/auth"
)

// Resolver is the root resolver: the auth service, and how refresh tokens travel (in the body, or in
// the cookie when Cookies is not nil).
type Resolver struct {
	Auth    *auth.Service
	Cookies RefreshCookies
}

// clearRefreshCookie tells the browser to drop the refresh cookie (in cookie mode).
func (r *Resolver) clearRefreshCookie(ctx context.Context) {
	if r.Cookies != nil {
		r.Cookies.ClearRefreshToken(ctx)
	}
}

// undecided reports whether err left the outcome open (the database was unavailable or the request
// timed out): the browser then keeps its refresh cookie, so that a retried logout can still end the
// session, or a retried refresh can still rotate it.
func undecided(err error) bool {
	return errors.Is(err, auth.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// sessionEventsBuffer is how many events a sessionEvents subscription queues for a client that reads
// slowly; beyond, events are dropped (never the socket's own SESSION_REVOKED).
const sessionEventsBuffer = 8
