package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"gqlauth/auth"
)

func TestMarkUnavailable(t *testing.T) {
	t.Parallel()
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, true},
		{&pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}, true},
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "53300"}, true},
		{fmt.Errorf("read: %w", dialErr), true},
		{driver.ErrBadConn, true},
		{io.ErrUnexpectedEOF, true},
		{&pgconn.PgError{Code: "23505"}, false}, // unique violation: a real answer
		{&pgconn.PgError{Code: "42P01"}, false}, // undefined table: a bug, not an outage
		{errors.New("something else"), false},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), false}, // reported as a timeout instead
		{context.Canceled, false},
	} {
		got := markUnavailable(tc.err)
		if errors.Is(got, auth.ErrUnavailable) != tc.want {
			t.Errorf("%v: unavailable = %v, want %v", tc.err, !tc.want, tc.want)
		}
		if !errors.Is(got, tc.err) {
			t.Errorf("%v: the original error left the chain", tc.err)
		}
	}
	if markUnavailable(nil) != nil {
		t.Error("nil must stay nil")
	}
}
