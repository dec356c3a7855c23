package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"gqlauth/store"
)

// migrate runs "migrate [up|down|status]"; a bare "migrate" is "migrate up", as it was before the
// migrations were versioned.
func (c *cli) migrate(ctx context.Context, args []string) error {
	sub := "up"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
		if sub != "up" && sub != "down" && sub != "status" {
			return usagef("migrate: unexpected argument %q (the subcommands are up, down and status)", sub)
		}
	}
	fs := flag.NewFlagSet("migrate "+sub, flag.ContinueOnError)
	force := false
	if sub == "down" {
		fs.BoolVar(&force, "force", false, "allow rolling back the first migration, which drops every table")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	m, err := store.OpenMigrator(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer m.Close()
	switch sub {
	case "status":
		return c.migrateStatus(ctx, m)
	case "down":
		return c.migrateDown(ctx, m, force)
	}
	applied, err := m.Up(ctx)
	for _, mig := range applied {
		fmt.Fprintf(c.stdout, "applied %s\n", mig.Name)
	}
	if err != nil {
		return err
	}
	list, err := m.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "schema is up to date (%s, version %d)\n", m.Dialect(), current(list))
	return nil
}

func (c *cli) migrateStatus(ctx context.Context, m *store.Migrator) error {
	list, err := m.Status(ctx)
	if err != nil {
		return err
	}
	pending := 0
	for _, mig := range list {
		state := "pending"
		if mig.Applied {
			state = "applied " + mig.AppliedAt.UTC().Format("2006-01-02 15:04:05")
		} else {
			pending++
		}
		fmt.Fprintf(c.stdout, "%-8d %-40s %s\n", mig.Version, mig.Name, state)
	}
	fmt.Fprintf(c.stdout, "%s: version %d, %d pending\n", m.Dialect(), current(list), pending)
	return nil
}

func (c *cli) migrateDown(ctx context.Context, m *store.Migrator, force bool) error {
	list, err := m.Status(ctx)
	if err != nil {
		return err
	}
	v := current(list)
	if v == 0 {
		return errors.New("migrate down: no migration is applied")
	}
	// The first migration creates the tables themselves: rolling it back deletes every user and
	// session, which deserves more than a typo of "up".
	if len(list) > 0 && v == list[0].Version && !force {
		return fmt.Errorf("migrate down: rolling back %s drops every table and all their rows; add -force to do it", list[0].Name)
	}
	mig, err := m.Down(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "rolled back %s\n", mig.Name)
	return nil
}

// current is the highest applied version in list, 0 when none is.
func current(list []store.Migration) int64 {
	var v int64
	for _, mig := range list {
		if mig.Applied {
			v = max(v, mig.Version)
		}
	}
	return v
}
