package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"gqlauth/auth"
	"gqlauth/graph/model"
)

// Errors of the request itself, which the HTTP layer finds before any operation runs. Its transports
// send them through gqlgen's DispatchError, so the presenter codes them like every other error (and
// the response interceptors see them); see RequestError for a message of the request's own.
var (
	// ErrBadRequest is a request that cannot be run as sent: an unsupported Content-Type, a batch, a
	// mutation over GET, an unreadable query string, variables or extensions.
	ErrBadRequest = errors.New("graph: bad request")
	// ErrBodyNotJSON is a request body that is not a JSON object.
	ErrBodyNotJSON = errors.New("graph: request body is not valid JSON")
	// ErrPayloadTooLarge is a request body over the size limit.
	ErrPayloadTooLarge = errors.New("graph: request body too large")
	// ErrCrossOrigin is a browser request from an origin that is not allowed to make it.
	ErrCrossOrigin = errors.New("graph: cross-origin request refused")
	// ErrTooManySubscriptions is a subscribe over the cap on active subscriptions of one WebSocket.
	ErrTooManySubscriptions = errors.New("graph: too many subscriptions on this connection")
	// ErrPersistedQueryNotFound is a hash-only request whose hash names no known document.
	ErrPersistedQueryNotFound = errors.New("graph: persisted query not found")
	// ErrOperationNotTrusted is an operation outside the manifest in TRUSTED_DOCUMENTS=require.
	ErrOperationNotTrusted = errors.New("graph: operation not trusted")
)

// RequestError is an error of the request itself, Err (one of ErrBadRequest, ErrBodyNotJSON,
// ErrPayloadTooLarge, ErrCrossOrigin), with a public message of its own that says what was wrong (the
// size limit, say) instead of the table's. The message must never quote the body: it may hold
// passwords.
type RequestError struct {
	Err     error
	Message string
}

func (e *RequestError) Error() string {
	if e.Message == "" {
		return e.Err.Error()
	}
	return e.Message
}

func (e *RequestError) Unwrap() error { return e.Err }

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
	{auth.ErrInvalidEmailToken, model.ErrorCodeInvalidEmailToken, "", "the link is invalid, expired or already used; ask for a new one"},
	{auth.ErrEmailNotVerified, model.ErrorCodeEmailNotVerified, "", "the e-mail address is not verified yet: follow the link in the verification mail, or ask for a new one"},
	{auth.ErrInvalidMFACode, model.ErrorCodeInvalidMfaCode, "", "the code is wrong or was already used"},
	{auth.ErrInvalidMFAChallenge, model.ErrorCodeInvalidMfaCode, "", "the MFA challenge is invalid, expired or used up; log in again"},
	{auth.ErrInvalidPasskey, model.ErrorCodeInvalidPasskey, "", "the passkey was not accepted; try again"},
	{auth.ErrUnavailable, model.ErrorCodeServiceUnavailable, "", "the service is temporarily unavailable; retry shortly"},
	{ErrBadRequest, model.ErrorCodeBadRequest, "", "the request is malformed"},
	// BAD_USER_INPUT, like the other errors in what the client wrote. The body is never quoted (gqlgen's
	// own message did): it may hold passwords.
	{ErrBodyNotJSON, model.ErrorCodeBadUserInput, "", "the request body is not valid JSON"},
	{ErrPayloadTooLarge, model.ErrorCodePayloadTooLarge, "", "the request body is too large"},
	{ErrTooManySubscriptions, model.ErrorCodeRateLimited, "", "too many subscriptions on this connection: complete one first (WS_MAX_SUBSCRIPTIONS)"},
	{ErrCrossOrigin, model.ErrorCodeForbidden, "", "cross-origin request refused: add the page's origin to CORS_ALLOWED_ORIGINS"},
	// Apollo's message and code: its clients recognise them and send the hash again with the query.
	{ErrPersistedQueryNotFound, model.ErrorCodePersistedQueryNotFound, "", "PersistedQueryNotFound"},
	{ErrOperationNotTrusted, model.ErrorCodeOperationNotTrusted, "", "this server runs only its trusted documents: send the hash of a document in its manifest"},
}

// sampledWarning writes at most one warning per second: outage errors arrive at request rate while
// the database is down. The number of lines left out meanwhile rides along.
type sampledWarning struct {
	last       atomic.Int64 // unix nanoseconds of the last line written
	suppressed atomic.Int64
}

func (w *sampledWarning) warn(ctx context.Context, log *slog.Logger, msg string, gqlErr *gqlerror.Error, err error) {
	now := time.Now().UnixNano()
	last := w.last.Load()
	if now-last < int64(time.Second) || !w.last.CompareAndSwap(last, now) {
		w.suppressed.Add(1)
		return
	}
	log.WarnContext(ctx, msg, "path", gqlErr.Path.String(), "err", err, "suppressed_since_last", w.suppressed.Swap(0))
}

// presentError is gqlgen's error presenter: it gives every resolver error a code.
func presentError(log *slog.Logger) graphql.ErrorPresenterFunc {
	var warnings sampledWarning
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		ext := map[string]any{}
		var verr *auth.ValidationError
		var rerr *auth.RateLimitedError
		var qerr *RequestError
		var mfa *auth.MFARequiredError
		var fresh *auth.ReauthenticationRequiredError
		switch {
		case errors.As(err, &mfa):
			// The challenge only reaches whoever gave the right password.
			ext["code"] = string(model.ErrorCodeMfaRequired)
			gqlErr.Message = "a second factor is required: give a TOTP or recovery code"
			if mfa.Challenge != "" {
				gqlErr.Message = "a second factor is required: call verifyMfa with extensions.mfaChallenge and a code"
				ext["mfaChallenge"] = mfa.Challenge
			}
		case errors.As(err, &fresh):
			gqlErr.Message = "this needs a recent authentication: call reauthenticate, then retry"
			ext["code"], ext["maxAge"] = string(model.ErrorCodeReauthenticationRequired), int(fresh.MaxAge/time.Second)
		case errors.As(err, &qerr):
			lookupError(qerr.Err, ext, gqlErr)
			if qerr.Message != "" {
				gqlErr.Message = qerr.Message
			}
		case errors.As(err, &verr):
			gqlErr.Message = verr.Field + " " + verr.Message
			ext["code"], ext["field"] = string(model.ErrorCodeBadUserInput), verr.Field
		case errors.As(err, &rerr):
			secs := int(math.Ceil(rerr.RetryAfter.Seconds()))
			gqlErr.Message = fmt.Sprintf("too many attempts; try again in %d seconds", secs)
			ext["code"], ext["retryAfter"] = string(model.ErrorCodeRateLimited), secs
		case errors.Is(err, context.DeadlineExceeded):
			// REQUEST_TIMEOUT ran out (a slow database, or a long wait for a password-hashing slot):
			// the client may retry; an operator sees the cause in the (rate-limited) warning.
			warnings.warn(ctx, log, "request deadline exceeded", gqlErr, err) // before the message is replaced
			gqlErr.Message = "the request timed out; retry shortly"
			ext["code"] = string(model.ErrorCodeServiceUnavailable)
		case errors.Is(err, context.Canceled):
			// The client went away: not a server fault worth an error-level log line.
			gqlErr.Message = "the request was cancelled"
			ext["code"] = string(model.ErrorCodeInternalServerError)
		case errors.Is(err, auth.ErrUnavailable):
			warnings.warn(ctx, log, "database unavailable", gqlErr, err) // before the message is replaced
			lookupError(err, ext, gqlErr)
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

// PresentError is err as the presenter of New's server shows it to a client, for the rare response
// written outside gqlgen's executor (a cross-origin request, refused before any transport runs).
func PresentError(ctx context.Context, log *slog.Logger, err error) *gqlerror.Error {
	return presentError(log)(ctx, err)
}

// codedError is err (one of the table's, or a *RequestError) as a GraphQL error that already carries
// its public message and extensions.code, for the errors of extensions that run before an operation
// exists: gqlgen's websocket transport sends those to the client without the presenter. The
// presenter, where it runs, finds the same entry (the error wraps err).
func codedError(err error) *gqlerror.Error {
	gqlErr := &gqlerror.Error{Err: err, Message: err.Error()}
	ext := map[string]any{}
	var qerr *RequestError
	if errors.As(err, &qerr) {
		lookupError(qerr.Err, ext, gqlErr)
		if qerr.Message != "" {
			gqlErr.Message = qerr.Message
		}
	} else {
		lookupError(err, ext, gqlErr)
	}
	gqlErr.Extensions = ext
	return gqlErr
}

func lookupError(err error, ext map[string]any, gqlErr *gqlerror.Error) bool {
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			gqlErr.Message = e.message
			ext["code"] = string(e.code)
			switch {
			case errors.Is(e.err, auth.ErrInvalidMFACode):
				ext["field"] = "code"
			case errors.Is(e.err, auth.ErrInvalidMFAChallenge):
				ext["field"] = "challenge"
			}
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
