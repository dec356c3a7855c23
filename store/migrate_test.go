package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/google/uuid"
	"github.com/pressly/goose/v3"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"gqlauth/auth"
	"gqlauth/internal/testdb"
	"gqlauth/models"
	"gqlauth/password"
	"gqlauth/store"
	"gqlauth/token"
)

// The models as they were when the schema was last created by AutoMigrate (the release before
// versioned migrations), frozen here: the adoption tests build that release's database from them.
// They must not follow later changes to models, which come with migrations of their own (applying
// those on top of a schema AutoMigrate made from newer models would fail for the wrong reason).
type (
	legacyUser struct {
		ID                 string     `gorm:"primaryKey;size:36"`
		Email              string     `gorm:"size:254;not null;uniqueIndex"`
		PasswordHash       string     `gorm:"size:255;not null"`
		Role               string     `gorm:"size:16;not null;default:USER"`
		CredentialsVersion int64      `gorm:"not null;default:0"`
		CreatedAt          time.Time  `gorm:"not null"`
		UpdatedAt          time.Time  `gorm:"not null"`
		DeletedAt          *time.Time `gorm:"index"`
	}
	legacySession struct {
		ID         string      `gorm:"primaryKey;size:36"`
		UserID     string      `gorm:"size:36;not null;index"`
		User       *legacyUser `gorm:"constraint:OnDelete:CASCADE"`
		CreatedAt  time.Time   `gorm:"not null"`
		LastUsedAt time.Time   `gorm:"not null"`
		ExpiresAt  time.Time   `gorm:"not null"`
		RevokedAt  *time.Time  `gorm:"index"`
		UserAgent  *string     `gorm:"size:512"`
		IP         *string     `gorm:"size:64"`
	}
	legacyRefreshToken struct {
		ID        uint64         `gorm:"primaryKey;autoIncrement"`
		TokenHash []byte         `gorm:"size:32;not null;uniqueIndex"`
		SessionID string         `gorm:"size:36;not null;index"`
		Session   *legacySession `gorm:"constraint:OnDelete:CASCADE"`
		UserID    string         `gorm:"size:36;not null;index"`
		User      *legacyUser    `gorm:"constraint:OnDelete:CASCADE"`
		ParentID  *uint64
		CreatedAt time.Time `gorm:"not null"`
		ExpiresAt time.Time `gorm:"not null;index"`
		RotatedAt *time.Time
		RevokedAt *time.Time
	}
)

func (legacyUser) TableName() string         { return "users" }
func (legacySession) TableName() string      { return "sessions" }
func (legacyRefreshToken) TableName() string { return "refresh_tokens" }

// mustGorm opens dsn straight through GORM, as the AutoMigrate releases did, without the store.
func mustGorm(t *testing.T, dsn string) *gorm.DB {
	t.Helper()
	var dial gorm.Dialector
	if store.IsPostgres(dsn) {
		dial = postgres.Open(dsn)
	} else {
		dial = sqlite.Open(dsn + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)")
	}
	g, err := gorm.Open(dial, &gorm.Config{Logger: logger.Discard, NowFunc: func() time.Time { return time.Now().UTC() }})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, err := g.DB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sqlDB.Close() })
	return g
}

// freshDSN is a second, empty database on the engine of dsn.
func freshDSN(t *testing.T, dsn string) string {
	if store.IsPostgres(dsn) {
		return testdb.Postgres(t)
	}
	return testdb.SQLite(t)
}

// migrationTestParams keep password hashing cheap.
var migrationTestParams = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func mustService(t *testing.T, db *store.DB) *auth.Service {
	t.Helper()
	issuer, err := token.NewHS256Issuer(bytes.Repeat([]byte("k"), 32), token.Options{Issuer: "gqlauth", Audience: "gqlauth", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := auth.NewService(db, issuer, auth.Options{RefreshTokenTTL: time.Hour, Password: migrationTestParams, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func rowCount(t *testing.T, g *gorm.DB, table string) int64 {
	t.Helper()
	var n int64
	if err := g.Table(table).Count(&n).Error; err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// A database created and filled by the AutoMigrate releases is adopted by the first migration: no
// row is lost, the old password still logs in and the old refresh token still refreshes.
func TestMigrationsAdoptAutoMigrateDatabase(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		old := mustGorm(t, dsn)
		if err := old.AutoMigrate(&legacyUser{}, &legacySession{}, &legacyRefreshToken{}); err != nil {
			t.Fatal(err)
		}
		// Rows as the AutoMigrate release wrote them: a canonical e-mail, an argon2id hash, a session
		// with its live token, the token it replaced, and a second, revoked session.
		now := time.Now().UTC().Truncate(time.Microsecond)
		hash, err := password.Hash("correct horse battery", migrationTestParams)
		if err != nil {
			t.Fatal(err)
		}
		u := legacyUser{ID: uuid.NewString(), Email: "alice@example.com", PasswordHash: hash, Role: string(models.RoleUser), CreatedAt: now, UpdatedAt: now}
		live := legacySession{ID: uuid.NewString(), UserID: u.ID, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(time.Hour)}
		revokedAt := now.Add(-time.Minute)
		revoked := legacySession{ID: uuid.NewString(), UserID: u.ID, CreatedAt: now.Add(-time.Hour), LastUsedAt: now, ExpiresAt: now.Add(time.Hour), RevokedAt: &revokedAt}
		_, firstHash, _ := token.NewRefreshToken()
		raw, liveHash, err := token.NewRefreshToken()
		if err != nil {
			t.Fatal(err)
		}
		first := legacyRefreshToken{TokenHash: firstHash, SessionID: live.ID, UserID: u.ID, CreatedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour), RotatedAt: &now}
		for _, row := range []any{&u, &live, &revoked, &first} {
			if err := old.Omit("User", "Session").Create(row).Error; err != nil {
				t.Fatal(err)
			}
		}
		next := legacyRefreshToken{TokenHash: liveHash, SessionID: live.ID, UserID: u.ID, ParentID: &first.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := old.Omit("User", "Session").Create(&next).Error; err != nil {
			t.Fatal(err)
		}

		db := mustOpen(t, dsn)
		g := db.Gorm()
		for table, want := range map[string]int64{"users": 1, "sessions": 2, "refresh_tokens": 2} {
			if got := rowCount(t, g, table); got != want {
				t.Fatalf("%s: %d rows after adoption, want %d", table, got, want)
			}
		}
		m, err := store.OpenMigrator(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if list, err := m.Status(ctx); err != nil || !list[0].Applied {
			t.Fatalf("status after adoption: %+v, %v", list, err)
		}

		svc := mustService(t, db)
		pair, err := svc.Refresh(ctx, raw, auth.Client{IP: "192.0.2.1"})
		if err != nil {
			t.Fatalf("refresh with the old token: %v", err)
		}
		if pair.SessionID != live.ID || pair.User.ID != u.ID {
			t.Fatalf("refresh: session %s user %s, want %s %s", pair.SessionID, pair.User.ID, live.ID, u.ID)
		}
		if _, err := svc.Login(ctx, "Alice@Example.com", "correct horse battery", auth.Client{IP: "192.0.2.1"}); err != nil {
			t.Fatalf("login with the old password: %v", err)
		}
		// The refresh token's id sequence carried over: new ids follow the old ones.
		var maxID uint64
		if err := g.Raw("SELECT MAX(id) FROM refresh_tokens").Scan(&maxID).Error; err != nil || maxID <= next.ID {
			t.Fatalf("refresh token ids: max %d (err %v), want above %d", maxID, err, next.ID)
		}
		if got := rowCount(t, g, "users"); got != 1 {
			t.Fatalf("users: %d rows, want 1", got)
		}
		if s, err := db.SessionByID(ctx, revoked.ID); err != nil || s.RevokedAt == nil {
			t.Fatalf("revoked session after adoption: %+v, %v", s, err)
		}
	})
}

// A table that the AutoMigrate releases made from an older model lacks a column: the first
// migration would skip the table, so Open refuses before recording anything.
func TestMigrationsRefuseToAdoptAnIncompleteTable(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		old := mustGorm(t, dsn)
		if err := old.AutoMigrate(&legacyUser{}, &legacySession{}, &legacyRefreshToken{}); err != nil {
			t.Fatal(err)
		}
		if err := old.Migrator().DropColumn(&legacyUser{}, "credentials_version"); err != nil {
			t.Fatal(err)
		}
		_, err := store.Open(context.Background(), dsn)
		if err == nil || !strings.Contains(err.Error(), "users has no column credentials_version") {
			t.Fatalf("err = %v, want the missing column named", err)
		}
		if old.Migrator().HasTable("goose_db_version") {
			t.Fatal("a refused adoption recorded a version")
		}
	})
}

// The migrations build exactly the schema that AutoMigrate builds from today's models: the same
// tables, columns, types, nullability, defaults, indexes and constraints. A model change without a
// migration (or the reverse) fails here.
func TestMigrationsMatchModels(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		auto := mustGorm(t, dsn)
		if err := auto.AutoMigrate(&models.User{}, &models.Session{}, &models.RefreshToken{}, &models.EmailToken{}, &models.OutboxMail{}, &models.RecoveryCode{}, &models.AuthChallenge{}, &models.Passkey{}); err != nil {
			t.Fatal(err)
		}
		migrated := mustOpen(t, freshDSN(t, dsn))
		want, got := describeSchema(t, auto), describeSchema(t, migrated.Gorm())
		if len(want) == 0 {
			t.Fatal("AutoMigrate's schema described as empty")
		}
		var diff []string
		for _, l := range want {
			if !slices.Contains(got, l) {
				diff = append(diff, "- "+l)
			}
		}
		for _, l := range got {
			if !slices.Contains(want, l) {
				diff = append(diff, "+ "+l)
			}
		}
		if len(diff) > 0 {
			t.Fatalf("schema from the migrations differs from AutoMigrate of the models (-models +migrations); "+
				"add a migration in store/migrations/{sqlite,postgres} for the model change:\n%s", strings.Join(diff, "\n"))
		}
	})
}

// describeSchema lists the schema of the application's tables (not goose's) as sorted lines, one per
// column, index and constraint, without column order: ALTER TABLE appends columns at the end, where
// AutoMigrate on an empty database puts them in field order, and order does not matter to queries.
func describeSchema(t *testing.T, g *gorm.DB) []string {
	t.Helper()
	var lines []string
	add := func(query string, args ...any) {
		rows, err := g.Raw(query, args...).Rows()
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			parts := make([]string, len(cols))
			for i, v := range vals {
				parts[i] = cols[i] + "=" + map[bool]string{true: v.String, false: "NULL"}[v.Valid]
			}
			lines = append(lines, strings.Join(parts, " "))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if g.Name() == "postgres" {
		add(`SELECT table_name, column_name, data_type, character_maximum_length, is_nullable, column_default
			FROM information_schema.columns WHERE table_schema = current_schema() AND table_name <> 'goose_db_version'`)
		add(`SELECT tablename, indexname, replace(indexdef, current_schema() || '.', '') AS indexdef
			FROM pg_indexes WHERE schemaname = current_schema() AND tablename <> 'goose_db_version'`)
		add(`SELECT conrelid::regclass::text AS tbl, conname, contype, pg_get_constraintdef(oid) AS def
			FROM pg_constraint WHERE connamespace = current_schema()::regnamespace AND conrelid::regclass::text <> 'goose_db_version'`)
		add(`SELECT sequence_name, data_type FROM information_schema.sequences WHERE sequence_schema = current_schema()
			AND sequence_name NOT LIKE 'goose%'`)
	} else {
		var tables []struct{ Name, SQL string }
		if err := g.Raw(`SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'goose_db_version'`).
			Scan(&tables).Error; err != nil {
			t.Fatal(err)
		}
		for _, tb := range tables {
			// A default is kept as written: AutoMigrate wrote "USER" (a double-quoted string, which
			// SQLite reads as the text USER when no column has that name), the migration 'USER'.
			add(`SELECT ? AS tbl, name, type, "notnull", replace(dflt_value, '"', '''') AS dflt, pk FROM pragma_table_info(?)`, tb.Name, tb.Name)
			add(`SELECT ? AS tbl, l.name, l."unique", l.origin, l.partial, group_concat(i.name) AS cols
				FROM pragma_index_list(?) l JOIN pragma_index_info(l.name) i GROUP BY l.name`, tb.Name, tb.Name)
			add(`SELECT ? AS tbl, "table", "from", "to", on_update, on_delete, "match" FROM pragma_foreign_key_list(?)`, tb.Name, tb.Name)
			lines = append(lines, fmt.Sprintf("tbl=%s autoincrement=%v check=%v", tb.Name,
				strings.Contains(strings.ToUpper(tb.SQL), "AUTOINCREMENT"), strings.Contains(strings.ToUpper(tb.SQL), "CHECK")))
		}
	}
	slices.Sort(lines)
	return lines
}

// Up, down and up again: down removes what up created, status follows, and the store works after.
func TestMigrateUpDownUp(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		m, err := store.OpenMigrator(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		status := func(wantApplied bool) {
			t.Helper()
			list, err := m.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(list) == 0 || list[0].Version != 1 || list[0].Name != "00001_initial.sql" {
				t.Fatalf("status: %+v", list)
			}
			for _, mig := range list {
				if mig.Applied != wantApplied || mig.AppliedAt.IsZero() == wantApplied {
					t.Fatalf("status: %+v, want applied=%v", mig, wantApplied)
				}
			}
		}
		status(false)
		applied, err := m.Up(ctx)
		if err != nil || len(applied) == 0 || applied[0].Name != "00001_initial.sql" {
			t.Fatalf("up: %+v, %v", applied, err)
		}
		status(true)
		if again, err := m.Up(ctx); err != nil || len(again) != 0 {
			t.Fatalf("second up: %+v, %v", again, err)
		}

		g := mustGorm(t, dsn)
		for range applied {
			if _, err := m.Down(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for _, table := range []string{"users", "sessions", "refresh_tokens", "email_tokens", "mail_outbox"} {
			if g.Migrator().HasTable(table) {
				t.Fatalf("table %s left after rolling everything back", table)
			}
		}
		status(false)
		if _, err := m.Down(ctx); err == nil {
			t.Fatal("down with nothing applied succeeded")
		}

		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
		status(true)
		db := mustOpen(t, dsn)
		seed(t, db, "alice", time.Now().UTC().Truncate(time.Microsecond))
	})
}

// With migrating at start off, Open refuses a schema that is behind, names the command that fixes
// it, and changes nothing; once migrated, it opens.
func TestOpenWithoutMigrateRefusesABehindSchema(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		_, err := store.Open(ctx, dsn, store.Options{Migrate: false})
		if !errors.Is(err, store.ErrSchemaBehind) || !strings.Contains(err.Error(), "authctl migrate up") ||
			!strings.Contains(err.Error(), "00001_initial.sql") {
			t.Fatalf("err = %v, want ErrSchemaBehind naming the pending migration and authctl migrate up", err)
		}
		if errors.Is(err, auth.ErrUnavailable) {
			t.Fatal("a behind schema reported as an unreachable database (the server would wait for it)")
		}
		if g := mustGorm(t, dsn); g.Migrator().HasTable("goose_db_version") || g.Migrator().HasTable("users") {
			t.Fatal("Open without Migrate changed the schema")
		}
		m, err := store.OpenMigrator(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
		db, err := store.Open(ctx, dsn, store.Options{Migrate: false})
		if err != nil {
			t.Fatalf("open of an up-to-date schema: %v", err)
		}
		_ = db.Close()
	})
}

// Instances that start together on one Postgres database migrate one after the other under the
// advisory lock: every Open succeeds and the migration is recorded once.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	dsn := testdb.Postgres(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			db, err := store.Open(context.Background(), dsn)
			if err == nil {
				err = db.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var recorded int64
	if err := mustGorm(t, dsn).Raw("SELECT count(*) FROM goose_db_version WHERE version_id = 1").Scan(&recorded).Error; err != nil || recorded != 1 {
		t.Fatalf("version 1 recorded %d times (err %v), want once", recorded, err)
	}
}

// A database at version 1 with rows migrates to the latest version without losing any: every account
// is there, unverified and without TOTP, its sessions are password sessions, and it still logs in;
// rolling versions 3 and 2 back keeps them too.
func TestMigrationFromVersion1KeepsRows(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		old := mustGorm(t, dsn)
		sqlDB, err := old.DB()
		if err != nil {
			t.Fatal(err)
		}
		dialect, dir := goose.DialectSQLite3, "migrations/sqlite"
		if store.IsPostgres(dsn) {
			dialect, dir = goose.DialectPostgres, "migrations/postgres"
		}
		p, err := goose.NewProvider(dialect, sqlDB, os.DirFS(dir), goose.WithDisableGlobalRegistry(true))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.UpTo(ctx, 1); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		hash, err := password.Hash("correct horse battery", migrationTestParams)
		if err != nil {
			t.Fatal(err)
		}
		u := legacyUser{ID: uuid.NewString(), Email: "alice@example.com", PasswordHash: hash, Role: string(models.RoleAdmin), CredentialsVersion: 3, CreatedAt: now, UpdatedAt: now}
		s := legacySession{ID: uuid.NewString(), UserID: u.ID, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(time.Hour)}
		raw, rtHash, err := token.NewRefreshToken()
		if err != nil {
			t.Fatal(err)
		}
		rt := legacyRefreshToken{TokenHash: rtHash, SessionID: s.ID, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		for _, row := range []any{&u, &s, &rt} {
			if err := old.Omit("User", "Session").Create(row).Error; err != nil {
				t.Fatal(err)
			}
		}

		db := mustOpen(t, dsn) // migrates to the latest version
		got, err := db.UserByID(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Email != u.Email || got.PasswordHash != hash || got.Role != models.RoleAdmin || got.CredentialsVersion != 3 ||
			!got.CreatedAt.Equal(now) || got.EmailVerifiedAt != nil {
			t.Fatalf("user after migrating: %+v", got)
		}
		svc := mustService(t, db)
		if _, err := svc.Refresh(ctx, raw, auth.Client{IP: "192.0.2.1"}); err != nil {
			t.Fatalf("refresh after migrating: %v", err)
		}
		if _, err := svc.Login(ctx, u.Email, "correct horse battery", auth.Client{IP: "192.0.2.1"}); err != nil {
			t.Fatalf("login after migrating: %v", err)
		}

		m, err := store.OpenMigrator(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		sess, err := db.SessionByID(ctx, s.ID)
		if err != nil || sess.AMR != "pwd" || sess.AuthTime != nil || got.TOTPEnabledAt != nil {
			t.Fatalf("session after migrating: %+v, %v (want amr pwd, no auth_time)", sess, err)
		}
		g := db.Gorm()
		if done, err := m.Down(ctx); err != nil || done.Version != 3 {
			t.Fatalf("down: %+v, %v", done, err)
		}
		if g.Migrator().HasTable("passkeys") || g.Migrator().HasTable("recovery_codes") || g.Migrator().HasTable("auth_challenges") ||
			g.Migrator().HasColumn(&models.User{}, "totp_secret") || g.Migrator().HasColumn(&models.Session{}, "amr") {
			t.Fatal("down of version 3 left its tables or columns")
		}
		if done, err := m.Down(ctx); err != nil || done.Version != 2 {
			t.Fatalf("down: %+v, %v", done, err)
		}
		if g.Migrator().HasTable("email_tokens") || g.Migrator().HasTable("mail_outbox") || g.Migrator().HasColumn(&models.User{}, "email_verified_at") {
			t.Fatal("down of version 2 left its tables or column")
		}
		for table, want := range map[string]int64{"users": 1, "sessions": 2, "refresh_tokens": 3} {
			if got := rowCount(t, g, table); got != want {
				t.Fatalf("%s: %d rows after down, want %d", table, got, want)
			}
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
