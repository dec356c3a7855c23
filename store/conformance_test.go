package store_test

import (
	"testing"

	"gqlauth/auth"
	"gqlauth/auth/storetest"
	"gqlauth/internal/testdb"
)

// TestStoreConformance runs auth.Store's conformance suite on SQLite and Postgres, a fresh database
// per case.
func TestStoreConformance(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) auth.Store { return mustOpen(t, testdb.SQLite(t)) })
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) auth.Store { return mustOpen(t, testdb.Postgres(t)) })
	})
}
