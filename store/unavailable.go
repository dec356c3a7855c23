package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"gqlauth/auth"
)

// scan runs q.Scan(dest). GORM does not pass the errors of Scan's query through the dialector's
// Translate (only those of Find, Create, Exec and transactions), so they are marked here.
func scan(q *gorm.DB, dest any) error {
	return markUnavailable(q.Scan(dest).Error)
}

// pgDialector is GORM's Postgres dialector with one change: its error translation (TranslateError)
// also marks the errors that mean "the database cannot be reached" with auth.ErrUnavailable, so a
// database outage reaches clients as SERVICE_UNAVAILABLE rather than as an internal error. GORM
// translates every error it records (queries, Begin, Commit), so this is the one place needed.
type pgDialector struct{ *postgres.Dialector }

// Translate implements gorm.ErrorTranslator.
func (d pgDialector) Translate(err error) error {
	return markUnavailable(d.Dialector.Translate(err))
}

// markUnavailable wraps err with auth.ErrUnavailable when it is a connection failure; other errors
// (and nil) come back unchanged.
func markUnavailable(err error) error {
	if err == nil || errors.Is(err, auth.ErrUnavailable) || !unavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", auth.ErrUnavailable, err)
}

// unavailable reports whether err says the database could not be reached, went away, or is refusing
// connections: a dial failure, a broken connection, or a Postgres error of class 08 (connection
// exception), 57P01–57P03 (shutting down, crashed, starting up) or 53300 (too many connections).
// Deadlines are not included: the request's own deadline is reported as such.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch code := pgErr.Code; {
		case strings.HasPrefix(code, "08"), code == "57P01", code == "57P02", code == "57P03", code == "53300":
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		pgconn.SafeToRetry(err) // pgx: the connection was already closed, nothing was sent
}
