package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/lesismal/nbio/nbhttp/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"gqlauth/auth"
	"gqlauth/graph"
	"gqlauth/graph/model"
)

// The graphql-ws protocol (github.com/enisdenjo/graphql-ws, PROTOCOL.md), server side, over the
// event loop's sockets (websocket.go says why it is not gqlgen's transport). Messages of one socket are
// handled in order on a goroutine that exists only while there are messages; operations run through
// gqlgen's executor; a subscription's events are written when its resolver signals them
// (graph.StreamSignal), and only a resolver without the signal costs a goroutine that waits.

// Message types of graphql-transport-ws.
const (
	msgConnectionInit = "connection_init"
	msgConnectionAck  = "connection_ack"
	msgPing           = "ping"
	msgPong           = "pong"
	msgSubscribe      = "subscribe"
	msgNext           = "next"
	msgError          = "error"
	msgComplete       = "complete"
)

const (
	// maxPending caps the messages of one socket waiting for its handler: a client that floods is
	// closed (1008) rather than queued without bound.
	maxPending = 16
	// closeGrace is how long a close waits for the client's close frame before it drops the
	// connection (closing at once could reset it, and lose the close frame, while the client writes).
	closeGrace  = time.Second
	closePolicy = 1008
)

type wsMessage struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

type socketKey struct{}

// socket is one graphql-ws connection.
type socket struct {
	s      *Sockets
	client auth.Client
	ctx    context.Context       // the upgrade request's values, never cancelled
	exec   graphql.GraphExecutor // set before the upgrade

	wmu       sync.Mutex // orders writes, so that nothing follows the close frame
	closeSent bool       // a close frame is written (guarded by wmu)

	mu         sync.Mutex
	conn       *websocket.Conn // set once upgraded
	timer      *time.Timer     // the init timeout, then the keep-alive ping
	inbox      [][]byte        // messages waiting for the handler
	working    bool            // a goroutine handles the inbox
	initSeen   bool
	acked      bool
	connCtx    context.Context // the authenticated context, cancelled when the socket ends
	token      string
	userID     string // set once counted in Sockets.perUser
	stop       func() // stops the watch and the expiry timer
	streams    map[string]*stream
	reason     string // why it closed, for gqlauth_ws_closes_total ("" until known)
	revokedAt  time.Time
	subs       int           // active subscriptions
	subsIdle   chan struct{} // closed while subs == 0 (nil: never had one)
	closeCode  int           // decided close (0: none decided)
	closeText  string
	closeTimed bool // closeCode is the revocation's: observe its latency when written
	isGone     bool // the connection is closed (OnClose)
	finished   bool // Sockets.finish has run
}

// setReason records why the socket closes, unless a reason is known already.
func (sk *socket) setReason(reason string) {
	sk.mu.Lock()
	if sk.reason == "" {
		sk.reason = reason
	}
	sk.mu.Unlock()
}

// closeWith closes the socket with code and text (the first decision wins), counted under reason
// ("": the reason recorded already).
func (sk *socket) closeWith(code int, text, reason string) {
	sk.mu.Lock()
	if sk.closeCode != 0 || sk.isGone {
		sk.mu.Unlock()
		return
	}
	sk.closeCode, sk.closeText = code, text
	sk.closeTimed = reason == string(model.AuthErrorReasonSessionRevoked)
	if sk.reason == "" {
		sk.reason = reason
	}
	upgraded := sk.conn != nil
	sk.mu.Unlock()
	if upgraded { // else upgrade writes it once it has the connection
		sk.writeClose()
	}
}

// writeClose writes the decided close frame and drops the connection closeGrace later, unless the
// client answers the close first (the event loop then closes it).
func (sk *socket) writeClose() {
	sk.mu.Lock()
	c, code, text, timed, revokedAt := sk.conn, sk.closeCode, sk.closeText, sk.closeTimed, sk.revokedAt
	if sk.timer != nil {
		sk.timer.Stop()
	}
	sk.mu.Unlock()
	sk.wmu.Lock()
	if sk.closeSent { // the client closed first, and was answered
		sk.wmu.Unlock()
		return
	}
	sk.closeSent = true
	_ = c.WriteClose(code, text)
	sk.wmu.Unlock()
	if timed && sk.s.metrics != nil {
		sk.s.metrics.WSRevocationClosed(time.Since(revokedAt))
	}
	time.AfterFunc(closeGrace, func() { _ = c.Close() })
}

// answerClose answers the client's close frame, unless it answers the server's.
func (sk *socket) answerClose(c *websocket.Conn, code int, text string) {
	sk.wmu.Lock()
	defer sk.wmu.Unlock()
	if sk.closeSent {
		return
	}
	sk.closeSent = true
	if code == 1005 { // no status
		_ = c.WriteMessage(websocket.CloseMessage, nil)
		return
	}
	_ = c.WriteClose(code, text)
}

// send writes one message, unless the socket is closing.
func (sk *socket) send(m wsMessage) {
	b, err := json.Marshal(m)
	if err != nil {
		sk.s.log.ErrorContext(sk.ctx, "websocket: encoding a message", "err", err)
		return
	}
	sk.wmu.Lock()
	defer sk.wmu.Unlock()
	sk.mu.Lock()
	c, closing := sk.conn, sk.closeCode != 0 || sk.isGone
	sk.mu.Unlock()
	if c != nil && !closing && !sk.closeSent {
		_ = c.WriteMessage(websocket.TextMessage, b)
	}
}

func (sk *socket) sendResponse(id string, resp *graphql.Response) {
	b, err := json.Marshal(resp)
	if err != nil {
		sk.s.log.ErrorContext(sk.ctx, "websocket: encoding a response", "err", err)
		b = []byte(`{"errors":[{"message":"internal error"}]}`)
	}
	sk.send(wsMessage{Type: msgNext, ID: id, Payload: b})
}

func (sk *socket) sendErrors(id string, errs gqlerror.List) {
	b, err := json.Marshal(errs)
	if err != nil {
		b = []byte(`[{"message":"internal error"}]`)
	}
	sk.send(wsMessage{Type: msgError, ID: id, Payload: b})
}

// initTimedOut closes a socket that sent no connection_init in time.
func (sk *socket) initTimedOut() {
	sk.mu.Lock()
	seen := sk.initSeen
	sk.mu.Unlock()
	if !seen {
		sk.closeWith(CloseInitTimeout, "connection initialisation timeout", closedByInitTimeout)
	}
}

// keepAlive pings the client every interval (a client that does not answer for twice that is
// dropped by the event loop's read deadline), and proxies see traffic on idle sockets.
func (sk *socket) keepAlive() {
	sk.send(wsMessage{Type: msgPing})
	sk.mu.Lock()
	if sk.closeCode == 0 && !sk.isGone && sk.timer != nil {
		sk.timer.Reset(sk.s.opts.KeepAliveInterval)
	}
	sk.mu.Unlock()
}

// receive queues a message for the socket's handler (called by the event loop, which reuses data).
func (sk *socket) receive(data []byte) {
	sk.mu.Lock()
	if sk.closeCode != 0 || sk.isGone {
		sk.mu.Unlock()
		return
	}
	if len(sk.inbox) >= maxPending {
		sk.mu.Unlock()
		sk.closeWith(closePolicy, "too many pending messages", closedByLimit)
		return
	}
	sk.inbox = append(sk.inbox, bytes.Clone(data))
	start := !sk.working
	sk.working = true
	sk.mu.Unlock()
	if start {
		go sk.work()
	}
}

// work handles the inbox in order until it is empty, then ends; it finishes a socket that went away
// meanwhile (finish waits for the handler, so that nothing it started outlives the socket).
func (sk *socket) work() {
	for {
		sk.mu.Lock()
		if len(sk.inbox) == 0 || sk.closeCode != 0 || sk.isGone {
			sk.inbox, sk.working = nil, false
			finish := sk.isGone && !sk.finished
			sk.finished = sk.finished || finish
			sk.mu.Unlock()
			if finish {
				sk.s.finish(sk)
			}
			return
		}
		msg := sk.inbox[0]
		sk.inbox[0] = nil
		sk.inbox = sk.inbox[1:]
		sk.mu.Unlock()
		sk.handle(msg)
	}
}

// gone is the event loop's news that the connection is closed, whoever closed it.
func (sk *socket) gone(err error) {
	sk.mu.Lock()
	if sk.isGone {
		sk.mu.Unlock()
		return
	}
	sk.isGone = true
	if sk.reason == "" {
		sk.reason = closedByClient
		if errors.Is(err, websocket.ErrMessageTooLarge) {
			sk.reason = closedByLimit
		}
	}
	if sk.timer != nil {
		sk.timer.Stop()
	}
	streams := make([]*stream, 0, len(sk.streams))
	for _, st := range sk.streams {
		streams = append(streams, st)
	}
	finish := !sk.working && !sk.finished
	sk.finished = sk.finished || finish
	sk.mu.Unlock()
	for _, st := range streams {
		st.abort()
	}
	if finish {
		sk.s.finish(sk)
	}
}

// handle handles one client message; a panic closes the socket (4500) and never the server.
func (sk *socket) handle(raw []byte) {
	defer func() {
		if r := recover(); r != nil {
			sk.s.log.ErrorContext(sk.ctx, "websocket: panic handling a message", "panic", r, "stack", string(debug.Stack()))
			sk.closeWith(CloseInternalError, "internal error", closedByProtocol)
		}
	}()
	start := graphql.Now()
	var m wsMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		sk.closeWith(CloseBadRequest, "invalid message", closedByProtocol)
		return
	}
	switch m.Type {
	case msgConnectionInit:
		sk.connectionInit(m.Payload)
	case msgPing:
		sk.send(wsMessage{Type: msgPong})
	case msgPong:
	case msgSubscribe:
		sk.subscribe(start, m)
	case msgComplete:
		sk.mu.Lock()
		st := sk.streams[m.ID]
		sk.mu.Unlock()
		if st != nil {
			st.abort()
		}
	default:
		sk.closeWith(CloseBadRequest, "invalid message type", closedByProtocol)
	}
}

func (sk *socket) connectionInit(raw json.RawMessage) {
	sk.mu.Lock()
	seen := sk.initSeen
	sk.initSeen = true
	sk.mu.Unlock()
	if seen {
		sk.closeWith(CloseTooManyInits, "too many initialisation requests", closedByProtocol)
		return
	}
	payload := transport.InitPayload{}
	if len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		if err := json.Unmarshal(raw, &payload); err != nil {
			sk.closeWith(CloseBadRequest, "invalid connection_init payload", closedByProtocol)
			return
		}
	}
	if code, text := sk.s.authenticate(sk, payload); code != 0 {
		sk.closeWith(code, text, "")
		return
	}
	sk.mu.Lock()
	if sk.closeCode != 0 || sk.isGone {
		sk.mu.Unlock()
		return
	}
	sk.acked = true
	if sk.timer != nil {
		sk.timer.Stop()
	}
	sk.timer = time.AfterFunc(sk.s.opts.KeepAliveInterval, sk.keepAlive)
	sk.mu.Unlock()
	sk.send(wsMessage{Type: msgConnectionAck})
}

func (sk *socket) subscribe(start time.Time, m wsMessage) {
	sk.mu.Lock()
	acked, connCtx, dup := sk.acked, sk.connCtx, sk.streams[m.ID] != nil
	sk.mu.Unlock()
	switch {
	case !acked:
		sk.closeWith(CloseUnauthorized, "unauthorized", closedByProtocol)
		return
	case m.ID == "":
		sk.closeWith(CloseBadRequest, "subscribe without id", closedByProtocol)
		return
	case dup:
		sk.closeWith(CloseDuplicateID, fmt.Sprintf("subscriber for %.64s already exists", m.ID), closedByProtocol)
		return
	}
	// documentId (a persisted document's hash, as over HTTP) has no place in gqlgen's RawParams: it
	// travels to graph's trusted-documents extension in the context.
	var req struct {
		graphql.RawParams
		DocumentID *string `json:"documentId"`
	}
	dec := json.NewDecoder(bytes.NewReader(m.Payload))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		sk.sendErrors(m.ID, gqlerror.List{{Message: "invalid subscribe payload: an operation (query, variables, operationName, extensions) is expected"}})
		return
	}
	params := &req.RawParams
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	ctx := graphql.StartOperationTrace(context.WithValue(connCtx, socketKey{}, sk))
	if req.DocumentID != nil {
		ctx = graph.WithDocumentID(ctx, *req.DocumentID)
	}
	rc, errs := sk.exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := sk.exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		sk.sendErrors(m.ID, resp.Errors)
		return
	}
	ctx, cancel := context.WithCancel(graphql.WithOperationContext(ctx, rc))
	st := &stream{sk: sk, id: m.ID, cancel: cancel}
	ctx, signal := graph.WithStreamSignal(ctx, st.notify)
	sk.mu.Lock()
	if sk.isGone || sk.closeCode != 0 {
		sk.mu.Unlock()
		cancel()
		return
	}
	if sk.streams == nil {
		sk.streams = map[string]*stream{}
	}
	sk.streams[m.ID] = st
	sk.mu.Unlock()

	responses, ctx := sk.dispatch(ctx, rc, m.ID)
	st.ready(ctx, responses, signal.Used())
}

// dispatch runs the operation (for a subscription: its root resolver); a panic is the operation's
// error, as gqlgen's transports make it.
func (sk *socket) dispatch(ctx context.Context, rc *graphql.OperationContext, id string) (h graphql.ResponseHandler, _ context.Context) {
	defer func() {
		if r := recover(); r != nil {
			err := rc.Recover(ctx, r)
			var gqlErr *gqlerror.Error
			if !errors.As(err, &gqlErr) {
				gqlErr = &gqlerror.Error{Message: "internal system error"}
			}
			h = graphql.OneShot(&graphql.Response{Errors: gqlerror.List{gqlErr}})
		}
	}()
	return sk.exec.DispatchOperation(ctx, rc)
}

// stream is one operation of a socket, from its subscribe to its end.
type stream struct {
	sk     *socket
	id     string
	cancel context.CancelFunc

	mu        sync.Mutex
	ctx       context.Context
	responses graphql.ResponseHandler // nil until dispatched
	evented   bool                    // read only when notified (graph.StreamSignal)
	pending   int                     // notifications not yet read
	running   bool                    // a drain goroutine runs
	aborted   bool                    // cancelled: read to the end without writing
	done      bool                    // read to the end
}

// notify is the stream's graph.StreamSignal: one more read will not block.
func (st *stream) notify() {
	st.mu.Lock()
	st.pending++
	start := st.responses != nil && !st.running && !st.done
	st.running = st.running || start
	st.mu.Unlock()
	if start {
		go st.drain()
	}
}

// ready takes the dispatched operation: an evented stream is read when notified (and now, for what
// its resolver signalled meanwhile); any other is read by a goroutine until it ends.
func (st *stream) ready(ctx context.Context, responses graphql.ResponseHandler, evented bool) {
	st.mu.Lock()
	st.ctx, st.responses, st.evented = ctx, responses, evented
	aborted := st.aborted
	start := evented && !aborted && st.pending > 0 && !st.running
	st.running = st.running || start
	st.mu.Unlock()
	switch {
	case !evented:
		go st.loop() // (aborted: it ends at once on the cancelled context)
	case aborted:
		st.abort()
	case start:
		go st.drain()
	}
}

// drain writes what the stream signalled; its reads do not block (StreamSignal's contract).
func (st *stream) drain() {
	for {
		st.mu.Lock()
		if st.done || st.pending == 0 {
			st.running = false
			st.mu.Unlock()
			return
		}
		st.pending--
		resp := st.read()
		if resp == nil {
			st.done, st.running = true, false
			st.mu.Unlock()
			st.end()
			return
		}
		st.mu.Unlock()
		st.sk.sendResponse(st.id, resp)
	}
}

// loop reads a stream without the signal until it ends, as gqlgen's transports do.
func (st *stream) loop() {
	for {
		resp := st.read()
		if resp == nil {
			break
		}
		st.sk.sendResponse(st.id, resp)
	}
	st.mu.Lock()
	st.done = true
	st.mu.Unlock()
	st.end()
}

// read reads the next response; a panic ends the stream with the operation's error.
func (st *stream) read() (resp *graphql.Response) {
	defer func() {
		if r := recover(); r != nil {
			st.sk.s.log.ErrorContext(st.sk.ctx, "websocket: panic reading a stream", "panic", r, "stack", string(debug.Stack()))
			st.cancel()
			resp = nil
		}
	}()
	return st.responses(st.ctx)
}

// abort ends the stream early (the client completed it, or the socket is gone): its context is
// cancelled, and an evented stream is read to its end here, so that its accounting ends too.
func (st *stream) abort() {
	st.cancel()
	st.mu.Lock()
	st.aborted = true
	if st.done || st.responses == nil || !st.evented {
		// Not dispatched yet (ready will abort it), or its loop ends on the cancelled context.
		st.mu.Unlock()
		return
	}
	for st.read() != nil { // with the context cancelled, this ends at the first empty read
	}
	st.done = true
	st.mu.Unlock()
	st.end()
}

// end forgets the stream and tells the client it is complete (unless it completed it, or the
// socket is closing).
func (st *stream) end() {
	sk := st.sk
	st.cancel()
	sk.mu.Lock()
	if sk.streams[st.id] == st {
		delete(sk.streams, st.id)
	}
	sk.mu.Unlock()
	st.mu.Lock()
	aborted := st.aborted
	st.mu.Unlock()
	if !aborted {
		sk.send(wsMessage{Type: msgComplete, ID: st.id})
	}
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
	if idle == nil {
		return
	}
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
