//go:build tools

// Package tools pins the gqlgen code generator in go.mod, so `go run github.com/99designs/gqlgen`
// and `go generate ./...` use the version the generated code was made with.
package tools

import (
	_ "github.com/99designs/gqlgen"
)
