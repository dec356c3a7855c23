package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"gqlauth/auth"
)

func TestPresenterTable(t *testing.T) {
	t.Parallel()
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, nil))
	present := presentError(log)
	ctx := graphql.WithResponseContext(context.Background(), graphql.DefaultErrorPresenter, nil)
	for _, tc := range []struct {
		err                 error
		code, reason, field string
	}{
		{fmt.Errorf("wrapped: %w", auth.ErrTokenExpired), "UNAUTHENTICATED", "TOKEN_EXPIRED", ""},
		{auth.ErrSessionRevoked, "UNAUTHENTICATED", "SESSION_REVOKED", ""},
		{auth.ErrForbidden, "FORBIDDEN", "", ""},
		{fmt.Errorf("resetPassword: %w", auth.ErrInvalidEmailToken), "INVALID_EMAIL_TOKEN", "", ""},
		{auth.ErrEmailNotVerified, "EMAIL_NOT_VERIFIED", "", ""},
		{&auth.ValidationError{Field: "newEmail", Message: "is the current address"}, "BAD_USER_INPUT", "", "newEmail"},
		{&auth.ValidationError{Field: "email", Message: "is required"}, "BAD_USER_INPUT", "", "email"},
		{errors.New(`pq: relation "users" does not exist`), "INTERNAL_SERVER_ERROR", "", ""},
		{recoverPanic(log)(ctx, "boom"), "INTERNAL_SERVER_ERROR", "", ""},
		// As resolvers' errors arrive: wrapped by gqlgen, whose *gqlerror.Error the presenter edits.
		{gqlerror.WrapPath(nil, fmt.Errorf("login: %w: %w", auth.ErrUnavailable, errors.New("pq: dial tcp 10.0.0.5:5432: connect: connection refused"))), "SERVICE_UNAVAILABLE", "", ""},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), "SERVICE_UNAVAILABLE", "", ""},
		{context.Canceled, "INTERNAL_SERVER_ERROR", "", ""},
	} {
		got := present(ctx, tc.err)
		if got.Extensions["code"] != tc.code || (tc.reason != "" && got.Extensions["reason"] != tc.reason) ||
			(tc.field != "" && got.Extensions["field"] != tc.field) {
			t.Errorf("%v → %v %v", tc.err, got.Message, got.Extensions)
		}
		if strings.Contains(got.Message, "pq:") || strings.Contains(got.Message, "boom") || strings.Contains(got.Message, "wrapped") {
			t.Errorf("message leaks internals: %q", got.Message)
		}
	}
	if !strings.Contains(logged.String(), "relation") || !strings.Contains(logged.String(), "boom") ||
		!strings.Contains(logged.String(), "connection refused") || !strings.Contains(logged.String(), "10.0.0.5") {
		t.Errorf("internal errors and panics must reach the log: %s", logged.String())
	}
}

// The errors of the request itself, as the HTTP layer's transports send them through gqlgen's
// DispatchError (wrapped in a *gqlerror.Error): coded from the table, with the request's own message
// when it has one.
func TestPresenterRequestErrors(t *testing.T) {
	t.Parallel()
	present := presentError(slog.New(slog.DiscardHandler))
	ctx := graphql.WithResponseContext(context.Background(), graphql.DefaultErrorPresenter, nil)
	for _, tc := range []struct {
		err           error
		code, message string
	}{
		{ErrBodyNotJSON, "BAD_USER_INPUT", "the request body is not valid JSON"},
		{&RequestError{Err: ErrPayloadTooLarge, Message: "the request body is larger than 10 bytes"}, "PAYLOAD_TOO_LARGE", "the request body is larger than 10 bytes"},
		{&RequestError{Err: ErrBadRequest, Message: "transport not supported"}, "BAD_REQUEST", "transport not supported"},
		{&RequestError{Err: ErrBadRequest}, "BAD_REQUEST", "the request is malformed"},
		{ErrCrossOrigin, "FORBIDDEN", "cross-origin request refused: add the page's origin to CORS_ALLOWED_ORIGINS"},
	} {
		for _, err := range []error{tc.err, gqlerror.WrapIfUnwrapped(tc.err)} {
			got := present(ctx, err)
			if got.Extensions["code"] != tc.code || got.Message != tc.message {
				t.Errorf("%v → %q %v, want %q %s", err, got.Message, got.Extensions, tc.message, tc.code)
			}
		}
	}
	if got := PresentError(context.Background(), slog.New(slog.DiscardHandler), ErrCrossOrigin); got.Extensions["code"] != "FORBIDDEN" {
		t.Errorf("PresentError: %v", got)
	}
}
