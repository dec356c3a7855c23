package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"gqlauth/graph"
)

// Browser support: the refresh token in an HttpOnly cookie (so page scripts, and XSS, can never read
// it), CORS for the SPA's origins, and CSRF protection for the cookie.
//
// Why the cookie is safe against CSRF: it is SameSite=Strict (or Lax) and scoped to the GraphQL path;
// it is honoured only on POST requests with Content-Type: application/json, which a cross-site HTML form
// cannot send and which a cross-origin script can send only after a CORS preflight that this server
// answers for the allowed origins alone; and every POST passes Go's http.CrossOriginProtection, which
// refuses cross-origin browser requests (by Sec-Fetch-Site or Origin) unless the origin is allowed.
// Requests with neither header (curl, servers) are not browsers and cannot carry a victim's cookie.

// CookieOptions configure cookie mode.
type CookieOptions struct {
	Enabled  bool
	Secure   bool          // false only for development on http://localhost
	SameSite http.SameSite // http.SameSiteStrictMode or http.SameSiteLaxMode
}

// Name is the cookie's name: with Secure it carries the __Secure- prefix, which browsers accept only
// from a secure origin with the Secure attribute, so a network attacker cannot plant one.
func (c CookieOptions) Name() string {
	if c.Secure {
		return "__Secure-refresh_token"
	}
	return "refresh_token"
}

type exchangeKey struct{}

// exchange is the HTTP request and response of a GraphQL request, for the refresh cookie.
type exchange struct {
	w http.ResponseWriter
	r *http.Request
}

func withExchange(ctx context.Context, w http.ResponseWriter, r *http.Request) context.Context {
	return context.WithValue(ctx, exchangeKey{}, &exchange{w: w, r: r})
}

// refreshCookies implements graph.RefreshCookies in cookie mode, over the exchange that
// graphqlEndpoint put in the context.
type refreshCookies struct{ opts CookieOptions }

var _ graph.RefreshCookies = refreshCookies{}

// RefreshToken returns the refresh token from the cookie, or "" when there is no cookie or the
// request is not a JSON POST (the only kind allowed to use it).
func (c refreshCookies) RefreshToken(ctx context.Context) string {
	x, ok := ctx.Value(exchangeKey{}).(*exchange)
	if !ok || x.r.Method != http.MethodPost {
		return ""
	}
	if mt, _, err := mime.ParseMediaType(x.r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return ""
	}
	ck, err := x.r.Cookie(c.opts.Name())
	if err != nil {
		return ""
	}
	return ck.Value
}

// SetRefreshToken stores the refresh token in the cookie until the session expires.
func (c refreshCookies) SetRefreshToken(ctx context.Context, token string, expires time.Time) {
	x, ok := ctx.Value(exchangeKey{}).(*exchange)
	if !ok {
		return
	}
	maxAge := int(time.Until(expires).Seconds())
	if maxAge < 1 {
		maxAge = 1
	}
	http.SetCookie(x.w, c.opts.cookie(token, maxAge))
}

// ClearRefreshToken tells the browser to drop the cookie.
func (c refreshCookies) ClearRefreshToken(ctx context.Context) {
	if x, ok := ctx.Value(exchangeKey{}).(*exchange); ok {
		http.SetCookie(x.w, c.opts.cookie("", -1))
	}
}

func (c CookieOptions) cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: c.Name(), Value: value, Path: PathGraphQL, MaxAge: maxAge,
		HttpOnly: true, Secure: c.Secure, SameSite: c.SameSite,
	}
}

// cors answers preflights for the allowed origins and marks their responses readable, with
// credentials. "*" allows any origin but without credentials (browsers refuse "*" with credentials,
// and reflecting any origin with credentials would undo the CSRF protection).
type cors struct {
	origins []string
	any     bool
}

func newCORS(origins []string) *cors {
	c := &cors{}
	for _, o := range origins {
		if o == "*" {
			c.any = true
		} else {
			c.origins = append(c.origins, o)
		}
	}
	return c
}

func (c *cors) allowed(origin string) (ok, credentials bool) {
	if origin == "" {
		return false, false
	}
	if slices.Contains(c.origins, origin) {
		return true, true
	}
	return c.any, false
}

// preflight handles OPTIONS: 204 with the CORS headers for an allowed origin, 403 otherwise.
func (c *cors) preflight(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	w.Header().Add("Vary", "Origin")
	w.Header().Add("Vary", "Access-Control-Request-Method")
	w.Header().Add("Vary", "Access-Control-Request-Headers")
	ok, creds := c.allowed(origin)
	method := r.Header.Get("Access-Control-Request-Method")
	if !ok || (method != http.MethodPost && method != http.MethodGet) {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	c.setOrigin(w, origin, creds)
	w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
	w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	w.Header().Set("Access-Control-Max-Age", strconv.Itoa(int((10 * time.Minute).Seconds())))
	w.WriteHeader(http.StatusNoContent)
}

// wrap adds the CORS headers to actual (non-preflight) responses for allowed origins.
func (c *cors) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		w.Header().Add("Vary", "Origin")
		if ok, creds := c.allowed(origin); ok {
			c.setOrigin(w, origin, creds)
		}
		next.ServeHTTP(w, r)
	})
}

func (c *cors) setOrigin(w http.ResponseWriter, origin string, creds bool) {
	if creds {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Access-Control-Allow-Credentials", "true")
	} else {
		w.Header().Set("Access-Control-Allow-Origin", "*")
	}
}

// csrf refuses cross-origin browser POSTs unless their origin is allowed. The refusal comes before
// any transport, so it is coded by graph.PresentError (and is not a GraphQL operation to count).
func csrf(origins []string, log *slog.Logger, next http.Handler) (http.Handler, error) {
	p := http.NewCrossOriginProtection()
	for _, o := range origins {
		if o == "*" {
			continue
		}
		if err := p.AddTrustedOrigin(o); err != nil {
			return nil, err
		}
	}
	p.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal(&graphql.Response{Errors: gqlerror.List{graph.PresentError(r.Context(), log, graph.ErrCrossOrigin)}})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write(b)
	}))
	return p.Handler(next), nil
}
