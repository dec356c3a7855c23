package httpapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"gqlauth/auth"
	"gqlauth/graph"
	"gqlauth/graph/model"
	"gqlauth/observe"
)

// Subscriptions: the graphql-ws protocol (subprotocol graphql-transport-ws) on GET /graphql, through
// gqlgen's websocket transport over github.com/coder/websocket.
//
// The access token comes in the connection_init payload, {"Authorization": "Bearer <token>"} (the key
// in any case). A socket whose token is missing, invalid, expired or revoked is closed with 4403 and
// the AuthErrorReason as the close reason. A socket that is in is watched: when its session is
// revoked (anywhere: this instance, another one through Redis, or found by the database poll), its
// sessionEvents subscriptions deliver their SESSION_REVOKED (current: true) and end, and then the
// socket closes with 4403 SESSION_REVOKED; when its access token expires (exp plus the JWT leeway),
// it closes with 4403 TOKEN_EXPIRED, and the client refreshes and reconnects.
//
// gqlgen closes a socket whose connection context is cancelled with 1000 "terminated", whatever the
// cause. So each socket's connection is wrapped (closingConn): the code and reason decided here are
// written instead, and gqlgen's own protocol closes are given graphql-ws's codes (4408 for the
// connection_init timeout, 4400 for a message the protocol does not allow).

// Close codes of the graphql-ws protocol and of this server.
const (
	CloseForbidden        = 4403 // authentication failed or ended: the reason is an AuthErrorReason
	CloseTooManyRequests  = 4429 // WS_MAX_CONNECTIONS_PER_USER reached: reason "TOO_MANY_CONNECTIONS"
	CloseInitTimeout      = 4408 // no connection_init within WS_INIT_TIMEOUT
	CloseBadRequest       = 4400 // a message the protocol does not allow
	CloseInternalError    = 4500 // the token could not be checked (the database is down): retry later
	CloseSubprotocol      = 4406 // the client did not offer graphql-transport-ws
	subprotocol           = "graphql-transport-ws"
	closeGoingAway        = 1001 // the server shuts down
	reasonTooMany         = "TOO_MANY_CONNECTIONS"
	revocationFlushBudget = 500 * time.Millisecond
)

// Reasons counted by gqlauth_ws_closes_total besides the AuthErrorReasons.
const (
	closedByClient      = "client"
	closedByLimit       = "limit"
	closedByInitTimeout = "init_timeout"
	closedByProtocol    = "protocol"
	closedUnavailable   = "unavailable"
	closedByShutdown    = "shutdown"
)

// Defaults of WebSocketOptions.
const (
	DefaultWSInitTimeout           = 5 * time.Second
	DefaultWSKeepAliveInterval     = 25 * time.Second
	DefaultWSMaxSubscriptions      = 10
	DefaultWSMaxConnectionsPerUser = 20
	DefaultWSMaxMessageBytes       = 16 << 10
)

// WebSocketOptions configure the graphql-ws transport; zero values mean the defaults.
type WebSocketOptions struct {
	// InitTimeout is how long a socket may wait before its connection_init (then: close 4408).
	InitTimeout time.Duration
	// KeepAliveInterval is how often the server sends a graphql-ws ping; a client that sends no pong
	// within twice the interval is dropped (and proxies see traffic on idle sockets).
	KeepAliveInterval time.Duration
	// MaxSubscriptions caps the active subscriptions of one socket: one more gets a RATE_LIMITED
	// error (the socket stays open).
	MaxSubscriptions int
	// MaxConnectionsPerUser caps one account's initialised sockets on this instance: one more is
	// closed with 4429 TOO_MANY_CONNECTIONS.
	MaxConnectionsPerUser int
	// MaxMessageBytes caps a client message: a larger one closes the socket with 1009.
	MaxMessageBytes int64
	// Leeway is the JWT leeway: a socket closes with TOKEN_EXPIRED at its token's exp plus Leeway,
	// when the token would no longer be accepted.
	Leeway time.Duration
	// Now is the auth service's clock (for the expiry timer); nil means time.Now.
	Now func() time.Time
	// OnOpenChange, if set, is called with the number of open sockets after each one opens or closes
	// (the process's memory limit follows it). It must be fast and must not call back into Sockets.
	OnOpenChange func(open int)
}

func (o WebSocketOptions) withDefaults() WebSocketOptions {
	if o.InitTimeout <= 0 {
		o.InitTimeout = DefaultWSInitTimeout
	}
	if o.KeepAliveInterval <= 0 {
		o.KeepAliveInterval = DefaultWSKeepAliveInterval
	}
	if o.MaxSubscriptions <= 0 {
		o.MaxSubscriptions = DefaultWSMaxSubscriptions
	}
	if o.MaxConnectionsPerUser <= 0 {
		o.MaxConnectionsPerUser = DefaultWSMaxConnectionsPerUser
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultWSMaxMessageBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Sockets are the open graphql-ws sockets of one server. Build it with NewSockets and pass it in
// Options.Sockets, then call Shutdown when the server stops: http.Server.Shutdown does not track
// hijacked connections, so without it open sockets would outlive the server.
type Sockets struct {
	opts WebSocketOptions

	// Set by New (bind): the service, the handler's settings and the metrics.
	svc     *auth.Service
	log     *slog.Logger
	metrics *observe.Metrics
	cors    *cors
	proxies func(*http.Request) string

	subscriptions atomic.Int64 // subscriptions whose resolver has run and whose stream has not ended

	mu      sync.Mutex
	open    map[*socket]struct{}
	perUser map[string]int
	closed  bool
	wg      sync.WaitGroup
}

// NewSockets returns an empty set of sockets with opts.
func NewSockets(opts WebSocketOptions) *Sockets {
	return &Sockets{opts: opts.withDefaults(), open: map[*socket]struct{}{}, perUser: map[string]int{}}
}

// Open returns the number of open sockets.
func (s *Sockets) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// Subscriptions returns the number of active subscriptions on all sockets, counted once their
// resolver has run (for sessionEvents: once it watches the account), until their stream ends.
func (s *Sockets) Subscriptions() int { return int(s.subscriptions.Load()) }

// Shutdown refuses new sockets, closes the open ones with 1001 (going away), and waits until they
// are gone or ctx ends (then it returns ctx's error).
func (s *Sockets) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	open := make([]*socket, 0, len(s.open))
	for sk := range s.open {
		open = append(open, sk)
	}
	s.mu.Unlock()
	for _, sk := range open {
		sk.closeWith(closeGoingAway, "going away", closedByShutdown)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// transport is gqlgen's websocket transport, configured for these sockets.
func (s *Sockets) transport() graphql.Transport {
	limit := s.opts.MaxMessageBytes
	return wsTransport{transport.Websocket{
		Implementation: socketImplementation{inner: transport.CoderWebsocketImplementation{AcceptOptions: websocket.AcceptOptions{
			// The Origin was checked before the upgrade (checkOrigin): same origin, or an allowed one.
			InsecureSkipVerify: true,
		}}},
		InitFunc:         s.initSocket,
		InitTimeout:      s.opts.InitTimeout,
		ErrorFunc:        s.socketError,
		PingPongInterval: s.opts.KeepAliveInterval,
		PayloadReadLimit: &limit,
	}}
}

// wsTransport is gqlgen's websocket transport, used only for the upgrades that ServeHTTP let
// through (the request's context carries their socket); any other request with an Upgrade header
// goes on to the other transports, which refuse it.
type wsTransport struct{ transport.Websocket }

func (t wsTransport) Supports(r *http.Request) bool {
	_, ok := r.Context().Value(socketKey{}).(*socket)
	return ok && t.Websocket.Supports(r)
}

// isUpgrade reports whether r asks for a WebSocket.
func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(strings.TrimSpace(r.Header.Get("Upgrade")), "websocket")
}

// serve handles a WebSocket upgrade of /graphql: it refuses a foreign Origin (403) and upgrades
// during shutdown (503), then lets gql's websocket transport run the socket until it closes.
func (s *Sockets) serve(gql http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if !s.checkOrigin(r) {
			// Cross-site WebSocket hijacking: a page of another site opening a socket with the
			// browser's ambient credentials. Refused before the upgrade.
			writeRefusal(w, r, s.log, http.StatusForbidden, graph.ErrCrossOrigin)
			return
		}
		sk := &socket{s: s, client: auth.Client{UserAgent: r.UserAgent(), IP: s.proxies(r)}, subsIdle: make(chan struct{})}
		close(sk.subsIdle) // no subscription yet
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			writeRefusal(w, r, s.log, http.StatusServiceUnavailable, auth.ErrUnavailable)
			return
		}
		s.open[sk] = struct{}{}
		s.wg.Add(1)
		if s.opts.OnOpenChange != nil {
			s.opts.OnOpenChange(len(s.open))
		}
		s.mu.Unlock()
		if s.metrics != nil {
			s.metrics.WSOpened()
		}
		defer s.finish(sk)
		// The server's read and write timeouts are set on the connection for ordinary requests, and
		// a hijacked connection keeps them: a socket lives longer. The keep-alive pings bound it.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		ctx := context.WithValue(r.Context(), socketKey{}, sk)
		gql.ServeHTTP(w, r.WithContext(ctx))
		sk.mu.Lock()
		conn := sk.conn
		sk.mu.Unlock()
		if conn != nil {
			if readErr, wrote := conn.state(); readErr == nil && !wrote {
				// gqlgen returns without closing when the connection_init payload is not a JSON
				// object: close it here, or the connection would stay open with nobody reading.
				sk.setReason(closedByProtocol)
				_ = conn.WriteClose(CloseBadRequest, "invalid connection_init payload")
			}
		}
	})
}

// writeRefusal answers an upgrade that is refused, with a GraphQL error coded by graph's table.
func writeRefusal(w http.ResponseWriter, r *http.Request, log *slog.Logger, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	writeJSON(w, &graphql.Response{Errors: gqlerror.List{graph.PresentError(r.Context(), log, err)}})
}

// checkOrigin allows an upgrade without Origin (not a browser), from the same origin (the Origin's
// host is the request's Host), or from an origin of CORS_ALLOWED_ORIGINS ("*" allows any: the token
// travels in connection_init, never in a cookie, so no ambient credential is at stake).
func (s *Sockets) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	ok, _ := s.cors.allowed(origin)
	return ok
}

// finish accounts for a socket whose handler has returned (the socket is closed).
func (s *Sockets) finish(sk *socket) {
	sk.mu.Lock()
	reason, userID, stop, conn := sk.reason, sk.userID, sk.stop, sk.conn
	sk.mu.Unlock()
	if stop != nil {
		stop()
	}
	if reason == "" {
		reason = closedByClient
		if conn == nil { // the upgrade itself failed (not a WebSocket handshake)
			reason = closedByProtocol
		}
	}
	s.mu.Lock()
	delete(s.open, sk)
	if s.opts.OnOpenChange != nil {
		s.opts.OnOpenChange(len(s.open))
	}
	if userID != "" {
		if s.perUser[userID]--; s.perUser[userID] <= 0 {
			delete(s.perUser, userID)
		}
	}
	s.mu.Unlock()
	if s.metrics != nil {
		s.metrics.WSClosed(reason)
	}
	s.wg.Done()
}

type socketKey struct{}

// socket is one graphql-ws connection.
type socket struct {
	s      *Sockets
	client auth.Client

	mu         sync.Mutex
	conn       *closingConn       // set by Accept
	cancel     context.CancelFunc // cancels the connection context (set by initSocket): gqlgen then closes
	token      string
	userID     string // set once counted in Sockets.perUser
	stop       func() // stops the watch and the expiry timer
	reason     string // why it closed, for gqlauth_ws_closes_total ("" until known)
	revokedAt  time.Time
	subs       int           // active subscriptions
	subsIdle   chan struct{} // closed while subs == 0
	closeCode  int           // decided close, written instead of gqlgen's (0: none decided)
	closeText  string
	closeTimed bool // closeCode is the revocation's: observe its latency when written
}

// setReason records why the socket closes, unless a reason is known already.
func (sk *socket) setReason(reason string) {
	sk.mu.Lock()
	if sk.reason == "" {
		sk.reason = reason
	}
	sk.mu.Unlock()
}

// closeWith closes the socket with code and text (the first decision wins), counted under reason.
func (sk *socket) closeWith(code int, text, reason string) {
	sk.mu.Lock()
	if sk.closeCode != 0 {
		sk.mu.Unlock()
		return
	}
	sk.closeCode, sk.closeText = code, text
	sk.closeTimed = reason == string(model.AuthErrorReasonSessionRevoked)
	if sk.reason == "" {
		sk.reason = reason
	}
	cancel, conn := sk.cancel, sk.conn
	sk.mu.Unlock()
	switch {
	case cancel != nil:
		// gqlgen's close on cancel: it ends the subscriptions, writes the close (rewritten by
		// closingConn to code and text) and releases the connection.
		cancel()
	case conn != nil:
		// Not initialised yet: gqlgen waits in its read, which the close ends.
		_ = conn.WriteClose(code, text)
	}
}

// decided returns the close decided by closeWith, if any.
func (sk *socket) decided() (code int, text string, timed bool, revokedAt time.Time) {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	return sk.closeCode, sk.closeText, sk.closeTimed, sk.revokedAt
}

// initSocket is the transport's InitFunc: it authenticates the connection_init payload's
// Authorization, applies the per-account cap, and starts watching the session and the token's expiry.
func (s *Sockets) initSocket(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	sk, _ := ctx.Value(socketKey{}).(*socket)
	if sk == nil { // only ServeHTTP's requests reach this transport
		return transport.WithWebsocketCloseCode(ctx, CloseInternalError), nil, errors.New("no socket")
	}
	tok, err := BearerToken(initAuthorization(payload))
	var p *auth.Principal
	if err == nil {
		p, err = s.svc.Authenticate(ctx, tok)
	}
	if err != nil {
		code, reason := CloseForbidden, authReason(err)
		metric := reason
		if reason == "" {
			code, reason, metric = CloseInternalError, string(model.ErrorCodeServiceUnavailable), closedUnavailable
			s.log.WarnContext(ctx, "websocket: the access token could not be checked", "err", err)
		}
		sk.setReason(metric)
		return transport.AppendCloseReason(transport.WithWebsocketCloseCode(ctx, code), reason), nil, err
	}
	s.mu.Lock()
	if s.perUser[p.UserID] >= s.opts.MaxConnectionsPerUser {
		s.mu.Unlock()
		sk.setReason(closedByLimit)
		return transport.AppendCloseReason(transport.WithWebsocketCloseCode(ctx, CloseTooManyRequests), reasonTooMany), nil,
			errors.New("too many connections")
	}
	s.perUser[p.UserID]++
	s.mu.Unlock()

	connCtx, cancel := context.WithCancel(s.svc.WithRequest(ctx, tok, nil, sk.client))
	// No goroutine waits for the end of an idle socket's life: the expiry is a timer callback, and
	// the revocation a callback of the watch, which starts the closing goroutine only when it fires.
	expiry := time.AfterFunc(p.ExpiresAt.Add(s.opts.Leeway).Sub(s.opts.Now()), func() {
		sk.closeWith(CloseForbidden, string(model.AuthErrorReasonTokenExpired), string(model.AuthErrorReasonTokenExpired))
	})
	w := s.svc.WatchRevocationFunc(p, func() { go sk.revoked(connCtx) })
	sk.mu.Lock()
	sk.userID, sk.token, sk.cancel = p.UserID, tok, cancel
	sk.stop = func() { cancel(); expiry.Stop(); w.Stop() }
	decided := sk.closeCode != 0
	sk.mu.Unlock()
	if decided { // Shutdown came during the authentication
		cancel()
	}
	return connCtx, nil, nil
}

// revoked closes the socket of a revoked session, once the revocation event went out on its
// subscriptions (at most revocationFlushBudget later).
func (sk *socket) revoked(ctx context.Context) {
	sk.mu.Lock()
	sk.revokedAt = time.Now()
	sk.mu.Unlock()
	sk.waitSubscriptions(ctx, revocationFlushBudget)
	sk.closeWith(CloseForbidden, string(model.AuthErrorReasonSessionRevoked), string(model.AuthErrorReasonSessionRevoked))
}

// waitSubscriptions waits until the socket has no active subscription (sessionEvents ends its stream
// once it has delivered the SESSION_REVOKED of the socket's own session), at most budget: a client
// that does not read cannot hold the close back.
func (sk *socket) waitSubscriptions(ctx context.Context, budget time.Duration) {
	sk.mu.Lock()
	idle := sk.subsIdle
	sk.mu.Unlock()
	t := time.NewTimer(budget)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	case <-ctx.Done():
	}
}

// startSubscription counts a subscription in, unless the socket has max already.
func (sk *socket) startSubscription(maxSubs int) bool {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if sk.subs >= maxSubs {
		return false
	}
	if sk.subs == 0 {
		sk.subsIdle = make(chan struct{})
	}
	sk.subs++
	return true
}

func (sk *socket) endSubscription() {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if sk.subs--; sk.subs == 0 {
		close(sk.subsIdle)
	}
}

// aroundOperation (an operation interceptor) applies WS_MAX_SUBSCRIPTIONS, authenticates each
// subscription afresh (a subscribe that arrives after the session's revocation is refused, not served
// from the connection's first check), and counts the subscription until its stream ends.
func (s *Sockets) aroundOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	sk, ok := ctx.Value(socketKey{}).(*socket)
	if !ok || !graphql.HasOperationContext(ctx) || graphql.GetOperationContext(ctx).Operation == nil ||
		graphql.GetOperationContext(ctx).Operation.Operation != ast.Subscription {
		return next(ctx)
	}
	if !sk.startSubscription(s.opts.MaxSubscriptions) {
		return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{graph.PresentError(ctx, s.log, graph.ErrTooManySubscriptions)}})
	}
	sk.mu.Lock()
	tok := sk.token
	sk.mu.Unlock()
	// For a subscription, next runs the root field's resolver before it returns.
	responses := next(s.svc.WithRequest(ctx, tok, nil, sk.client))
	s.subscriptions.Add(1)
	var once sync.Once
	return func(ctx context.Context) *graphql.Response {
		resp := responses(ctx)
		if resp == nil {
			// gqlgen asks for the next response only after writing the previous one: the stream
			// has ended and everything it produced has been written.
			once.Do(func() { s.subscriptions.Add(-1); sk.endSubscription() })
		}
		return resp
	}
}

// socketError is the transport's ErrorFunc: it tells a message over the size limit from a client
// that went away, for the close metric.
func (s *Sockets) socketError(ctx context.Context, err error) {
	sk, _ := ctx.Value(socketKey{}).(*socket)
	if sk == nil {
		return
	}
	var wsErr transport.WebsocketError
	if errors.As(err, &wsErr) && wsErr.IsReadError {
		sk.mu.Lock()
		conn := sk.conn
		sk.mu.Unlock()
		if conn != nil {
			if readErr, _ := conn.state(); readErr == nil {
				// The message was read but not understood (not JSON, an unknown type): gqlgen would
				// close with 1000 "terminated"; graphql-ws says 4400.
				sk.closeWith(CloseBadRequest, "invalid message", closedByProtocol)
				return
			}
		}
		if websocket.CloseStatus(err) == websocket.StatusMessageTooBig || strings.Contains(err.Error(), "read limited at") {
			sk.setReason(closedByLimit)
			return
		}
		sk.setReason(closedByClient)
	}
}

// initAuthorization is the connection_init payload's Authorization value, the key in any case.
func initAuthorization(payload transport.InitPayload) string {
	if v := payload.Authorization(); v != "" {
		return v
	}
	for k, v := range payload {
		if strings.EqualFold(k, "Authorization") {
			if s, ok := v.(string); ok {
				return s
			}
			return "-" // not a string: an invalid token
		}
	}
	return ""
}

// authReason is the AuthErrorReason of an authentication failure, "" for another error.
func authReason(err error) string {
	switch {
	case errors.Is(err, auth.ErrTokenMissing):
		return string(model.AuthErrorReasonTokenMissing)
	case errors.Is(err, auth.ErrTokenInvalid):
		return string(model.AuthErrorReasonTokenInvalid)
	case errors.Is(err, auth.ErrTokenExpired):
		return string(model.AuthErrorReasonTokenExpired)
	case errors.Is(err, auth.ErrSessionRevoked):
		return string(model.AuthErrorReasonSessionRevoked)
	}
	return ""
}

// socketImplementation accepts sockets with gqlgen's coder/websocket adapter and wraps each
// connection in a closingConn.
type socketImplementation struct {
	inner transport.WebsocketImplementation
}

func (i socketImplementation) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	opts.Subprotocols = []string{subprotocol} // not gqlgen's legacy graphql-ws, even if offered first
	c, err := i.inner.Accept(w, r, opts)
	if err != nil {
		return nil, err
	}
	sk, _ := r.Context().Value(socketKey{}).(*socket)
	cc := &closingConn{WebsocketConn: c, sk: sk}
	if sk != nil {
		sk.mu.Lock()
		sk.conn = cc
		decided := sk.closeCode != 0
		sk.mu.Unlock()
		if decided { // Shutdown came during the upgrade
			code, text, _, _ := sk.decided()
			_ = cc.WriteClose(code, text)
		} else if c.Subprotocol() != subprotocol {
			// gqlgen would speak the legacy subscriptions-transport-ws protocol to a client that did
			// not offer graphql-transport-ws; it has no keep-alive pings here and is deprecated.
			sk.closeWith(CloseSubprotocol, "subprotocol not acceptable: use "+subprotocol, closedByProtocol)
		}
	}
	return cc, nil
}

// closingConn rewrites the close gqlgen writes: to the close decided for the socket (closeWith), or
// for gqlgen's own protocol closes (1002) to graphql-ws's codes.
type closingConn struct {
	transport.WebsocketConn
	sk *socket

	mu         sync.Mutex
	readErr    error // the connection's read failed (closed, gone, over the size limit)
	wroteClose bool
}

// NextReader records a failed read: a read error that gqlgen reports after a read that succeeded is
// a message it could not decode.
func (c *closingConn) NextReader() (int, io.Reader, error) {
	t, r, err := c.WebsocketConn.NextReader()
	if err != nil {
		c.mu.Lock()
		c.readErr = err
		c.mu.Unlock()
	}
	return t, r, err
}

// state returns the last read error and whether a close has been written.
func (c *closingConn) state() (readErr error, wroteClose bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr, c.wroteClose
}

var (
	_ transport.WebsocketReadLimiter   = (*closingConn)(nil)
	_ transport.WebsocketReadDeadliner = (*closingConn)(nil)
)

func (c *closingConn) WriteClose(code int, text string) error {
	c.mu.Lock()
	c.wroteClose = true
	c.mu.Unlock()
	if c.sk != nil {
		if dc, dt, timed, revokedAt := c.sk.decided(); dc != 0 {
			code, text = dc, dt
			if timed && c.sk.s.metrics != nil {
				c.sk.s.metrics.WSRevocationClosed(time.Since(revokedAt))
			}
		} else if code == transport.WebsocketCloseProtocolError {
			if text == "connection initialisation timeout" {
				code = CloseInitTimeout
				c.sk.setReason(closedByInitTimeout)
			} else {
				code = CloseBadRequest
				c.sk.setReason(closedByProtocol)
			}
		}
	}
	return c.WebsocketConn.WriteClose(code, text)
}

func (c *closingConn) SetReadLimit(limit int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(limit)
	}
}

func (c *closingConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}
