package memstore_test

import (
	"testing"

	"gqlauth/auth"
	"gqlauth/auth/memstore"
	"gqlauth/auth/storetest"
)

// The fake passes the same conformance suite as the SQL stores.
func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(*testing.T) auth.Store { return memstore.New() })
}
