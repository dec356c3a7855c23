package httpapi

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"gqlauth/auth"
	"gqlauth/graph"
	"gqlauth/graph/model"
	"gqlauth/observe"
)

// Subscriptions: the graphql-ws protocol (subprotocol graphql-transport-ws) on GET /graphql.
//
// The access token comes in the connection_init payload, {"Authorization": "Bearer <token>"} (the key
// in any case). A socket whose token is missing, invalid, expired or revoked is closed with 4403 and
// the AuthErrorReason as the close reason. A socket that is in is watched: when its session is
// revoked (anywhere: this instance, another one through Redis, or found by the database poll), its
// sessionEvents subscriptions deliver their SESSION_REVOKED (current: true) and end, and then the
// socket closes with 4403 SESSION_REVOKED; when its access token expires (exp plus the JWT leeway),
// it closes with 4403 TOKEN_EXPIRED, and the client refreshes and reconnects.
//
// An idle socket costs no goroutine. The upgraded connection leaves net/http for the event loop of
// github.com/lesismal/nbio (epoll: one poller goroutine for all sockets), which hands each message to
// the socket's handler; a goroutine runs only while a socket has messages to handle or a stream has
// events to write. Timers (init timeout, keep-alive ping, token expiry) are runtime timers, the
// revocation a callback of the auth service's watch, and a subscription's stream tells the socket
// when it has an event (graph.StreamSignal). gqlgen's own websocket transport keeps four goroutines
// per socket (about 55 KiB with their stacks); so the protocol is spoken here (graphqlws.go), and the
// operations still run through gqlgen's executor, with every extension and interceptor.
// Close codes of the graphql-ws protocol and of this server.
const (
	CloseForbidden        = 4403 // authentication failed or ended: the reason is an AuthErrorReason
	CloseTooManyRequests  = 4429 // WS_MAX_CONNECTIONS_PER_USER reached: reason "TOO_MANY_CONNECTIONS"
	CloseInitTimeout      = 4408 // no connection_init within WS_INIT_TIMEOUT
	CloseBadRequest       = 4400 // a message the protocol does not allow
	CloseInternalError    = 4500 // the token could not be checked (the database is down): retry later
	CloseSubprotocol      = 4406 // the client did not offer graphql-transport-ws
	CloseUnauthorized     = 4401 // a subscribe before the connection was acknowledged
	CloseDuplicateID      = 4409 // a subscribe whose id is already active
	CloseTooManyInits     = 4429 // a second connection_init
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

	attachMu sync.Mutex
	attach   map[*websocket.Conn]*attaching

	engineOnce sync.Once
	engine     *nbhttp.Engine // the event loop of upgraded sockets, started by the first upgrade
	engineErr  error
	upgrader   *websocket.Upgrader

	mu      sync.Mutex
	open    map[*socket]struct{}
	perUser map[string]int
	closed  bool
	wg      sync.WaitGroup
}

// NewSockets returns an empty set of sockets with opts.
func NewSockets(opts WebSocketOptions) *Sockets {
	return &Sockets{opts: opts.withDefaults(), open: map[*socket]struct{}{}, perUser: map[string]int{}, attach: map[*websocket.Conn]*attaching{}}
}

// attaching is a connection whose first message or close came from the event loop before the
// upgrade could attach its socket (the client may write as soon as it reads the handshake response,
// which the upgrader writes before it returns).
type attaching struct {
	ready  chan struct{} // closed by attachSocket
	closed bool
	err    error
}

// attachSocket makes sk the session of c, and hands it what came early.
func (s *Sockets) attachSocket(c *websocket.Conn, sk *socket) {
	s.attachMu.Lock()
	c.SetSession(sk)
	a := s.attach[c]
	delete(s.attach, c)
	s.attachMu.Unlock()
	if a != nil {
		close(a.ready)
		if a.closed {
			sk.gone(a.err)
		}
	}
}

// socketOf returns c's socket, waiting (briefly: the upgrade is returning) for it to be attached.
func (s *Sockets) socketOf(c *websocket.Conn) *socket {
	s.attachMu.Lock()
	if sk, ok := c.Session().(*socket); ok {
		s.attachMu.Unlock()
		return sk
	}
	a := s.pendingAttach(c)
	s.attachMu.Unlock()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-a.ready:
	case <-t.C:
		return nil
	}
	s.attachMu.Lock()
	defer s.attachMu.Unlock()
	sk, _ := c.Session().(*socket)
	return sk
}

// closedEarly returns c's socket, or records that c closed before its socket was attached (and
// returns nil: attachSocket will tell the socket).
func (s *Sockets) closedEarly(c *websocket.Conn, err error) *socket {
	s.attachMu.Lock()
	defer s.attachMu.Unlock()
	if sk, ok := c.Session().(*socket); ok {
		return sk
	}
	a := s.pendingAttach(c)
	a.closed, a.err = true, err
	return nil
}

func (s *Sockets) pendingAttach(c *websocket.Conn) *attaching {
	a := s.attach[c]
	if a == nil {
		a = &attaching{ready: make(chan struct{})}
		s.attach[c] = a
	}
	return a
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

// Shutdown refuses new sockets, closes the open ones with 1001 (going away), waits until they are
// gone or ctx ends (then it returns ctx's error), and stops the event loop.
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
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.engineOnce.Do(func() {}) // no engine may start after this
	if s.engine != nil {
		s.engine.Stop()
	}
	return err
}

// start builds and starts the event loop and the upgrader, once.
func (s *Sockets) start() error {
	s.engineOnce.Do(func() {
		// nbio logs to stdout on its own; this service logs through slog.
		logging.SetLevel(logging.LevelNone)
		e := nbhttp.NewEngine(nbhttp.Config{
			Name:    "graphql-ws",
			NPoller: 1, // reading a few small messages is cheap; the handlers run on their own goroutines
			// A client that does not read: its queued writes are capped, then it is dropped.
			MaxWriteBufferSize:      maxWriteBuffer,
			ReleaseWebsocketPayload: true, // handle copies what it keeps
		})
		if err := e.Start(); err != nil {
			s.engineErr = err
			return
		}
		u := websocket.NewUpgrader()
		u.Engine = e
		u.CheckOrigin = func(*http.Request) bool { return true } // checked before (checkOrigin)
		u.Subprotocols = []string{subprotocol}
		u.MessageLengthLimit = int(s.opts.MaxMessageBytes)
		// Any message moves the read deadline; the server pings every interval, so a client that
		// answers nothing for twice that is gone.
		u.KeepaliveTime = 2 * s.opts.KeepAliveInterval
		u.OnMessage(func(c *websocket.Conn, _ websocket.MessageType, data []byte) {
			if sk := s.socketOf(c); sk != nil {
				sk.receive(data)
			}
		})
		// The close handshake (RFC 6455, 5.5.1): a close from the client is answered with one close
		// frame, and a client answering the server's close gets none back (nbio's default handler
		// echoes both, and browsers fail a socket that receives a close after its own: 1006, not the
		// 4403 the client must see).
		u.SetCloseHandler(func(c *websocket.Conn, code int, text string) {
			s.attachMu.Lock()
			sk, _ := c.Session().(*socket)
			s.attachMu.Unlock()
			if sk == nil {
				sk = &socket{s: s} // not attached yet: answer it as a socket of its own
			}
			sk.answerClose(c, code, text)
		})
		u.OnClose(func(c *websocket.Conn, err error) {
			if sk := s.closedEarly(c, err); sk != nil {
				sk.gone(err)
			}
		})
		s.engine, s.upgrader = e, u
	})
	if s.engine == nil && s.engineErr == nil {
		return errors.New("websocket: shut down")
	}
	return s.engineErr
}

// hijacker lets the upgrader hijack through the middleware's ResponseWriter wrappers (which
// http.ResponseController unwraps).
type hijacker struct{ http.ResponseWriter }

func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(h.ResponseWriter).Hijack()
}

// maxWriteBuffer caps what a socket may have queued for a client that does not read.
const maxWriteBuffer = 1 << 20

// wsTransport upgrades the requests that serve let through (their context carries their socket)
// and hands the socket gqlgen's executor; any other request with an Upgrade header goes on to the
// other transports, which refuse it.
type wsTransport struct{ s *Sockets }

func (wsTransport) Supports(r *http.Request) bool {
	_, ok := r.Context().Value(socketKey{}).(*socket)
	return ok && isUpgrade(r)
}

func (t wsTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	sk := r.Context().Value(socketKey{}).(*socket)
	sk.exec = exec
	t.s.upgrade(w, r, sk)
}

// isUpgrade reports whether r asks for a WebSocket.
func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(strings.TrimSpace(r.Header.Get("Upgrade")), "websocket")
}

// serve handles a WebSocket upgrade of /graphql: it refuses a foreign Origin (403) and upgrades
// during shutdown (503), then lets gql hand the request to wsTransport, which upgrades it.
func (s *Sockets) serve(gql http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if !s.checkOrigin(r) {
			// Cross-site WebSocket hijacking: a page of another site opening a socket with the
			// browser's ambient credentials. Refused before the upgrade.
			writeRefusal(w, r, s.log, http.StatusForbidden, graph.ErrCrossOrigin)
			return
		}
		if err := s.start(); err != nil {
			s.log.ErrorContext(r.Context(), "websocket: event loop", "err", err)
			writeRefusal(w, r, s.log, http.StatusServiceUnavailable, auth.ErrUnavailable)
			return
		}
		// The socket outlives the request: its context keeps the request's values (request id,
		// logger) but not its cancellation, which comes when this handler returns.
		sk := &socket{s: s, client: auth.Client{UserAgent: r.UserAgent(), IP: s.proxies(r)}, ctx: context.WithoutCancel(r.Context())}
		gql.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), socketKey{}, sk)))
	})
}

// upgrade switches r's connection to the WebSocket protocol and registers the socket.
func (s *Sockets) upgrade(w http.ResponseWriter, r *http.Request, sk *socket) {
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
	// Hijacked, and from here on read by the event loop: net/http's goroutine and buffers for this
	// connection go away when this handler returns. (Only a plain TCP connection moves to the event
	// loop; a TLS one served by this process directly stays blocking with a reader goroutine: TLS is
	// expected to end at the proxy.)
	c, err := s.upgrader.UpgradeAndTransferConnToPoller(hijacker{w}, r, nil)
	if err != nil { // not a WebSocket handshake: the upgrader answered it
		sk.setReason(closedByProtocol)
		s.finish(sk)
		return
	}
	sk.mu.Lock()
	sk.conn = c
	decided := sk.closeCode != 0
	if !decided {
		sk.timer = time.AfterFunc(s.opts.InitTimeout, sk.initTimedOut)
	}
	sk.mu.Unlock()
	s.attachSocket(c, sk)
	if decided { // Shutdown came during the upgrade
		sk.writeClose()
		return
	}
	if c.Subprotocol() != subprotocol {
		// The client did not offer graphql-transport-ws (the legacy subscriptions-transport-ws
		// protocol is not spoken here).
		sk.closeWith(CloseSubprotocol, "subprotocol not acceptable: use "+subprotocol, closedByProtocol)
	}
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

// finish accounts for a socket that is closed (once).
func (s *Sockets) finish(sk *socket) {
	sk.mu.Lock()
	reason, userID, stop := sk.reason, sk.userID, sk.stop
	sk.stop = nil
	sk.mu.Unlock()
	if stop != nil {
		stop()
	}
	if reason == "" {
		reason = closedByClient
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

// authenticate checks the connection_init payload's Authorization, applies the per-account cap, and
// starts watching the session and the token's expiry. It returns the close to make when the socket
// may not stay (code 0: it may).
func (s *Sockets) authenticate(sk *socket, payload transport.InitPayload) (code int, text string) {
	ctx := sk.ctx
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
		return code, reason
	}
	s.mu.Lock()
	if s.perUser[p.UserID] >= s.opts.MaxConnectionsPerUser {
		s.mu.Unlock()
		sk.setReason(closedByLimit)
		return CloseTooManyRequests, reasonTooMany
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
	sk.userID, sk.token, sk.connCtx = p.UserID, tok, connCtx
	sk.stop = func() { cancel(); expiry.Stop(); w.Stop() }
	sk.mu.Unlock()
	// (A client that left meanwhile: finish waits for this handler, so it stops all this.)
	return 0, ""
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
			// The transport asks for the next response only after writing the previous one: the
			// stream has ended and everything it produced has been written.
			once.Do(func() { s.subscriptions.Add(-1); sk.endSubscription() })
		}
		return resp
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
