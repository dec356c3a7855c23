// Package testdb gives tests a fresh database on each engine: an SQLite file in t.TempDir() always,
// and a fresh Postgres schema when TEST_DATABASE_URL is set. With CI=true or REQUIRE_POSTGRES=1 a
// missing or unreachable Postgres fails the test instead of skipping it. It also hands out the
// shared Redis (TEST_REDIS_URL) and Mailpit (TEST_SMTP_URL, TEST_MAILPIT_URL), on the same terms.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"gqlauth/internal/tcpproxy"
)

// EnvURL names the variable that holds the Postgres URL for tests.
const EnvURL = "TEST_DATABASE_URL"

// requirePostgres reports whether a missing Postgres is a failure (CI) rather than a skip.
func requirePostgres() bool {
	return os.Getenv("CI") == "true" || os.Getenv("REQUIRE_POSTGRES") == "1"
}

// ForEach runs fn once per engine as a subtest named "sqlite" or "postgres", each with the DSN of a
// fresh, empty database. The two subtests run in parallel (they share nothing): fn must not write
// variables of the enclosing test without a lock.
func ForEach(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { t.Parallel(); fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { t.Parallel(); fn(t, Postgres(t)) })
}

// SQLite returns the path of a new SQLite file in t.TempDir().
func SQLite(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "test.db")
}

// Postgres returns a URL whose search_path is a new schema, dropped when the test ends. It skips the
// test when TEST_DATABASE_URL is unset, unless Postgres is required.
func Postgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		if requirePostgres() {
			t.Fatalf("%s is not set, and CI=true or REQUIRE_POSTGRES=1 requires Postgres", EnvURL)
		}
		t.Skipf("%s not set; skipping the Postgres run", EnvURL)
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("postgres at %s unreachable or unusable: %v", EnvURL, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvURL, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Available reports whether TEST_DATABASE_URL is set (benchmarks run on Postgres only then).
func Available() bool { return os.Getenv(EnvURL) != "" }

// Proxied rewrites the host and port of a database URL (postgres://… or redis://…) to go through a
// new tcpproxy.Proxy, so that a test can cut the connection to a real service and restore it without
// touching the service that other tests are using.
func Proxied(t testing.TB, rawURL string) (string, *tcpproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("proxied URL: %v", err)
	}
	p := tcpproxy.New(t, u.Host)
	u.Host = p.Addr()
	return u.String(), p
}

// Redis returns TEST_REDIS_URL. It skips the test when that is unset, unless CI=true or
// REQUIRE_REDIS=1 makes Redis required.
func Redis(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TEST_REDIS_URL")
	if u == "" {
		if os.Getenv("CI") == "true" || os.Getenv("REQUIRE_REDIS") == "1" {
			t.Fatal("TEST_REDIS_URL is not set, and CI=true or REQUIRE_REDIS=1 requires Redis")
		}
		t.Skip("TEST_REDIS_URL not set; skipping the Redis run")
	}
	return u
}

// Mailpit returns the SMTP URL (TEST_SMTP_URL, e.g. smtp://127.0.0.1:1025) and the API base URL
// (TEST_MAILPIT_URL, e.g. http://127.0.0.1:8025) of the shared Mailpit, once its API answers. It
// skips the test when they are unset or Mailpit does not answer, unless CI=true or REQUIRE_MAILPIT=1
// makes Mailpit required; then it fails. Tests share the instance: each uses recipient addresses of
// its own (internal/mailpit.Address) and deletes nothing.
func Mailpit(t testing.TB) (smtpURL, apiURL string) {
	t.Helper()
	required := os.Getenv("CI") == "true" || os.Getenv("REQUIRE_MAILPIT") == "1"
	smtpURL, apiURL = os.Getenv("TEST_SMTP_URL"), os.Getenv("TEST_MAILPIT_URL")
	if smtpURL == "" || apiURL == "" {
		if required {
			t.Fatal("TEST_SMTP_URL or TEST_MAILPIT_URL is not set, and CI=true or REQUIRE_MAILPIT=1 requires Mailpit")
		}
		t.Skip("TEST_SMTP_URL or TEST_MAILPIT_URL not set; skipping the Mailpit run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL+"/api/v1/info", nil)
		if err != nil {
			return err
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return errors.New(res.Status)
		}
		return nil
	}()
	if err != nil {
		if required {
			t.Fatalf("Mailpit at %s does not answer (%v), and CI=true or REQUIRE_MAILPIT=1 requires it", apiURL, err)
		}
		t.Skipf("Mailpit at %s does not answer (%v); skipping", apiURL, err)
	}
	return smtpURL, apiURL
}
