package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
)

// migrationFiles holds the SQL migrations of both dialects, one directory each. Both directories
// hold the same versions: a change to the schema is a new pair of files (see README, Migrations).
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// versionTable is where goose records the applied versions (its default name).
const versionTable = goose.DefaultTablename

// migrateLockID is the Postgres advisory lock held while migrating: the same key the AutoMigrate
// releases used, so an old and a new instance starting together during a rollout also take turns.
const migrateLockID = 0x6771_6c61_7574_68 // "gqlauth"

// ErrSchemaBehind is returned (wrapped, with the versions) by Open without Options.Migrate when the
// database lacks migrations that this build has.
var ErrSchemaBehind = errors.New("store: database schema is behind this build")

// Migration is one embedded migration and its state in the database.
type Migration struct {
	Version   int64
	Name      string    // the file name, such as 00001_initial.sql
	Applied   bool      // recorded in the database's version table
	AppliedAt time.Time // when it was recorded (the database's clock); zero when not applied
}

// Migrator applies and rolls back the embedded migrations on one database. It runs goose's Provider
// over the store's own connection pool, so the SQLite pragmas (foreign keys, busy timeout) hold for
// migrations too.
type Migrator struct {
	db       *DB
	provider *goose.Provider
	ownsDB   bool // opened by OpenMigrator: Close closes the pool
}

// OpenMigrator connects to dsn without touching the schema, for tools that manage it (authctl
// migrate). Call Close when done. An error that means the database cannot be reached matches
// auth.ErrUnavailable.
func OpenMigrator(ctx context.Context, dsn string) (*Migrator, error) {
	db, err := connect(dsn)
	if err != nil {
		return nil, err
	}
	if err := db.Ping(ctx); err != nil {
		_ = db.Close()
		return nil, markUnavailable(fmt.Errorf("store: %w", err))
	}
	m, err := db.migrator()
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	m.ownsDB = true
	return m, nil
}

// migrator returns a Migrator over db's pool, with the migrations of db's dialect.
func (db *DB) migrator() (*Migrator, error) {
	sqlDB, err := db.gorm.DB()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	dialect := goose.DialectSQLite3
	if db.postgres {
		dialect = goose.DialectPostgres
	}
	files, err := fs.Sub(migrationFiles, path.Join("migrations", db.Dialect()))
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	// No goose locker: the advisory lock is taken around each run by locked, on its own connection,
	// so that it also covers goose's creation of its version table (goose takes its lockers after).
	// The global registry holds Go migrations registered by init functions; we have none, and a
	// dependency's must not run here.
	p, err := goose.NewProvider(dialect, sqlDB, files, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	return &Migrator{db: db, provider: p}, nil
}

// Close releases the connection pool of a Migrator from OpenMigrator.
func (m *Migrator) Close() error {
	if !m.ownsDB {
		return nil
	}
	return m.db.Close()
}

// Dialect is "postgres" or "sqlite".
func (m *Migrator) Dialect() string { return m.db.Dialect() }

// Up applies every pending migration, in order, each in its own transaction, and returns those it
// applied (none when the schema was up to date). A database that the AutoMigrate releases created is
// adopted by the first migration, after a check that it has every column of the models (an error
// names the first one missing, and nothing is changed).
func (m *Migrator) Up(ctx context.Context) ([]Migration, error) {
	var applied []Migration
	err := m.locked(ctx, func() error {
		if err := m.checkAdoptable(ctx); err != nil {
			return err
		}
		res, err := m.provider.Up(ctx)
		for _, r := range res {
			applied = append(applied, migrationOf(r.Source))
		}
		return err
	})
	if err != nil {
		return applied, markUnavailable(fmt.Errorf("store: migrate up: %w", err))
	}
	return applied, nil
}

// Down rolls back the most recently applied migration and returns it. It returns an error matching
// goose.ErrNoNextVersion when no migration is applied. Rolling back the first migration drops every
// table.
func (m *Migrator) Down(ctx context.Context) (Migration, error) {
	var done Migration
	err := m.locked(ctx, func() error {
		res, err := m.provider.Down(ctx)
		if err == nil {
			done = migrationOf(res.Source)
		}
		return err
	})
	if err != nil {
		if errors.Is(err, goose.ErrNoNextVersion) {
			return done, fmt.Errorf("store: migrate down: no migration is applied: %w", err)
		}
		return done, markUnavailable(fmt.Errorf("store: migrate down: %w", err))
	}
	return done, nil
}

// Status lists every embedded migration, oldest first, with whether the database has it. It changes
// nothing: on a database that goose never touched, every migration is pending.
func (m *Migrator) Status(ctx context.Context) ([]Migration, error) {
	var list []Migration
	if !m.db.gorm.WithContext(ctx).Migrator().HasTable(versionTable) {
		for _, s := range m.provider.ListSources() {
			list = append(list, migrationOf(s))
		}
		// HasTable reports an error as "no table": make sure it was an answer.
		if err := m.db.Ping(ctx); err != nil {
			return nil, markUnavailable(fmt.Errorf("store: migration status: %w", err))
		}
		return list, nil
	}
	st, err := m.provider.Status(ctx)
	if err != nil {
		return nil, markUnavailable(fmt.Errorf("store: migration status: %w", err))
	}
	for _, s := range st {
		mig := migrationOf(s.Source)
		mig.Applied, mig.AppliedAt = s.State == goose.StateApplied, s.AppliedAt
		list = append(list, mig)
	}
	return list, nil
}

// check returns an error matching ErrSchemaBehind when a migration is pending. It writes nothing
// (goose would create its version table to answer, so a missing table is read as "nothing applied").
func (m *Migrator) check(ctx context.Context) error {
	list, err := m.Status(ctx)
	if err != nil {
		return err
	}
	var pending []string
	var current int64
	for _, mig := range list {
		if mig.Applied {
			current = max(current, mig.Version)
		} else {
			pending = append(pending, mig.Name)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	return fmt.Errorf("%w (database at version %d, this build needs %d; pending: %s) and migrating at start is off: run `authctl migrate up` with this build's configuration, then start again",
		ErrSchemaBehind, current, list[len(list)-1].Version, strings.Join(pending, ", "))
}

// checkAdoptable refuses a database with the models' tables but without goose's version table (one
// created by the AutoMigrate releases) when it lacks a column of the first migration: that migration
// creates only what is missing as a whole (IF NOT EXISTS), so it would record version 1 over a table
// that the code cannot use. Such a database was last opened by a release older than AutoMigrate's
// last model change. Columns that later migrations add are theirs to add, so they are not looked for.
func (m *Migrator) checkAdoptable(ctx context.Context) error {
	g := m.db.gorm.WithContext(ctx)
	if g.Migrator().HasTable(versionTable) {
		return nil
	}
	for _, table := range adoptedTables {
		if !g.Migrator().HasTable(table.name) {
			continue
		}
		for _, col := range table.columns {
			if !g.Migrator().HasColumn(table.name, col) {
				return fmt.Errorf("the existing table %s has no column %s: this database was last migrated by an older release; start the last release before versioned migrations on it once, then this one", table.name, col)
			}
		}
	}
	return nil
}

// adoptedTables are the tables and columns of the first migration: the schema of the last
// AutoMigrate release, frozen (the models move on, with migrations of their own).
var adoptedTables = []struct {
	name    string
	columns []string
}{
	{"users", []string{"id", "email", "password_hash", "role", "credentials_version", "created_at", "updated_at", "deleted_at"}},
	{"sessions", []string{"id", "user_id", "created_at", "last_used_at", "expires_at", "revoked_at", "user_agent", "ip"}},
	{"refresh_tokens", []string{"id", "token_hash", "session_id", "user_id", "parent_id", "created_at", "expires_at", "rotated_at", "revoked_at"}},
}

// locked runs fn holding the Postgres advisory lock, so instances that start together migrate one
// after the other and the later ones find nothing to do. The lock is session-level, on a connection
// of its own that is held until fn returns; goose's statements run on other connections of the pool.
// pg_advisory_lock waits as long as ctx allows. On SQLite it just runs fn: an SQLite file serves one
// server (the database is a file on its disk), and each migration is a write transaction.
func (m *Migrator) locked(ctx context.Context, fn func() error) error {
	if !m.db.postgres {
		return fn()
	}
	sqlDB, err := m.db.gorm.DB()
	if err != nil {
		return err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(migrateLockID)); err != nil {
		return err
	}
	defer unlock(ctx, conn)
	return fn()
}

// unlock releases the advisory lock, even when ctx has ended. If that fails, the connection is
// discarded instead of going back to the pool: closing the session releases its locks, whereas a
// pooled connection would keep holding the lock and block every later migration.
func unlock(ctx context.Context, conn *sql.Conn) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := conn.ExecContext(uctx, "SELECT pg_advisory_unlock($1)", int64(migrateLockID)); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}

func migrationOf(s *goose.Source) Migration {
	return Migration{Version: s.Version, Name: path.Base(s.Path)}
}
