package main

import (
	"context"
	"strings"
	"testing"

	"gqlauth/internal/testdb"
	"gqlauth/store"
)

func TestMigrateCommands(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		env := map[string]string{"DATA_DIR": t.TempDir(), "DATABASE_URL": dsn}

		// status changes nothing, even on an empty database.
		r := ctl(env, "", "migrate", "status")
		r.want(t, 0, "1        00001_initial.sql                        pending", "")
		r.want(t, 0, "2        00002_email_tokens_and_outbox.sql        pending", "")
		r.want(t, 0, "3        00003_mfa_and_passkeys.sql               pending", "")
		ctl(env, "", "migrate", "status").want(t, 0, "version 0, 3 pending", "")
		// Bare "migrate" is "migrate up", as before versioned migrations.
		ctl(env, "", "migrate").want(t, 0, "applied 00001_initial.sql\napplied 00002_email_tokens_and_outbox.sql\napplied 00003_mfa_and_passkeys.sql\nschema is up to date", "")
		ctl(env, "", "migrate", "up").want(t, 0, "schema is up to date", "")
		if r := ctl(env, "", "migrate", "up"); strings.Contains(r.stdout, "applied") {
			t.Fatalf("second up applied something: %q", r.stdout)
		}
		r = ctl(env, "", "migrate", "status")
		r.want(t, 0, "version 3, 0 pending", "")
		if !strings.Contains(r.stdout, "00001_initial.sql                        applied 2") ||
			!strings.Contains(r.stdout, "00002_email_tokens_and_outbox.sql        applied 2") ||
			!strings.Contains(r.stdout, "00003_mfa_and_passkeys.sql               applied 2") {
			t.Fatalf("status after up: %q", r.stdout)
		}
		if _, err := store.Open(context.Background(), dsn, store.Options{Migrate: false}); err != nil {
			t.Fatalf("open after migrate up: %v", err)
		}

		// A later migration rolls back without -force.
		ctl(env, "", "migrate", "down").want(t, 0, "rolled back 00003_mfa_and_passkeys.sql", "")
		ctl(env, "", "migrate", "status").want(t, 0, "version 2, 1 pending", "")
		ctl(env, "", "migrate", "down").want(t, 0, "rolled back 00002_email_tokens_and_outbox.sql", "")
		ctl(env, "", "migrate", "status").want(t, 0, "version 1, 2 pending", "")
		// Rolling back the first migration drops every table: refused without -force.
		ctl(env, "", "migrate", "down").want(t, 1, "", "drops every table and all their rows; add -force")
		ctl(env, "", "migrate", "status").want(t, 0, "version 1, 2 pending", "")
		ctl(env, "", "migrate", "down", "-force").want(t, 0, "rolled back 00001_initial.sql", "")
		ctl(env, "", "migrate", "status").want(t, 0, "version 0, 3 pending", "")
		ctl(env, "", "migrate", "down", "-force").want(t, 1, "", "no migration is applied")
		ctl(env, "", "migrate", "up").want(t, 0, "applied 00001_initial.sql", "")
	})
}

func TestMigrateUsage(t *testing.T) {
	env := map[string]string{"DATA_DIR": t.TempDir(), "DATABASE_URL": testdb.SQLite(t)}
	ctl(env, "", "migrate", "sideways").want(t, 2, "", `migrate: unexpected argument "sideways" (the subcommands are up, down and status)`)
	ctl(env, "", "migrate", "up", "extra").want(t, 2, "", `unexpected argument "extra"`)
	ctl(env, "", "migrate", "status", "-force").want(t, 2, "", "flag provided but not defined: -force")
	ctl(env, "", "migrate", "-h").want(t, 0, "authctl migrate status", "")
	ctl(env, "", "migrate", "down", "-h").want(t, 0, "authctl migrate down [-force]", "")
	ctl(env, "", "-h").want(t, 0, "authctl migrate [up]", "")
}
