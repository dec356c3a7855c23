package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"gqlauth/auth"
	"gqlauth/graph/model"
)

// errorTable is the one place where errors become extensions.code. The public message comes from
// here, never from err.Error(), so SQL or JWT details cannot reach a client.
var errorTable = []struct {
	err     error
	code    model.ErrorCode
	reason  model.AuthErrorReason // extensions.reason, for UNAUTHENTICATED
	message string
}{
	{auth.ErrTokenMissing, model.ErrorCodeUnauthenticated, model.AuthErrorReasonTokenMissing, "authentication required: send Authorization: Bearer <access token>"},
	{auth.ErrTokenInvalid, model.ErrorCodeUnauthenticated, model.AuthErrorReasonTokenInvalid, "the access token is invalid"},
	{auth.ErrTokenExpired, model.ErrorCodeUnauthenticated, model.AuthErrorReasonTokenExpired, "the access token has expired"},
	{auth.ErrSessionRevoked, model.ErrorCodeUnauthenticated, model.AuthErrorReasonSessionRevoked, "the session has been revoked"},
	{auth.ErrForbidden, model.ErrorCodeForbidden, "", "you are not allowed to do this"},
	{auth.ErrInvalidCredentials, model.ErrorCodeInvalidCredentials, "", "invalid e-mail or password"},
	{auth.ErrRefreshTokenInvalid, model.ErrorCodeInvalidRefreshToken, "", "the refresh token is invalid, expired or revoked"},
	{auth.ErrEmailTaken, model.ErrorCodeEmailTaken, "", "an account with this e-mail already exists"},
}

// presentError is gqlgen's error presenter: it gives every resolver error a code.
func presentError(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		ext := map[string]any{}
		var verr *auth.ValidationError
		var rerr *auth.RateLimitedError
		switch {
		case errors.As(err, &verr):
			gqlErr.Message = verr.Field + " " + verr.Message
			ext["code"], ext["field"] = string(model.ErrorCodeBadUserInput), verr.Field
		case errors.As(err, &rerr):
			secs := int(math.Ceil(rerr.RetryAfter.Seconds()))
			gqlErr.Message = fmt.Sprintf("too many attempts; try again in %d seconds", secs)
			ext["code"], ext["retryAfter"] = string(model.ErrorCodeRateLimited), secs
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			// The client went away or the request timed out while waiting (for example for a
			// password-hashing slot): not a server fault worth an error-level log line.
			gqlErr.Message = "the request was cancelled or timed out"
			ext["code"] = string(model.ErrorCodeInternalServerError)
			if errors.Is(err, context.DeadlineExceeded) {
				log.WarnContext(ctx, "request deadline exceeded", "path", gqlErr.Path.String(), "err", err)
			}
		case lookupError(err, ext, gqlErr):
		case isGraphQLError(err):
			// Parse, validation and argument-coercion errors from gqlgen itself keep their message.
			if gqlErr.Extensions != nil && gqlErr.Extensions["code"] != nil {
				return gqlErr
			}
			ext["code"] = string(model.ErrorCodeBadUserInput)
		default:
			log.ErrorContext(ctx, "internal error", "path", gqlErr.Path.String(), "err", err)
			gqlErr.Message = "internal server error"
			ext["code"] = string(model.ErrorCodeInternalServerError)
		}
		gqlErr.Extensions = ext
		return gqlErr
	}
}

func lookupError(err error, ext map[string]any, gqlErr *gqlerror.Error) bool {
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			gqlErr.Message = e.message
			ext["code"] = string(e.code)
			if e.reason != "" {
				ext["reason"] = string(e.reason)
			}
			return true
		}
	}
	return false
}

// isGraphQLError reports whether err is gqlgen's own (not wrapping one of ours), such as an invalid
// enum value or a missing argument caught while coercing input.
func isGraphQLError(err error) bool {
	var g *gqlerror.Error
	return errors.As(err, &g) && g.Unwrap() == nil
}

// recoverPanic turns a resolver panic into INTERNAL_SERVER_ERROR; the panic goes to the log.
func recoverPanic(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", p)
		return errors.New("internal server error (panic)")
	}
}
