// Package graph is the GraphQL glue: gqlgen's generated executor, thin resolvers that call the auth
// service, the @auth directive, the one table that turns errors into extensions.code, and the HTTP handler.
package graph

// This file is hand-written; gqlgen does not regenerate it.

//go:generate go run github.com/99designs/gqlgen generate

import "gqlauth/auth"

// Resolver is the root resolver: the auth service, and how refresh tokens travel (body or cookie).
type Resolver struct {
	Auth    *auth.Service
	Cookies CookieOptions
}
